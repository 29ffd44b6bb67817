/* P4Info and BMv2 JSON that do not list the same objects (issue 13, class 3).
 * A `switch` on one table's action_run nested in another's, and a table in a
 * branch p4c's mid end removes (the shape of p4c's gauntlet_nested_switch
 * test): `dead` and its action `to_cpu` are in the P4Info (written from the
 * front end) but not in the BMv2 JSON. BMv2 accepts the pair.
 *
 * Frame: ethernet (etherType 0x9000), req. `outer` (by req.op) picks what
 * happens; on `tag`, `inner` (by the new req.arg) picks the port; the switch
 * arms write req.path so the output shows the path taken. Frames of etherType
 * 0x88b5 (tests/interop/wire.py's sync frames) go from port 1 to port 2 and
 * back untouched; others leave by the other port unless a table says otherwise. */
#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_REQ = 0x9000;

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header req_t { bit<8> op; bit<8> arg; bit<8> path; }

struct headers_t { ethernet_t ethernet; req_t req; }
struct metadata_t { bit<8> unused; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { ETHERTYPE_REQ: parse_req; default: accept; }
    }
    state parse_req { pkt.extract(hdr.req); transition accept; }
}

control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    action tag(bit<8> v) { hdr.req.arg = v; }
    action pass() { }
    action set_port(bit<9> port) { sm.egress_spec = port; }
    action to_cpu() { sm.egress_spec = 64; }

    table outer {
        key = { hdr.req.op: exact; }
        actions = { tag; pass; NoAction; }
        default_action = NoAction();
    }
    table inner {
        key = { hdr.req.arg: exact; }
        actions = { set_port; pass; }
        default_action = pass();
    }
    table dead {
        key = { hdr.ethernet.dst: exact; }
        actions = { to_cpu; NoAction; }
        default_action = NoAction();
    }

    apply {
        sm.egress_spec = 3 - sm.ingress_port;
        if (!hdr.req.isValid()) {
            exit;
        }
        bit<8> limit = 2;
        switch (outer.apply().action_run) {
            tag: {
                switch (inner.apply().action_run) {
                    set_port: { hdr.req.path = 1; }
                    default: { hdr.req.path = 2; }
                }
            }
            pass: {
                if (limit <= 5) {
                    hdr.req.path = 3;
                } else {
                    dead.apply();   // never: p4c's mid end drops the table
                }
            }
            default: { hdr.req.path = 4; }
        }
    }
}

control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) { apply { } }
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.req); }
}

V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
