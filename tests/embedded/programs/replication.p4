// Engine fixture: clone I2E/E2E with preserved field lists, resubmit,
// recirculate, digest, multicast, truncate, log_msg, instance_type.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header probe_t {
    bit<8> op; bit<8> passes; bit<32> instance_type; bit<16> rid;
    bit<16> in_port; bit<8> kept; bit<32> pkt_len;
}
struct headers_t { ethernet_t ethernet; probe_t probe; }
struct metadata_t {
    @field_list(1) bit<8> kept;
    @field_list(1) bit<8> passes;
}
struct digest_t { bit<48> src; bit<9> port; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x88b5: parse_probe; default: accept; } }
    state parse_probe { pkt.extract(hdr.probe); transition accept; }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    apply {
        if (!hdr.probe.isValid()) { mark_to_drop(sm); return; }
        sm.egress_spec = 2;
        hdr.probe.instance_type = sm.instance_type;
        hdr.probe.in_port = (bit<16>)sm.ingress_port;
        if (hdr.probe.op == 1) {           // clone ingress to session 5
            meta.kept = 0x77;
            clone_preserving_field_list(CloneType.I2E, 5, 1);
        } else if (hdr.probe.op == 2) {    // resubmit once
            if (sm.instance_type == 0) {
                meta.kept = 0x55; meta.passes = 1;
                resubmit_preserving_field_list(1);
            } else {
                hdr.probe.kept = meta.kept; hdr.probe.passes = meta.passes;
            }
        } else if (hdr.probe.op == 3) {    // recirculate (in egress)
            hdr.probe.passes = hdr.probe.passes + 1;
        } else if (hdr.probe.op == 4) {    // digest
            digest<digest_t>(1, { hdr.ethernet.src, sm.ingress_port });
        } else if (hdr.probe.op == 5) {    // multicast to group 7
            sm.mcast_grp = 7;
        } else if (hdr.probe.op == 6) {    // truncate
            truncate(20);
        } else if (hdr.probe.op == 7) {
            log_msg("port={} op={}", { sm.ingress_port, hdr.probe.op });
        } else if (hdr.probe.op == 8) {    // E2E clone happens in egress
            meta.kept = 0x66;
        } else if (hdr.probe.op == 9) {    // drop with mark_to_drop after multicast set
            sm.mcast_grp = 7;
            mark_to_drop(sm);
        }
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) {
    apply {
        hdr.probe.rid = sm.egress_rid;
        hdr.probe.pkt_len = sm.packet_length;
        if (sm.instance_type == 1 || sm.instance_type == 2) {
            hdr.probe.kept = meta.kept;
            hdr.probe.instance_type = sm.instance_type;
        }
        if (hdr.probe.op == 3 && hdr.probe.passes < 3) {
            recirculate_preserving_field_list(1);
        }
        if (hdr.probe.op == 8 && sm.instance_type == 0) {
            meta.kept = 0x66;
            clone_preserving_field_list(CloneType.E2E, 6, 1);
        }
    }
}
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.probe); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
