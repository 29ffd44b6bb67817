/* Stage 5, service rules (ACL): the verdict for a packet of a declared flow.
 *
 * A packet of an established tracked connection is allowed without a rule
 * (the stateful fast path). Any other packet of a flow is matched against the
 * flow's rules, highest priority first, on its direction, conntrack state
 * (CTS_*), addresses, protocol, ports and TCP flags; no rule means the flow's
 * default verdict. A packet of no flow gets its VNIC's default policy. Each
 * rule has a direct counter and a direct meter (per-rule rate limit). */
#ifndef PYOFFLOAD_ACL_P4
#define PYOFFLOAD_ACL_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control Acl(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.acl_counter")
    ARCH_DIRECT_COUNTER_PACKETS_AND_BYTES acl_counter;

    @name(".vnic.acl_meter")
    ARCH_DIRECT_METER_BYTES(bit<2>) acl_meter;

    @name(".vnic.acl_allow")
    action allow() {
        ARCH_DIRECT_METER_READ(acl_meter, meta.color);
        meta.acl_hit = 1;
        meta.verdict = VERDICT_ALLOW;
    }

    @name(".vnic.acl_allow_track")
    action allow_track() {
        ARCH_DIRECT_METER_READ(acl_meter, meta.color);
        meta.acl_hit = 1;
        meta.verdict = VERDICT_ALLOW_TRACK;
    }

    @name(".vnic.acl_deny")
    action deny() {
        ARCH_DIRECT_METER_READ(acl_meter, meta.color);
        meta.acl_hit = 1;
        meta.verdict = VERDICT_DENY;
    }

    @name(".vnic.acl_reject")
    action reject() {
        ARCH_DIRECT_METER_READ(acl_meter, meta.color);
        meta.acl_hit = 1;
        meta.verdict = VERDICT_REJECT;
    }

    @name(".vnic.acl_punt")
    action punt() {
        ARCH_DIRECT_METER_READ(acl_meter, meta.color);
        meta.acl_hit = 1;
        meta.verdict = VERDICT_PUNT;
    }

    @name(".vnic.acl_no_rule")
    action no_rule() {
        meta.acl_hit = 0;
    }

    @name(".vnic.acl")
    table acl {
        key = {
            meta.vnic.vnic_id:   exact   @name("vnic_id");
            meta.flow.flow_id:   exact   @name("flow_id");
            meta.vnic.direction: ternary @name("direction");
            meta.ct.acl_state:   ternary @name("ct_state");
            meta.l34.src_addr:   ternary @name("src_addr");
            meta.l34.dst_addr:   ternary @name("dst_addr");
            meta.l34.proto:      ternary @name("protocol");
            meta.l34.src_port:   range   @name("src_port");
            meta.l34.dst_port:   range   @name("dst_port");
            meta.l34.tcp_flags:  ternary @name("tcp_flags");
        }
        actions = {
            allow;
            allow_track;
            deny;
            reject;
            punt;
            @defaultonly no_rule;
        }
        const default_action = no_rule();
        counters = acl_counter;
        meters = acl_meter;
        size = ACL_SIZE;
    }

    apply {
        if (meta.flow.hit == 0) {
            if (meta.vnic.default_policy == POLICY_DENY) {
                meta.verdict = VERDICT_DENY;
            } else if (meta.vnic.default_policy == POLICY_PUNT) {
                meta.verdict = VERDICT_PUNT;
            } else {
                meta.verdict = VERDICT_ALLOW;
            }
            return;
        }
        if (meta.ct.hit == 1 && meta.ct.acl_state == CTS_ESTABLISHED) {
            meta.verdict = VERDICT_ALLOW;
            return;
        }
        meta.verdict = meta.flow.default_verdict;
        acl.apply();
    }
}

#endif

#ifndef PYOFFLOAD_APPLY_VERDICT
#define PYOFFLOAD_APPLY_VERDICT
/* Turns the verdict into the drop / punt / reject decision the later stages
 * (conntrack commit, NAT, forwarding) act on. */
control ApplyVerdict(inout headers_t hdr, inout metadata_t meta) {
    apply {
        if (meta.verdict == VERDICT_DENY) {
            meta.drop = 1;
            if (meta.flow.hit == 0) {
                meta.drop_reason = DROP_NO_FLOW;
            } else if (meta.ct.acl_state == CTS_INVALID && meta.acl_hit == 0) {
                meta.drop_reason = DROP_CT_INVALID;
            } else {
                meta.drop_reason = DROP_RULE_DENY;
            }
        } else if (meta.verdict == VERDICT_REJECT) {
            if (hdr.tcp.isValid() && (meta.l34.tcp_flags & TCP_RST) == 0) {
                meta.reject = 1;
            } else {
                meta.drop = 1;
                meta.drop_reason = DROP_RULE_REJECT;
            }
        } else if (meta.verdict == VERDICT_PUNT) {
            meta.punt = 1;
            if (meta.flow.hit == 0) {
                meta.punt_reason = PUNT_NO_FLOW;
            } else {
                meta.punt_reason = PUNT_RULE;
            }
        }
    }
}
#endif
