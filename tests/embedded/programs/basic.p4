// Engine fixture: L2/L3 parsing, port map, LPM, ternary ACL with ranges and
// priorities, optional keys, const entries, direct counters, checksums.
// A router: the LPM route picks the output port and next-hop MAC, the
// output port picks the source MAC.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header vlan_t { bit<3> pcp; bit<1> dei; bit<12> vid; bit<16> etherType; }
header ipv4_t {
    bit<4> version; bit<4> ihl; bit<8> diffserv; bit<16> totalLen;
    bit<16> identification; bit<3> flags; bit<13> fragOffset;
    bit<8> ttl; bit<8> protocol; bit<16> hdrChecksum;
    bit<32> srcAddr; bit<32> dstAddr;
}
header ipv6_t {
    bit<4> version; bit<8> trafficClass; bit<20> flowLabel;
    bit<16> payloadLen; bit<8> nextHdr; bit<8> hopLimit;
    bit<128> srcAddr; bit<128> dstAddr;
}
header tcp_t {
    bit<16> srcPort; bit<16> dstPort; bit<32> seqNo; bit<32> ackNo;
    bit<4> dataOffset; bit<4> res; bit<8> flags; bit<16> window;
    bit<16> checksum; bit<16> urgentPtr;
}
header udp_t { bit<16> srcPort; bit<16> dstPort; bit<16> len; bit<16> checksum; }
header icmp_t { bit<8> type; bit<8> code; bit<16> checksum; }

struct headers_t {
    ethernet_t ethernet; vlan_t vlan; ipv4_t ipv4; ipv6_t ipv6;
    tcp_t tcp; udp_t udp; icmp_t icmp;
}
struct metadata_t { bit<16> vnic; bit<9> peer; bit<8> acl_hits; bit<16> l4_len; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x8100: parse_vlan; 0x0800: parse_ipv4; 0x86dd: parse_ipv6; default: accept; } }
    state parse_vlan { pkt.extract(hdr.vlan);
        transition select(hdr.vlan.etherType) {
            0x0800: parse_ipv4; 0x86dd: parse_ipv6; default: accept; } }
    state parse_ipv4 { pkt.extract(hdr.ipv4);
        meta.l4_len = hdr.ipv4.totalLen - 20;
        transition select(hdr.ipv4.fragOffset, hdr.ipv4.ihl, hdr.ipv4.protocol) {
            (0, 5, 6): parse_tcp; (0, 5, 17): parse_udp; (0, 5, 1): parse_icmp;
            default: accept; } }
    state parse_ipv6 { pkt.extract(hdr.ipv6);
        transition select(hdr.ipv6.nextHdr) { 6: parse_tcp; 17: parse_udp; default: accept; } }
    state parse_tcp { pkt.extract(hdr.tcp); transition accept; }
    state parse_udp { pkt.extract(hdr.udp); transition accept; }
    state parse_icmp { pkt.extract(hdr.icmp); transition accept; }
}

control MyVerify(inout headers_t hdr, inout metadata_t meta) {
    apply {
        verify_checksum(hdr.ipv4.isValid() && hdr.ipv4.ihl == 5,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
    }
}

control MyIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    direct_counter(CounterType.packets_and_bytes) acl_counter;

    action drop() { mark_to_drop(sm); }
    action set_port(bit<16> vnic, bit<9> peer) { meta.vnic = vnic; meta.peer = peer; }
    table port_map {
        key = { sm.ingress_port: exact @name("port"); }
        actions = { set_port; drop; }
        const default_action = drop();
        size = 64;
    }
    action route(bit<9> port, bit<48> dmac) {
        meta.peer = port;
        hdr.ethernet.dst = dmac;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
    }
    table ipv4_lpm {
        key = { meta.vnic: exact; hdr.ipv4.dstAddr: lpm; }
        actions = { route; NoAction; }
        default_action = NoAction();
    }
    action set_smac(bit<48> smac) { hdr.ethernet.src = smac; }
    table port_smac {
        key = { meta.peer: exact @name("port"); }
        actions = { set_smac; NoAction; }
        default_action = NoAction();
        size = 64;
    }
    action allow() { acl_counter.count(); meta.acl_hits = meta.acl_hits + 1; }
    action deny() { acl_counter.count(); mark_to_drop(sm); }
    table acl {
        key = {
            meta.vnic: exact;
            hdr.ipv4.srcAddr: ternary;
            hdr.ipv4.protocol: optional;
            hdr.tcp.dstPort: range;
        }
        actions = { allow; deny; }
        default_action = allow();
        counters = acl_counter;
        size = 128;
    }
    action set_dscp(bit<6> dscp) { hdr.ipv4.diffserv = dscp ++ hdr.ipv4.diffserv[1:0]; }
    table dscp_map {
        key = { hdr.ipv4.protocol: exact; }
        actions = { set_dscp; NoAction; }
        const entries = { 6: set_dscp(10); 17: set_dscp(46); }
        default_action = NoAction();
    }
    apply {
        port_map.apply();
        if (sm.egress_spec == 511) { return; }
        if (hdr.ipv4.isValid()) {
            if (sm.checksum_error == 1) { drop(); return; }
            ipv4_lpm.apply();
            if (hdr.tcp.isValid()) { acl.apply(); }
            dscp_map.apply();
            if (hdr.ipv4.ttl == 0) { drop(); return; }
        }
        sm.egress_spec = meta.peer;
        port_smac.apply();
    }
}

control MyEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t sm) { apply { } }

control MyCompute(inout headers_t hdr, inout metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.tcp.isValid() && hdr.ipv4.isValid(),
            { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, 8w0, hdr.ipv4.protocol, meta.l4_len,
              hdr.tcp.srcPort, hdr.tcp.dstPort, hdr.tcp.seqNo, hdr.tcp.ackNo,
              hdr.tcp.dataOffset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window,
              16w0, hdr.tcp.urgentPtr },
            hdr.tcp.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.udp.isValid() && hdr.ipv4.isValid(),
            { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, 8w0, hdr.ipv4.protocol, hdr.udp.len,
              hdr.udp.srcPort, hdr.udp.dstPort, hdr.udp.len, 16w0 },
            hdr.udp.checksum, HashAlgorithm.csum16);
    }
}

control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet); pkt.emit(hdr.vlan); pkt.emit(hdr.ipv4); pkt.emit(hdr.ipv6);
        pkt.emit(hdr.tcp); pkt.emit(hdr.udp); pkt.emit(hdr.icmp);
    }
}

V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
