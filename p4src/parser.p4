/* Parser: packet_out from the CPU port, Ethernet, 802.1Q, IPv4 (with
 * options), IPv6, TCP, UDP, ICMP, ICMPv6. Anything else is left as payload and
 * passes through untouched (ARP, LLDP, ...). Non-first IPv4 fragments carry no
 * L4 header, so L4 is not parsed for them. The ingress port comes from the
 * target through meta.arch (arch/v1model.p4 runs this parser). */
#ifndef PYOFFLOAD_PARSER_P4
#define PYOFFLOAD_PARSER_P4

#include "include/headers.p4"

error {
    IPv4IncorrectVersion,
    IPv4HeaderTooShort,
    IPv6IncorrectVersion
}

/* hdr is inout, not out: the architecture's parser calls this one with the
 * headers it was given, all invalid already, and an out parameter would make
 * p4c invalidate every header once more for each packet. */
parser VnicParser(packet_in pkt,
                  inout headers_t hdr,
                  inout metadata_t meta) {
    state start {
        transition select(meta.arch.ingress_port) {
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
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_VLAN: parse_vlan;
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_vlan {
        pkt.extract(hdr.vlan);
        transition select(hdr.vlan.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        verify(hdr.ipv4.version == 4, error.IPv4IncorrectVersion);
        verify(hdr.ipv4.ihl >= 5, error.IPv4HeaderTooShort);
        transition select(hdr.ipv4.ihl) {
            5: parse_ipv4_l4;
            default: parse_ipv4_options;
        }
    }

    state parse_ipv4_options {
        pkt.extract(hdr.ipv4_options, ((bit<32>)hdr.ipv4.ihl - 5) * 32);
        transition parse_ipv4_l4;
    }

    state parse_ipv4_l4 {
        transition select(hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (0, PROTO_TCP): parse_tcp;
            (0, PROTO_UDP): parse_udp;
            (0, PROTO_ICMP): parse_icmp;
            default: accept;
        }
    }

    state parse_ipv6 {
        pkt.extract(hdr.ipv6);
        verify(hdr.ipv6.version == 6, error.IPv6IncorrectVersion);
        transition select(hdr.ipv6.next_hdr) {
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }

    state parse_tcp {
        pkt.extract(hdr.tcp);
        transition accept;
    }

    state parse_udp {
        pkt.extract(hdr.udp);
        transition accept;
    }

    state parse_icmp {
        pkt.extract(hdr.icmp);
        transition accept;
    }

    state parse_icmpv6 {
        pkt.extract(hdr.icmpv6);
        transition accept;
    }
}

#endif
