/* Stage 2, VNIC port map: which VNIC a frame belongs to and which way it goes.
 *
 * Every later key carries the VNIC id, so one guest's rules can never match
 * another guest's traffic. A frame on an unmapped port is dropped.
 *
 * admit_new = 0 tells conntrack to track no new connection of the VNIC: the
 * agent clears it while the VNIC holds its quota of tracked connections. */
#ifndef PYOFFLOAD_PORT_MAP_P4
#define PYOFFLOAD_PORT_MAP_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control PortMap(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.set_vnic")
    action set_vnic(vnic_id_t vnic_id, bit<1> direction, port_t peer_port,
                    bit<2> default_policy, bit<1> admit_new) {
        meta.vnic.mapped = 1;
        meta.vnic.admit_new = admit_new;
        meta.vnic.vnic_id = vnic_id;
        meta.vnic.direction = direction;
        meta.vnic.peer_port = peer_port;
        meta.vnic.default_policy = default_policy;
    }

    @name(".vnic.unmapped_port")
    action unmapped_port() {
        meta.vnic.mapped = 0;
    }

    @name(".vnic.port_map")
    table port_map {
        key = {
            meta.vnic.in_port: exact @name("port");
        }
        actions = {
            set_vnic;
            @defaultonly unmapped_port;
        }
        const default_action = unmapped_port();
        size = PORT_MAP_SIZE;
    }

    apply {
        port_map.apply();
    }
}

#endif
