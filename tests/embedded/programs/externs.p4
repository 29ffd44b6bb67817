// Engine fixture: registers, counters, meters, direct meters, hashes of every
// v1model algorithm, random, action selectors. Results go into a probe header.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header probe_t {
    bit<8>  op;        // what to do
    bit<32> index;
    bit<32> value;
    bit<32> result;
    bit<16> h_crc16; bit<32> h_crc32; bit<16> h_crc16c; bit<32> h_crc32c;
    bit<16> h_csum16; bit<16> h_xor16; bit<32> h_identity; bit<16> h_mod;
    bit<8>  color; bit<8> dcolor; bit<16> member_out; bit<8> rnd;
}
struct headers_t { ethernet_t ethernet; probe_t probe; }
struct metadata_t { bit<32> tmp; bit<8> dcolor; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x88b5: parse_probe; default: accept; } }
    state parse_probe { pkt.extract(hdr.probe); transition accept; }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    register<bit<32>>(1024) reg32;
    register<bit<8>>(16) reg8;
    counter(64, CounterType.packets_and_bytes) ctr;
    counter(64, CounterType.packets) pctr;
    meter(16, MeterType.packets) pmeter;
    meter(16, MeterType.bytes) bmeter;
    direct_meter<bit<8>>(MeterType.packets) dmeter;
    action_selector(HashAlgorithm.crc16, 32w128, 32w16) sel;

    action metered() { dmeter.read(meta.dcolor); }
    table dmeter_t {
        key = { hdr.probe.index: exact; }
        actions = { metered; NoAction; }
        meters = dmeter;
        default_action = NoAction();
    }
    action set_member(bit<16> v) { hdr.probe.member_out = v; }
    table lb {
        key = { hdr.probe.index: exact; hdr.probe.value: selector; }
        actions = { set_member; NoAction; }
        implementation = sel;
        size = 64;
    }
    apply {
        if (!hdr.probe.isValid()) { mark_to_drop(sm); return; }
        sm.egress_spec = sm.ingress_port;
        if (hdr.probe.op == 1) {
            reg32.write(hdr.probe.index, hdr.probe.value);
        } else if (hdr.probe.op == 2) {
            reg32.read(hdr.probe.result, hdr.probe.index);
        } else if (hdr.probe.op == 3) {
            bit<8> old; reg8.read(old, hdr.probe.index);
            reg8.write(hdr.probe.index, old + 200);
            hdr.probe.result = (bit<32>)(old + 200);
        } else if (hdr.probe.op == 4) {
            ctr.count(hdr.probe.index); pctr.count(hdr.probe.index);
        } else if (hdr.probe.op == 5) {
            pmeter.execute_meter(hdr.probe.index, hdr.probe.color);
        } else if (hdr.probe.op == 6) {
            bmeter.execute_meter(hdr.probe.index, hdr.probe.color);
        } else if (hdr.probe.op == 7) {
            dmeter_t.apply();
            hdr.probe.dcolor = meta.dcolor;
        } else if (hdr.probe.op == 8) {
            lb.apply();
        } else if (hdr.probe.op == 9) {
            random(hdr.probe.rnd, 8w10, 8w20);
        }
        hash(hdr.probe.h_crc16, HashAlgorithm.crc16, 16w0, { hdr.probe.index, hdr.probe.value }, 32w65536);
        hash(hdr.probe.h_crc32, HashAlgorithm.crc32, 32w0, { hdr.probe.index, hdr.probe.value }, 64w4294967296);
        hash(hdr.probe.h_crc16c, HashAlgorithm.crc16_custom, 16w0, { hdr.probe.index, hdr.probe.value }, 32w65536);
        hash(hdr.probe.h_crc32c, HashAlgorithm.crc32_custom, 32w0, { hdr.probe.index, hdr.probe.value }, 64w4294967296);
        hash(hdr.probe.h_csum16, HashAlgorithm.csum16, 16w0, { hdr.probe.index, hdr.probe.value }, 32w65536);
        hash(hdr.probe.h_xor16, HashAlgorithm.xor16, 16w0, { hdr.probe.index, hdr.probe.value }, 32w65536);
        hash(hdr.probe.h_identity, HashAlgorithm.identity, 32w0, { hdr.probe.value }, 64w4294967296);
        hash(hdr.probe.h_mod, HashAlgorithm.crc32, 16w100, { hdr.probe.index, hdr.probe.value }, 32w7);
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) { apply { } }
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.probe); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
