/* Stage 3, flow classifier: which of the guest's declared flows a packet
 * belongs to, and that flow's configuration.
 *
 * A packet of a tracked connection takes the flow stored with the connection
 * (so a reply is part of its request's flow whatever its addresses); any other
 * packet is classified by the ternary/range classifier, highest priority
 * first. The flow's configuration sits in a second, exact table, so changing
 * a flow's services does not touch its classifier entries. */
#ifndef PYOFFLOAD_FLOW_CLASSIFIER_P4
#define PYOFFLOAD_FLOW_CLASSIFIER_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control FlowClassifier(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.set_flow")
    action set_flow(flow_id_t flow_id) {
        meta.flow.hit = 1;
        meta.flow.flow_id = flow_id;
    }

    @name(".vnic.no_flow")
    action no_flow() {
        meta.flow.hit = 0;
    }

    @name(".vnic.flow_classifier")
    table flow_classifier {
        key = {
            meta.vnic.vnic_id:   exact   @name("vnic_id");
            meta.vnic.direction: ternary @name("direction");
            meta.l34.ip_ver:     ternary @name("ip_version");
            meta.l34.src_addr:   ternary @name("src_addr");
            meta.l34.dst_addr:   ternary @name("dst_addr");
            meta.l34.proto:      ternary @name("protocol");
            meta.l34.src_port:   range   @name("src_port");
            meta.l34.dst_port:   range   @name("dst_port");
        }
        actions = {
            set_flow;
            @defaultonly no_flow;
        }
        const default_action = no_flow();
        size = FLOW_CLASSIFIER_SIZE;
    }

    @name(".vnic.set_flow_config")
    action set_flow_config(bit<8> services, bit<8> ct_profile, bit<3> default_verdict,
                           bit<32> meter_index, bit<32> counter_index,
                           bit<32> mirror_session) {
        meta.flow.services = services;
        meta.flow.ct_profile = ct_profile;
        meta.flow.default_verdict = default_verdict;
        meta.flow.meter_index = meter_index;
        meta.flow.counter_index = counter_index;
        meta.flow.mirror_session = mirror_session;
    }

    /* A classifier entry without configuration (being installed or removed):
     * treat the packet as matching no flow. */
    @name(".vnic.flow_config_missing")
    action flow_config_missing() {
        meta.flow.hit = 0;
    }

    @name(".vnic.flow_config")
    table flow_config {
        key = {
            meta.vnic.vnic_id:  exact @name("vnic_id");
            meta.flow.flow_id:  exact @name("flow_id");
        }
        actions = {
            set_flow_config;
            @defaultonly flow_config_missing;
        }
        const default_action = flow_config_missing();
        size = FLOW_CONFIG_SIZE;
    }

    apply {
        if (meta.ct.hit == 1) {
            meta.flow.hit = 1;
            meta.flow.flow_id = meta.ct.stored_flow;
        } else {
            flow_classifier.apply();
        }
        if (meta.flow.hit == 1) {
            flow_config.apply();
        }
    }
}

#endif
