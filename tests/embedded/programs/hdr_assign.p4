/* Whole-header assignment (issue 13, class 1): header = header inside actions,
 * between header stack elements (at constant indices, from an index in a packet
 * field), in a function called from an action under a condition (p4c writes
 * it as `cond ? h1 : h2`), into and between header unions, whole stacks, and in
 * the parser. An invalid source makes the destination invalid. req.arg beyond a
 * stack's size (op 4) is the engine's out-of-range case (BMv2 aborts: API.md).
 * BMv2 refuses to load the JSON p4c writes for a destination element at a run-time
 * index, or an index from an action argument (API.md), so neither is here.
 *
 * Frame: ethernet (etherType 0x9000), req, two h_t (src[0], src[1]), one h_t
 * (one). The const entries of `ops` pick the action by req.op; the deparser
 * emits every header, so the output shows which are valid and what they hold.
 * Frames of etherType 0x88b5 (tests/interop/wire.py's sync frames) go from
 * port 1 to port 2 and back untouched; other frames leave by the other port too. */
#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_SYNC = 0x88b5;
const bit<16> ETHERTYPE_REQ = 0x9000;

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header req_t { bit<8> op; bit<8> arg; }
header h_t { bit<8> a; bit<8> b; }
header_union u_t { h_t x; h_t y; }

struct headers_t {
    ethernet_t ethernet;
    req_t req;
    h_t[3] src;
    h_t one;
    h_t pcopy;     // assigned in the parser
    h_t[3] dst;
    u_t u;
    u_t u2;
}
struct metadata_t { bit<8> unused; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { ETHERTYPE_REQ: parse_req; default: accept; }
    }
    state parse_req {
        pkt.extract(hdr.req);
        pkt.extract(hdr.src.next);
        pkt.extract(hdr.src.next);
        pkt.extract(hdr.one);
        transition select(hdr.req.op) { 9: copy_in_parser; default: accept; }
    }
    state copy_in_parser {
        hdr.pcopy = hdr.one;
        transition accept;
    }
}

control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

// The shape of p4c's gauntlet_mux_hdr test: a stack element assigned under a
// condition in a function; p4c turns it into assign_header(tmp1[0], c ? tmp2[1] : tmp1[0]).
void copy_if_small(inout h_t[3] tmp1, in h_t[3] tmp2, in bit<8> c) {
    if (c <= 3) {
        tmp1[0] = tmp2[1];
    }
}

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    action mux_copy() { copy_if_small(hdr.dst, hdr.src, hdr.req.arg); }
    action const_index_copy() { hdr.dst[1] = hdr.src[0]; hdr.one = hdr.src[1]; }
    action field_indexed_copy() { hdr.pcopy = hdr.src[hdr.req.arg]; }
    action to_union() {
        hdr.u.x = hdr.src[0];
        if (hdr.req.arg == 1) { hdr.u.y = hdr.one; }
        hdr.u2 = hdr.u;
    }
    action invalidate() { hdr.src[0] = hdr.dst[2]; hdr.one = hdr.src[2]; }
    action whole_stack() { hdr.dst = hdr.src; hdr.dst[2] = hdr.one; }
    action swap() { h_t t = hdr.src[0]; hdr.src[0] = hdr.src[1]; hdr.src[1] = t; }
    action nop() { }

    table ops {
        key = { hdr.req.op: exact; }
        actions = { mux_copy; const_index_copy; field_indexed_copy; to_union; invalidate;
                    whole_stack; swap; nop; }
        const default_action = nop();
        const entries = {
            1: mux_copy();
            2: const_index_copy();
            4: field_indexed_copy();
            5: to_union();
            6: invalidate();
            7: whole_stack();
            8: swap();
        }
    }

    apply {
        sm.egress_spec = 3 - sm.ingress_port;
        if (hdr.ethernet.etherType == ETHERTYPE_SYNC) {
            exit;
        }
        if (hdr.req.isValid()) {
            ops.apply();
            if (hdr.req.op == 10) {
                hdr.one = hdr.src[1];   // outside an action: p4c wraps it in one
            }
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
        pkt.emit(hdr.src);
        pkt.emit(hdr.one);
        pkt.emit(hdr.pcopy);
        pkt.emit(hdr.dst);
        pkt.emit(hdr.u);
        pkt.emit(hdr.u2);
    }
}

V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
