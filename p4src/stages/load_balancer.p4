/* Stage 7, load balancing: a VIP spread over backends by an action selector
 * hashed on the 5-tuple. The backend is chosen on the first packet only and
 * stored with the connection (as a destination translation), so a change of
 * the backend group does not move established connections. Weights are
 * expressed by the control plane as repeated members. */
#ifndef PYOFFLOAD_LOAD_BALANCER_P4
#define PYOFFLOAD_LOAD_BALANCER_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control LoadBalancer(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.lb_selector")
    ARCH_ACTION_SELECTOR_CRC16(LB_SELECTOR_SIZE, 32w16) lb_selector;

    @name(".vnic.lb_set_backend")
    action set_backend(bit<32> addr, bit<16> port) {
        meta.nat.dst_rewrite = 1;
        meta.nat.new_dst_addr = addr;
        meta.nat.new_dst_port = port;
    }

    @name(".vnic.lb_vip")
    table lb_vip {
        key = {
            meta.vnic.vnic_id:  exact    @name("vnic_id");
            hdr.ipv4.dst_addr:  exact    @name("vip");
            meta.l34.proto:     exact    @name("protocol");
            meta.l34.dst_port:  exact    @name("port");
            meta.l34.src_addr:  selector;
            meta.l34.dst_addr:  selector;
            meta.l34.src_port:  selector;
            meta.l34.dst_port:  selector;
            meta.l34.proto:     selector;
        }
        actions = {
            set_backend;
        }
        implementation = lb_selector;
        size = LB_VIP_SIZE;
    }

    apply {
        if (meta.ct.hit == 0 && meta.flow.hit == 1 && (meta.flow.services & SVC_LB) != 0
                && hdr.ipv4.isValid() && (hdr.tcp.isValid() || hdr.udp.isValid())
                && meta.ct.acl_state == CTS_NEW
                && (meta.verdict == VERDICT_ALLOW || meta.verdict == VERDICT_ALLOW_TRACK)) {
            lb_vip.apply();
        }
    }
}

#endif
