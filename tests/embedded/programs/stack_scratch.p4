/* Out-of-range stack indices across packets (issue 13, class 7; API.md): a write to
 * an element past the end (op 1: s[req.idx] = one) must not reach a later packet that
 * reads past the end (op 2: seen = s[req.idx]). BMv2 cannot run either (it refuses the
 * JSON of a run-time-indexed destination, and aborts on an index past the end), so this
 * program is for the engine alone.
 *
 * Frame: ethernet (etherType 0x9000), req (op, idx), one h_t (one). The output carries
 * `seen` after `one` only when it is valid. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header req_t { bit<8> op; bit<8> idx; }
header h_t { bit<8> a; bit<8> b; }

struct headers_t {
    ethernet_t ethernet;
    req_t req;
    h_t one;
    h_t[3] s;
    h_t seen;
}
struct metadata_t { bit<8> unused; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x9000: parse_req; default: accept; }
    }
    state parse_req {
        pkt.extract(hdr.req);
        pkt.extract(hdr.one);
        transition accept;
    }
}

control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    apply {
        sm.egress_spec = 2;
        if (hdr.req.op == 1) {
            hdr.s[hdr.req.idx] = hdr.one;
        } else if (hdr.req.op == 2) {
            hdr.seen = hdr.s[hdr.req.idx];
        }
    }
}

control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) { apply { } }

control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.req);
        pkt.emit(hdr.one);
        pkt.emit(hdr.seen);
    }
}

V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
