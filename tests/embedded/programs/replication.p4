// Engine fixture: everything that makes more or fewer packets than it got.
// The probe header's `op` picks the behaviour; egress writes what it saw
// (egress_rid, packet_length, instance_type, preserved metadata) back into the
// probe so tests can read the pipeline's view from the output frames.
// A frame may carry a 2-byte tail after the probe (has_tail = 1): ingress
// always strips it, so packet_length in egress shows header removal.
#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_PROBE = 0x88b5;
const bit<8> OP_CLONE_I2E = 1;
const bit<8> OP_RESUBMIT = 2;
const bit<8> OP_RECIRCULATE = 3;
const bit<8> OP_DIGEST = 4;
const bit<8> OP_MULTICAST = 5;
const bit<8> OP_TRUNCATE = 6;
const bit<8> OP_LOG = 7;
const bit<8> OP_CLONE_E2E = 8;
const bit<8> OP_MULTICAST_DROPPED = 9;
const bit<8> OP_EXIT = 10;
const bit<8> OP_CLONE_AND_MULTICAST = 11;

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header probe_t {
    bit<8> op; bit<8> passes; bit<32> instance_type; bit<16> rid;
    bit<16> in_port; bit<8> kept; bit<32> pkt_len; bit<8> has_tail;
}
header tail_t { bit<16> v; }
struct headers_t { ethernet_t ethernet; probe_t probe; tail_t tail; }
struct metadata_t {
    @field_list(1) bit<8> kept;
    @field_list(1) bit<8> passes;
    bit<8> lost;   // never preserved: reads 0 after a resubmit
}
struct digest_t { bit<48> src; bit<9> port; }

parser RParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
               inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { ETHERTYPE_PROBE: parse_probe; default: accept; }
    }
    state parse_probe {
        pkt.extract(hdr.probe);
        transition select(hdr.probe.has_tail) { 1: parse_tail; default: accept; }
    }
    state parse_tail { pkt.extract(hdr.tail); transition accept; }
}
control RVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control RIngress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) {
    apply {
        if (!hdr.probe.isValid()) { mark_to_drop(sm); return; }
        if (hdr.probe.op == OP_EXIT) {
            exit;  // nothing below runs: egress_spec stays 0
        }
        sm.egress_spec = 2;
        hdr.probe.instance_type = sm.instance_type;
        hdr.probe.in_port = (bit<16>)sm.ingress_port;
        if (hdr.tail.isValid()) {
            hdr.tail.setInvalid();
            hdr.probe.has_tail = 0;
        }
        if (hdr.probe.op == OP_CLONE_I2E) {
            meta.kept = 0x77;
            clone_preserving_field_list(CloneType.I2E, 5, 1);
        } else if (hdr.probe.op == OP_RESUBMIT) {
            if (sm.instance_type == 0) {
                meta.kept = 0x55; meta.passes = 1; meta.lost = 0x99;
                sm.egress_spec = 3;  // forgotten by the resubmit
                resubmit_preserving_field_list(1);
            } else {
                hdr.probe.kept = meta.kept | meta.lost;
                hdr.probe.passes = meta.passes;
            }
        } else if (hdr.probe.op == OP_RECIRCULATE) {
            hdr.probe.passes = hdr.probe.passes + 1;
        } else if (hdr.probe.op == OP_DIGEST) {
            digest<digest_t>(1, { hdr.ethernet.src, sm.ingress_port });
        } else if (hdr.probe.op == OP_MULTICAST) {
            sm.mcast_grp = 7;
        } else if (hdr.probe.op == OP_TRUNCATE) {
            truncate(20);
        } else if (hdr.probe.op == OP_LOG) {
            log_msg("port={} op={}", { sm.ingress_port, hdr.probe.op });
        } else if (hdr.probe.op == OP_CLONE_E2E) {
            meta.kept = 0x66;
        } else if (hdr.probe.op == OP_MULTICAST_DROPPED) {
            sm.mcast_grp = 7;
            mark_to_drop(sm);
        } else if (hdr.probe.op == OP_CLONE_AND_MULTICAST) {
            sm.mcast_grp = 7;
            meta.kept = 0x44;
            clone_preserving_field_list(CloneType.I2E, 5, 1);
        }
    }
}
control REgress(inout headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    apply {
        hdr.probe.rid = sm.egress_rid;
        hdr.probe.pkt_len = sm.packet_length;
        if (sm.instance_type == 1 || sm.instance_type == 2) {
            hdr.probe.kept = meta.kept;
            hdr.probe.instance_type = sm.instance_type;
        }
        if (hdr.probe.op == OP_RECIRCULATE && hdr.probe.passes < 3) {
            recirculate_preserving_field_list(1);
        }
        if (hdr.probe.op == OP_CLONE_E2E && sm.instance_type == 0) {
            meta.kept = 0x66;
            clone_preserving_field_list(CloneType.E2E, 6, 1);
        }
    }
}
control RCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control RDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.probe); pkt.emit(hdr.tail); }
}
V1Switch(RParser(), RVerify(), RIngress(), REgress(), RCompute(), RDeparser()) main;
