// Engine fixture: one table per control-plane feature, chosen by the request
// header's `which` byte: ternary with priorities, optional, a direct counter
// keyed on the packet length, a direct meter whose colour is written back, and
// (for frames without a request) MAC learning with a digest and idle timeout.
#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_REQ = 0x88b5;

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header req_t { bit<8> which; bit<16> key; bit<8> color; }

struct headers_t { ethernet_t ethernet; req_t req; }
struct metadata_t { bit<8> color; }
struct learn_t { bit<48> src; bit<9> port; }

parser TParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
               inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            ETHERTYPE_REQ: parse_req;
            default: accept;
        }
    }
    state parse_req { pkt.extract(hdr.req); transition accept; }
}

control TVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control TIngress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) {
    direct_counter(CounterType.packets_and_bytes) len_hits;
    direct_meter<bit<8>>(MeterType.packets) port_rate;

    action out1() { sm.egress_spec = 1; }
    action out2() { sm.egress_spec = 2; }
    action out_to(bit<9> port) { sm.egress_spec = port; }

    table ter {
        key = { hdr.req.key: ternary @name("key"); }
        actions = { out1; out2; out_to; NoAction; }
        default_action = NoAction();
        size = 32;
    }

    table opt {
        key = { hdr.req.key: optional @name("key"); }
        actions = { out1; out2; NoAction; }
        default_action = NoAction();
        size = 16;
    }

    action reflect_counted() { len_hits.count(); sm.egress_spec = sm.ingress_port; }
    table by_length {
        key = { sm.packet_length: exact @name("length"); }
        actions = { reflect_counted; NoAction; }
        counters = len_hits;
        default_action = NoAction();
        size = 16;
    }

    action reflect_metered() { port_rate.read(meta.color); sm.egress_spec = sm.ingress_port; }
    table by_port {
        key = { sm.ingress_port: exact @name("port"); }
        actions = { reflect_metered; NoAction; }
        meters = port_rate;
        default_action = NoAction();
        size = 16;
    }

    action learn() { digest<learn_t>(1, { hdr.ethernet.src, sm.ingress_port }); }
    table known_src {
        key = { hdr.ethernet.src: exact @name("src"); }
        actions = { learn; NoAction; }
        default_action = learn();
        support_timeout = true;
        size = 64;
    }

    apply {
        if (!hdr.req.isValid()) {
            if (hdr.ethernet.isValid()) {
                known_src.apply();
                sm.egress_spec = sm.ingress_port;
            } else {
                mark_to_drop(sm);
            }
        } else if (hdr.req.which == 1) {
            ter.apply();
        } else if (hdr.req.which == 2) {
            opt.apply();
        } else if (hdr.req.which == 3) {
            by_length.apply();
        } else if (hdr.req.which == 4) {
            meta.color = 0xff;  // stays 0xff on a miss
            by_port.apply();
            hdr.req.color = meta.color;
        }
    }
}

control TEgress(inout headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) { apply { } }
control TCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control TDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.req); }
}

V1Switch(TParser(), TVerify(), TIngress(), TEgress(), TCompute(), TDeparser()) main;
