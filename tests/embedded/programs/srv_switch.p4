/* Test program for the embedded target's P4Runtime server (tests/embedded/test_p4runtime_*).
 * One of each control-plane object: exact/ternary+range/lpm tables, an action
 * selector, direct counter and meter, indexed counter/meter/register, a digest,
 * multicast, clone, idle timeout, and packet-in/packet-out through CPU port 64. */
#include <core.p4>
#include <v1model.p4>

#define CPU_PORT 64

@controller_header("packet_in")
header packet_in_t {
    bit<9> ingress_port;
    bit<7> _pad;
}

@controller_header("packet_out")
header packet_out_t {
    bit<9> egress_port;
    bit<7> _pad;
}

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  diffserv;
    bit<16> totalLen;
    bit<16> identification;
    bit<3>  flags;
    bit<13> fragOffset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdrChecksum;
    bit<32> srcAddr;
    bit<32> dstAddr;
}

struct headers_t {
    packet_out_t packet_out;
    packet_in_t  packet_in;
    ethernet_t   ethernet;
    ipv4_t       ipv4;
}

struct learn_t {
    bit<48> srcAddr;
    bit<9>  ingress_port;
}

struct metadata_t {
    bit<32> color;
}

parser SrvParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) {
    state start {
        transition select(sm.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }
    state parse_packet_out {
        pkt.extract(hdr.packet_out);
        transition parse_ethernet;
    }
    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x0800: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition accept;
    }
}

control SrvVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control SrvIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    direct_counter(CounterType.packets_and_bytes) acl_counter;
    direct_meter<bit<32>>(MeterType.packets) acl_meter;
    counter(512, CounterType.packets_and_bytes) port_counter;
    meter(512, MeterType.packets) port_meter;
    register<bit<32>>(16) last_port;
    action_selector(HashAlgorithm.crc16, 32w64, 32w10) ecmp_selector;

    action drop() { mark_to_drop(sm); }
    action forward(bit<9> port) { sm.egress_spec = port; }
    action to_cpu() { sm.egress_spec = CPU_PORT; }
    action flood() { sm.mcast_grp = 1; }
    action mirror(bit<32> session) { clone(CloneType.I2E, session); }

    table l2 {
        key = { hdr.ethernet.dstAddr : exact; }
        actions = { forward; to_cpu; flood; drop; NoAction; }
        default_action = NoAction();
        support_timeout = true;
        size = 65536;
    }

    action acl_forward(bit<9> port) { acl_meter.read(meta.color); sm.egress_spec = port; }
    action acl_drop() { acl_meter.read(meta.color); mark_to_drop(sm); }
    table acl {
        key = {
            hdr.ethernet.srcAddr : ternary;
            hdr.ethernet.etherType : range;
        }
        actions = { acl_forward; acl_drop; mirror; NoAction; }
        default_action = NoAction();
        counters = acl_counter;
        meters = acl_meter;
        size = 1024;
    }

    table routes {
        key = { hdr.ipv4.dstAddr : lpm; }
        actions = { forward; drop; }
        default_action = drop();
        size = 4096;
    }

    table ecmp {
        key = {
            hdr.ipv4.dstAddr : exact;
            hdr.ipv4.srcAddr : selector;
        }
        actions = { forward; NoAction; }
        implementation = ecmp_selector;
        size = 64;
    }

    apply {
        if (hdr.packet_out.isValid()) {
            sm.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            return;
        }
        port_counter.count((bit<32>) sm.ingress_port);
        port_meter.execute_meter((bit<32>) sm.ingress_port, meta.color);
        last_port.write(0, (bit<32>) sm.ingress_port);
        if (!l2.apply().hit) {
            digest<learn_t>(1, { hdr.ethernet.srcAddr, sm.ingress_port });
        }
        if (hdr.ipv4.isValid()) {
            routes.apply();
            ecmp.apply();
        }
        acl.apply();
    }
}

control SrvEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply {
        if (sm.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = sm.ingress_port;
            hdr.packet_in._pad = 0;
        }
    }
}

control SrvCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }

control SrvDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.packet_in);
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
    }
}

V1Switch(SrvParser(), SrvVerify(), SrvIngress(), SrvEgress(), SrvCompute(), SrvDeparser()) main;
