// Reading fields of invalid headers (differential test against BMv2): BMv2 reuses
// PHVs, so a header a packet did not extract still holds an earlier packet's bits;
// setInvalid keeps the bits, setValid of an invalid header zeroes them, metadata are
// zeroed per packet, stacks shift by swapping. Every packet goes to the CPU port
// with a report of what it read in front. The low byte of the source MAC picks
// what the ingress does.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header x_t { bit<8> a; bit<16> b; }
header y_t { bit<32> c; }
header report_t { bit<8> xa; bit<16> xb; bit<32> yc; bit<8> s0; bit<8> s1; bit<8> m; }

struct headers_t { report_t report; ethernet_t ethernet; x_t x; y_t y; x_t[2] xs; }
struct metadata_t { bit<8> m; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x1001: parse_x; 0x1002: parse_y; 0x1003: parse_xy; 0x1004: parse_xs; default: accept; } }
    state parse_x { pkt.extract(hdr.x); meta.m = hdr.x.a; transition accept; }
    state parse_y { pkt.extract(hdr.y); transition accept; }
    state parse_xy { pkt.extract(hdr.x); pkt.extract(hdr.y); transition accept; }
    state parse_xs { pkt.extract(hdr.xs.next); pkt.extract(hdr.xs.next); transition accept; }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply {
        hdr.report.setValid();
        bit<8> op = hdr.ethernet.src[7:0];
        if (op == 1) { hdr.x.setInvalid(); }
        else if (op == 2) { hdr.x.setInvalid(); hdr.x.setValid(); }
        else if (op == 3) { hdr.y.setValid(); }
        else if (op == 4) { hdr.x.setValid(); hdr.x.a = hdr.x.a + 1; }
        else if (op == 5) { hdr.xs.push_front(1); }
        else if (op == 6) { hdr.xs.pop_front(1); }
        else if (op == 7) { hdr.xs.push_front(1); hdr.xs[0].setValid(); }
        else if (op == 8) { hdr.x = hdr.xs[1]; }
        hdr.report.xa = hdr.x.a;
        hdr.report.xb = hdr.x.b;
        hdr.report.yc = hdr.y.c;
        hdr.report.s0 = hdr.xs[0].a;
        hdr.report.s1 = hdr.xs[1].a;
        hdr.report.m = meta.m;
        // a valid header written from invalid ones, then emitted
        hdr.ethernet.dst = hdr.y.c ++ hdr.x.b;
        sm.egress_spec = 510;
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply { }
}
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.report); pkt.emit(hdr.ethernet); pkt.emit(hdr.x); pkt.emit(hdr.y);
            pkt.emit(hdr.xs); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
