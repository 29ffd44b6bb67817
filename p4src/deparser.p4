/* Deparser: headers back on the wire in parse order; packet_in first for
 * frames to the CPU port. packet_out is never emitted (it is invalidated). */
#ifndef PYOFFLOAD_DEPARSER_P4
#define PYOFFLOAD_DEPARSER_P4

#include "include/headers.p4"

control VnicDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.packet_in);
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.vlan);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.ipv4_options);
        pkt.emit(hdr.ipv6);
        pkt.emit(hdr.tcp);
        pkt.emit(hdr.udp);
        pkt.emit(hdr.icmp);
        pkt.emit(hdr.icmpv6);
    }
}

#endif
