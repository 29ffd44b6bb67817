/* pyoffload VNIC data path, v1model architecture.
 *
 * This file chooses the architecture and runs the stages in order; each stage
 * lives in stages/<name>.p4. Compile with `make p4` (see the README). */
#include <core.p4>
#include <v1model.p4>

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
@name(".vnic.clock") register<bit<48>>(1) clock;

control VnicIngress(inout headers_t hdr, inout metadata_t meta,
                    inout standard_metadata_t std_meta) {
    @name(".vnic.early_drop_counter")
    counter(DROP_REASONS, CounterType.packets_and_bytes) early_drop_counter;

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
        meta.now = std_meta.ingress_global_timestamp;

        /* Frames from the agent: straight out, or into the pipeline. */
        if (hdr.packet_out.isValid()) {
            if (hdr.packet_out.probe == 1) {
                clock.write(0, meta.now);
                mark_to_drop(std_meta);
                return;
            }
            if (hdr.packet_out.inject == 0) {
                std_meta.egress_spec = hdr.packet_out.egress_port;
                hdr.packet_out.setInvalid();
                return;
            }
            meta.vnic.in_port = hdr.packet_out.inject_port;
            hdr.packet_out.setInvalid();
        } else {
            meta.vnic.in_port = std_meta.ingress_port;
        }

        port_map.apply(hdr, meta);
        if (meta.vnic.mapped == 0) {
            early_drop_counter.count(DROP_UNMAPPED_PORT);
            mark_to_drop(std_meta);
            return;
        }
        if (std_meta.parser_error != error.NoError) {
            early_drop_counter.count(DROP_MALFORMED);
            mark_to_drop(std_meta);
            return;
        }
        if (std_meta.checksum_error == 1) {
            early_drop_counter.count(DROP_IPV4_CHECKSUM);
            mark_to_drop(std_meta);
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
        forward.apply(hdr, meta, std_meta);
    }
}

control VnicEgress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std_meta) {
    apply {
    }
}

V1Switch(VnicParser(), VnicVerifyChecksum(), VnicIngress(), VnicEgress(),
         VnicComputeChecksum(), VnicDeparser()) main;
