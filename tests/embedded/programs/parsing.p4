// Engine fixture: header stacks, varbit, lookahead, verify/custom errors,
// parser errors, signed and saturating arithmetic, shifts, slices, exit,
// push/pop, setValid/setInvalid, a parser value set.
#include <core.p4>
#include <v1model.p4>

error { BadVersion }

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header mpls_t { bit<20> label; bit<3> tc; bit<1> bos; bit<8> ttl; }
header opt_t { bit<8> kind; bit<8> len; varbit<256> data; }
header calc_t {
    bit<8> version;
    int<8> a; int<8> b; bit<8> x; bit<8> y;
    int<8> sum; int<8> diff; bit<8> usum; bit<8> udiff; bit<8> sat_add; bit<8> sat_sub;
    int<8> ssat_add; bit<8> shl; bit<8> shr; int<8> sshr; bit<16> concat; bit<4> slice;
    bit<4> pad; bit<8> mul; bit<8> neg; bit<32> err; bit<8> lookahead; bit<8> depth;
    bit<8> cmp;
}
header marker_t { bit<8> v; }
header tag_t { bit<8> seen; bit<8> id; bit<16> etherType; }

struct headers_t {
    ethernet_t ethernet; tag_t tag; mpls_t[3] mpls; opt_t opt; calc_t calc; marker_t marker;
}
struct metadata_t { bit<8> peek; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    value_set<bit<16>>(4) tag_types;   // EtherTypes of tag_t, set at runtime
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x8847: parse_mpls; 0x88b6: parse_opt; 0x88b5: parse_calc;
            tag_types: parse_tag; default: accept; } }
    state parse_tag { pkt.extract(hdr.tag); transition accept; }
    state parse_mpls { pkt.extract(hdr.mpls.next);
        transition select(hdr.mpls.last.bos) { 0: parse_mpls; 1: accept; } }
    state parse_opt {
        bit<8> len = pkt.lookahead<bit<16>>()[7:0];
        pkt.extract(hdr.opt, (bit<32>)(len - 2) * 8);
        transition parse_calc;
    }
    state parse_calc {
        meta.peek = pkt.lookahead<bit<8>>();
        pkt.extract(hdr.calc);
        verify(hdr.calc.version == 4, error.BadVersion);
        transition accept;
    }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

// error values cannot be cast to bits: number them here (BMv2's order, ours last)
control ErrorCode(in error e, out bit<32> code) {
    apply {
        if (e == error.NoError) { code = 0; }
        else if (e == error.PacketTooShort) { code = 1; }
        else if (e == error.NoMatch) { code = 2; }
        else if (e == error.StackOutOfBounds) { code = 3; }
        else if (e == error.HeaderTooShort) { code = 4; }
        else if (e == error.BadVersion) { code = 7; }
        else { code = 0xff; }
    }
}

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    ErrorCode() error_code;
    apply {
        bit<32> err;
        error_code.apply(sm.parser_error, err);
        sm.egress_spec = sm.ingress_port;
        if (hdr.tag.isValid()) {
            hdr.tag.seen = 1;
            exit;
        }
        if (hdr.mpls[0].isValid()) {
            if (hdr.mpls[0].label == 100) { hdr.mpls.pop_front(1); }
            else if (hdr.mpls[0].label == 200) {
                hdr.mpls.push_front(1);
                hdr.mpls[0].setValid();
                hdr.mpls[0].label = 999; hdr.mpls[0].ttl = 64; hdr.mpls[0].bos = 0;
            }
            exit;
        }
        if (hdr.calc.isValid()) {
            hdr.calc.sum = hdr.calc.a + hdr.calc.b;
            hdr.calc.diff = hdr.calc.a - hdr.calc.b;
            hdr.calc.usum = hdr.calc.x + hdr.calc.y;
            hdr.calc.udiff = hdr.calc.x - hdr.calc.y;
            hdr.calc.sat_add = hdr.calc.x |+| hdr.calc.y;
            hdr.calc.sat_sub = hdr.calc.x |-| hdr.calc.y;
            hdr.calc.ssat_add = hdr.calc.a |+| hdr.calc.b;
            hdr.calc.shl = hdr.calc.x << 3;
            hdr.calc.shr = hdr.calc.x >> hdr.calc.y[2:0];
            hdr.calc.sshr = hdr.calc.a >> 2;
            hdr.calc.concat = hdr.calc.x ++ hdr.calc.y;
            hdr.calc.slice = hdr.calc.x[6:3];
            hdr.calc.mul = hdr.calc.x * hdr.calc.y;
            hdr.calc.neg = ~hdr.calc.x;
            hdr.calc.err = err;
            hdr.calc.lookahead = meta.peek;
            hdr.calc.cmp = (hdr.calc.a < hdr.calc.b ? 8w1 : 8w0) |
                           (hdr.calc.x < hdr.calc.y ? 8w2 : 8w0);
            if (hdr.opt.isValid()) { hdr.calc.depth = hdr.opt.len; }
            hdr.marker.setValid();
            hdr.marker.v = 0xab;
            if (hdr.calc.x == 0xff) { hdr.opt.setInvalid(); }
        } else {
            // parser errors: report the code in the source MAC
            hdr.ethernet.src = (bit<48>)err;
        }
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) { apply { } }
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.tag); pkt.emit(hdr.mpls); pkt.emit(hdr.opt);
            pkt.emit(hdr.calc); pkt.emit(hdr.marker); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
