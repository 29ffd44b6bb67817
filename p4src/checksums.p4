/* Checksums: the IPv4 header checksum is verified on every IPv4 packet (a bad
 * one is dropped and counted in ingress); after a rewrite (NAT, a rejecting
 * TCP reset) the IPv4 header checksum is recomputed. A TCP reset's checksum is
 * computed here over its header (it carries no payload); NAT updates the
 * TCP/UDP checksum incrementally in NatRewrite (stages/nat.p4). The checksum
 * externs are the target's: ARCH_*_CHECKSUM16 (arch/v1model.p4). */
#ifndef PYOFFLOAD_CHECKSUMS_P4
#define PYOFFLOAD_CHECKSUMS_P4

#include "include/headers.p4"

control VnicVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        ARCH_VERIFY_CHECKSUM16(hdr.ipv4.isValid(), hdr.ipv4.hdr_checksum,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn,
              hdr.ipv4.total_len, hdr.ipv4.identification, hdr.ipv4.flags,
              hdr.ipv4.frag_offset, hdr.ipv4.ttl, hdr.ipv4.protocol,
              hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.ipv4_options.options });
    }
}

control VnicComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        bool rewritten = meta.nat.applied == 1 || meta.reject == 1;

        ARCH_UPDATE_CHECKSUM16(hdr.ipv4.isValid() && rewritten, hdr.ipv4.hdr_checksum,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn,
              hdr.ipv4.total_len, hdr.ipv4.identification, hdr.ipv4.flags,
              hdr.ipv4.frag_offset, hdr.ipv4.ttl, hdr.ipv4.protocol,
              hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.ipv4_options.options });

        /* A TCP reset built from the packet: header only, the payload is cut. */
        ARCH_UPDATE_CHECKSUM16(hdr.ipv4.isValid() && hdr.tcp.isValid() && meta.reject == 1,
            hdr.tcp.checksum,
            { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, 8w0, hdr.ipv4.protocol, 16w20,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
              hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window,
              hdr.tcp.urgent_ptr });

        ARCH_UPDATE_CHECKSUM16(hdr.ipv6.isValid() && hdr.tcp.isValid() && meta.reject == 1,
            hdr.tcp.checksum,
            { hdr.ipv6.src_addr, hdr.ipv6.dst_addr, 32w20, 24w0, hdr.ipv6.next_hdr,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
              hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window,
              hdr.tcp.urgent_ptr });
    }
}

#endif
