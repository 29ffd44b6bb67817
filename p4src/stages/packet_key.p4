/* Stage 2b, packet key: the addresses, protocol and ports every later stage
 * matches on, the same for IPv4 and IPv6. ICMP echo uses its identifier as
 * both ports, so a request and its reply form one pseudo-connection. IPv6
 * neighbour discovery is what ARP is to IPv4: hosts cannot talk without it,
 * so it is not treated as IP traffic and passes untouched, like ARP. */
#ifndef PYOFFLOAD_PACKET_KEY_P4
#define PYOFFLOAD_PACKET_KEY_P4

#include "../include/headers.p4"

control PacketKey(inout headers_t hdr, inout metadata_t meta) {
    apply {
        if (hdr.ipv4.isValid()) {
            meta.l34.is_ip = 1;
            meta.l34.ip_ver = 4;
            meta.l34.src_addr = (ip_addr_t)hdr.ipv4.src_addr;
            meta.l34.dst_addr = (ip_addr_t)hdr.ipv4.dst_addr;
            meta.l34.proto = hdr.ipv4.protocol;
            meta.l34.l4_len = hdr.ipv4.total_len - ((bit<16>)hdr.ipv4.ihl << 2);
            if (hdr.ipv4.frag_offset != 0 || hdr.ipv4.flags[0:0] == 1) {
                meta.l34.is_fragment = 1;
            }
        } else if (hdr.ipv6.isValid()) {
            meta.l34.is_ip = 1;
            meta.l34.ip_ver = 6;
            meta.l34.src_addr = hdr.ipv6.src_addr;
            meta.l34.dst_addr = hdr.ipv6.dst_addr;
            meta.l34.proto = hdr.ipv6.next_hdr;
            meta.l34.l4_len = hdr.ipv6.payload_len;
        }

        if (hdr.tcp.isValid()) {
            meta.l34.src_port = hdr.tcp.src_port;
            meta.l34.dst_port = hdr.tcp.dst_port;
            meta.l34.tcp_flags = hdr.tcp.flags;
            bit<8> f = hdr.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN);
            if (f == 0 || (f & (TCP_SYN | TCP_FIN)) == (TCP_SYN | TCP_FIN)
                    || (f & (TCP_SYN | TCP_RST)) == (TCP_SYN | TCP_RST)) {
                meta.l34.bad_tcp_flags = 1;
            }
            meta.l34.trackable = 1;
        } else if (hdr.udp.isValid()) {
            meta.l34.src_port = hdr.udp.src_port;
            meta.l34.dst_port = hdr.udp.dst_port;
            meta.l34.trackable = 1;
        } else if (hdr.icmp.isValid()) {
            if (hdr.icmp.type == ICMP_ECHO_REQUEST || hdr.icmp.type == ICMP_ECHO_REPLY) {
                meta.l34.src_port = hdr.icmp.identifier;
                meta.l34.dst_port = hdr.icmp.identifier;
                meta.l34.trackable = 1;
            }
        } else if (hdr.icmpv6.isValid()) {
            if (hdr.icmpv6.type >= ICMPV6_ND_FIRST && hdr.icmpv6.type <= ICMPV6_ND_LAST) {
                meta.l34.is_ip = 0;
            } else if (hdr.icmpv6.type == ICMPV6_ECHO_REQUEST || hdr.icmpv6.type == ICMPV6_ECHO_REPLY) {
                meta.l34.src_port = hdr.icmpv6.identifier;
                meta.l34.dst_port = hdr.icmpv6.identifier;
                meta.l34.trackable = 1;
            }
        }
    }
}

#endif
