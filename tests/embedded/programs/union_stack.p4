// Header-union stacks (differential test against BMv2): extract into u.next.a or
// u.next.b by a lookahead type byte, member validity, push_front/pop_front (BMv2
// rotates union stacks: its HeaderUnion::mark_invalid does nothing), setValid of a
// member (its sibling becomes invalid), lastIndex in the parser. Every packet goes to
// the CPU port with a report header in front.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header a_t { bit<8> kind; bit<8> v; }
header b_t { bit<8> kind; bit<8> more; bit<16> v; }
header_union ab_t { a_t a; b_t b; }
header report_t {
    bit<32> perr; bit<8> valid_bits; bit<8> a_bits; bit<8> b_bits; bit<8> last_index;
    bit<16> sum; bit<8> picked;
}

struct headers_t { report_t report; ethernet_t ethernet; ab_t[3] u; }
struct metadata_t { bit<8> idx; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x88b6: parse_u; default: accept; } }
    state parse_u {
        transition select(pkt.lookahead<bit<8>>()) { 0x0a: parse_a; 0x0b: parse_b; default: accept; } }
    state parse_a { pkt.extract(hdr.u.next.a); meta.idx = (bit<8>)hdr.u.lastIndex; transition parse_u; }
    state parse_b { pkt.extract(hdr.u.next.b); meta.idx = (bit<8>)hdr.u.lastIndex; transition parse_u; }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply {
        hdr.report.setValid();
        if (sm.parser_error == error.NoError) { hdr.report.perr = 0; }
        else if (sm.parser_error == error.PacketTooShort) { hdr.report.perr = 1; }
        else if (sm.parser_error == error.StackOutOfBounds) { hdr.report.perr = 3; }
        else { hdr.report.perr = 9; }
        bit<8> ab = 0; bit<8> bb = 0;
        if (hdr.u[0].a.isValid()) { ab = ab | 1; }
        if (hdr.u[1].a.isValid()) { ab = ab | 2; }
        if (hdr.u[2].a.isValid()) { ab = ab | 4; }
        if (hdr.u[0].b.isValid()) { bb = bb | 1; }
        if (hdr.u[1].b.isValid()) { bb = bb | 2; }
        if (hdr.u[2].b.isValid()) { bb = bb | 4; }
        hdr.report.valid_bits = ab | bb; hdr.report.a_bits = ab; hdr.report.b_bits = bb;
        hdr.report.sum = (bit<16>)hdr.u[0].a.v + hdr.u[1].b.v;
        hdr.report.last_index = meta.idx;
        if (hdr.ethernet.dst[7:0] == 1) {
            hdr.u.pop_front(1);
        } else if (hdr.ethernet.dst[7:0] == 2) {
            hdr.u.push_front(1);
            hdr.u[0].b.setValid();
            hdr.u[0].b.kind = 0x0b; hdr.u[0].b.more = 0; hdr.u[0].b.v = 0xbeef;
        } else if (hdr.ethernet.dst[7:0] == 3) {
            hdr.u[1].a.setValid();   // makes u[1].b invalid
            hdr.u[1].a.kind = 0x0a; hdr.u[1].a.v = 0x77;
        } else if (hdr.ethernet.dst[7:0] == 4) {
            hdr.u[0].a.setInvalid();
        }
        sm.egress_spec = 510;
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply { }
}
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.report); pkt.emit(hdr.ethernet); pkt.emit(hdr.u); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
