// Frames shorter than the headers the parser extracts (differential test against
// BMv2; a tap or tun device delivers frames of 0..13 bytes): PacketTooShort at the
// first extract, inside a stack, at a lookahead, an advance and a varbit extract;
// the parsed bytes are removed, the rest is payload; tables and forwarding read the
// (invalid, so stale) Ethernet header as BMv2 does. Every packet goes to the CPU port
// with a report (the port the program picked, parser error, lengths) in front.
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header ip_t { bit<8> ver; bit<8> len; bit<16> id; bit<32> src; bit<32> dst; }
header tag_t { bit<16> v; }
header opt_t { bit<8> len; varbit<64> data; }
header report_t { bit<16> port; bit<8> perr; bit<16> plen; bit<8> valid; bit<32> ipdst; }

struct headers_t { report_t report; ethernet_t ethernet; ip_t ip; tag_t[2] tags; opt_t opt; }
struct metadata_t { bit<16> peek; }

parser MyParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x0800: parse_ip; 0x8100: parse_tags; 0x88b5: parse_peek; 0x88b6: parse_opt;
            0x88b7: skip; default: accept; } }
    state parse_ip { pkt.extract(hdr.ip); transition accept; }
    state parse_tags { pkt.extract(hdr.tags.next); pkt.extract(hdr.tags.next); transition accept; }
    state parse_peek { meta.peek = pkt.lookahead<bit<16>>();
        transition select(meta.peek) { 0x0800: parse_ip; default: accept; } }
    state parse_opt { pkt.extract(hdr.opt, (bit<32>)(pkt.lookahead<bit<8>>() * 8)); transition accept; }
    state skip { pkt.advance(32); transition parse_ip; }
}
control MyVerify(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action to(bit<16> port) { hdr.report.port = port; }
    action other() { hdr.report.port = (bit<16>)hdr.ethernet.dst[7:0] + 100; }
    table l2 {
        key = { hdr.ethernet.dst: exact; }
        actions = { to; other; }
        const entries = {
            0x000000000001: to(1);
            0x000000000002: to(2);
        }
        default_action = other();
    }
    apply {
        hdr.report.setValid();
        if (sm.parser_error == error.NoError) { hdr.report.perr = 0; }
        else if (sm.parser_error == error.PacketTooShort) { hdr.report.perr = 1; }
        else if (sm.parser_error == error.StackOutOfBounds) { hdr.report.perr = 3; }
        else if (sm.parser_error == error.HeaderTooShort) { hdr.report.perr = 4; }
        else if (sm.parser_error == error.ParserInvalidArgument) { hdr.report.perr = 6; }
        else { hdr.report.perr = 9; }
        hdr.report.plen = (bit<16>)sm.packet_length;
        l2.apply();
        bit<8> v = 0;
        if (hdr.ethernet.isValid()) { v = v | 1; }
        if (hdr.ip.isValid()) { v = v | 2; }
        if (hdr.tags[0].isValid()) { v = v | 4; }
        if (hdr.tags[1].isValid()) { v = v | 8; }
        if (hdr.opt.isValid()) { v = v | 16; }
        hdr.report.valid = v;
        hdr.report.ipdst = hdr.ip.dst;
        sm.egress_spec = 510;
    }
}
control MyEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply { }
}
control MyCompute(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.report); pkt.emit(hdr.ethernet); pkt.emit(hdr.ip); pkt.emit(hdr.tags);
            pkt.emit(hdr.opt); }
}
V1Switch(MyParser(), MyVerify(), MyIngress(), MyEgress(), MyCompute(), MyDeparser()) main;
