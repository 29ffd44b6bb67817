/* pyoffload VNIC data path.
 *
 * This file chooses the architecture and runs the stages in order; each stage
 * lives in stages/<name>.p4. Compile with `scripts/build-p4` (see the README).
 *
 * Everything target-specific is in the architecture file, arch/v1model.p4
 * (the only architecture so far): included first for the target's externs
 * (ARCH_* macros), and again at the end for its package (main) around this
 * pipeline. Another target means another arch/<name>.p4 named in both
 * includes. */
#include <core.p4>
#include "arch/v1model.p4"

#include "include/sizes.p4"
#include "include/defines.p4"
#include "include/headers.p4"
#include "parser.p4"
#include "checksums.p4"
#include "deparser.p4"
#include "stages/port_map.p4"
#include "stages/packet_key.p4"
#include "stages/conntrack.p4"
#include "stages/flow_classifier.p4"
#include "stages/acl.p4"
#include "stages/rate_limiter.p4"
#include "stages/load_balancer.p4"
#include "stages/nat.p4"
#include "stages/mirror.p4"
#include "stages/forward.p4"

/* The pipeline's clock (ingress timestamp, microseconds) when the agent last
 * probed it: conntrack expiry times are in this clock. */
@name(".vnic.clock") ARCH_REGISTER(bit<48>, 1) clock;

/* The pipeline, in the target's ingress: meta.now and meta.arch's inputs are
 * set before it runs; its verdict leaves in meta.arch (egress port or drop,
 * clone, truncate, digest). */
control VnicIngress(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.early_drop_counter")
    ARCH_COUNTER_PACKETS_AND_BYTES(DROP_REASONS) early_drop_counter;

    PortMap() port_map;
    PacketKey() packet_key;
    ConntrackLookup() ct_lookup;
    FlowClassifier() flow_classifier;
    Acl() acl;
    ApplyVerdict() apply_verdict;
    RateLimiter() rate_limiter;
    LoadBalancer() load_balancer;
    Nat() nat;
    ConntrackCommit() ct_commit;
    NatRewrite() nat_rewrite;
    Mirror() mirror;
    Forward() forward;

    apply {
        /* Frames from the agent: straight out, or into the pipeline. */
        if (hdr.packet_out.isValid()) {
            if (hdr.packet_out.probe == 1) {
                ARCH_REGISTER_WRITE(clock, 0, meta.now);
                meta.arch.drop = 1;
                return;
            }
            if (hdr.packet_out.inject == 0) {
                meta.arch.egress_port = hdr.packet_out.egress_port;
                hdr.packet_out.setInvalid();
                return;
            }
            meta.vnic.in_port = hdr.packet_out.inject_port;
            hdr.packet_out.setInvalid();
        } else {
            meta.vnic.in_port = meta.arch.ingress_port;
        }

        port_map.apply(hdr, meta);
        if (meta.vnic.mapped == 0) {
            ARCH_COUNT(early_drop_counter, DROP_UNMAPPED_PORT);
            meta.arch.drop = 1;
            return;
        }
        if (meta.arch.parser_error == 1) {
            ARCH_COUNT(early_drop_counter, DROP_MALFORMED);
            meta.arch.drop = 1;
            return;
        }
        if (meta.arch.checksum_error == 1) {
            ARCH_COUNT(early_drop_counter, DROP_IPV4_CHECKSUM);
            meta.arch.drop = 1;
            return;
        }

        packet_key.apply(hdr, meta);
        if (meta.l34.is_ip == 1) {
            ct_lookup.apply(hdr, meta);
            flow_classifier.apply(hdr, meta);
            acl.apply(hdr, meta);
            apply_verdict.apply(hdr, meta);
            rate_limiter.apply(hdr, meta);
            load_balancer.apply(hdr, meta);
            nat.apply(hdr, meta);
            ct_commit.apply(hdr, meta);
            nat_rewrite.apply(hdr, meta);
            mirror.apply(hdr, meta);
        }
        forward.apply(hdr, meta);
    }
}

/* The target's package around the pipeline: parser, checksums, ingress,
 * egress, deparser, and main. */
#define PYOFFLOAD_ARCH_PACKAGE
#include "arch/v1model.p4"
