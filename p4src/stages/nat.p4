/* Stage 6, NAT: source and destination translation with ports (IPv4, TCP
 * and UDP).
 *
 * The translation is chosen on the first packet of a connection (the NAT
 * rules of the flow; SNAT picks its port by hashing the tuple into the rule's
 * port range) and stored with the connection by the conntrack commit; every
 * later packet, replies included, takes the rewrite stored in the slot it
 * hits. The headers are rewritten by NatRewrite, after the commit, so that a
 * connection whose translated tuple cannot be stored is not half-translated. */
#ifndef PYOFFLOAD_NAT_P4
#define PYOFFLOAD_NAT_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control Nat(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.nat_snat")
    action snat(bit<32> addr, bit<16> port_min, bit<16> port_max) {
        meta.nat.src_rewrite = 1;
        meta.nat.new_src_addr = addr;
        ARCH_HASH_CRC16(meta.nat.new_src_port, port_min, (bit<32>)(port_max - port_min) + 1,
                        { meta.l34.src_addr, meta.l34.dst_addr, meta.l34.src_port,
                          meta.l34.dst_port, meta.l34.proto });
    }

    @name(".vnic.nat_dnat")
    action dnat(bit<32> addr, bit<16> port) {
        meta.nat.dst_rewrite = 1;
        meta.nat.new_dst_addr = addr;
        meta.nat.new_dst_port = port;
        if (port == 0) {
            meta.nat.new_dst_port = meta.l34.dst_port;
        }
    }

    @name(".vnic.nat_none")
    action no_nat() {
    }

    @name(".vnic.nat")
    table nat {
        key = {
            meta.vnic.vnic_id:   exact   @name("vnic_id");
            meta.flow.flow_id:   exact   @name("flow_id");
            meta.vnic.direction: ternary @name("direction");
            meta.l34.src_addr:   ternary @name("src_addr");
            meta.l34.dst_addr:   ternary @name("dst_addr");
            meta.l34.proto:      ternary @name("protocol");
            meta.l34.src_port:   range   @name("src_port");
            meta.l34.dst_port:   range   @name("dst_port");
        }
        actions = {
            snat;
            dnat;
            @defaultonly no_nat;
        }
        const default_action = no_nat();
        size = NAT_SIZE;
    }

    apply {
        if (meta.ct.hit == 1) {
            meta.nat.src_rewrite = meta.ct.xlate_src;
            meta.nat.new_src_addr = meta.ct.xlate_src_addr;
            meta.nat.new_src_port = meta.ct.xlate_src_port;
            meta.nat.dst_rewrite = meta.ct.xlate_dst;
            meta.nat.new_dst_addr = meta.ct.xlate_dst_addr;
            meta.nat.new_dst_port = meta.ct.xlate_dst_port;
            if (meta.nat.src_rewrite == 1 || meta.nat.dst_rewrite == 1) {
                meta.nat.applied = 1;
            }
            return;
        }
        if (meta.flow.hit == 1 && (meta.flow.services & SVC_NAT) != 0
                && hdr.ipv4.isValid() && (hdr.tcp.isValid() || hdr.udp.isValid())
                && meta.ct.acl_state == CTS_NEW
                && (meta.verdict == VERDICT_ALLOW || meta.verdict == VERDICT_ALLOW_TRACK)) {
            nat.apply();
        }
    }
}

/* Writes the decided translation into the headers (after the commit) and
 * updates the TCP/UDP checksum for the changed words (RFC 1624, eqn. 3)
 * instead of computing it again over the payload: a segment corrupted before
 * the VNIC stays detectably corrupt after it, and bytes past the IP packet
 * (Ethernet padding) never enter the checksum. The IPv4 header checksum is
 * computed again in VnicComputeChecksum (it was verified on the way in). */
control NatRewrite(inout headers_t hdr, inout metadata_t meta) {
    apply {
        if (meta.nat.applied == 0 || meta.drop == 1 || meta.punt == 1) {
            meta.nat.applied = 0;
            return;
        }
        ipv4_addr_t old_src = hdr.ipv4.src_addr;
        ipv4_addr_t old_dst = hdr.ipv4.dst_addr;
        bit<16> old_sport = meta.l34.src_port;
        bit<16> old_dport = meta.l34.dst_port;
        ipv4_addr_t new_src = old_src;
        ipv4_addr_t new_dst = old_dst;
        bit<16> new_sport = old_sport;
        bit<16> new_dport = old_dport;
        if (meta.nat.src_rewrite == 1) {
            new_src = meta.nat.new_src_addr;
            new_sport = meta.nat.new_src_port;
        }
        if (meta.nat.dst_rewrite == 1) {
            new_dst = meta.nat.new_dst_addr;
            new_dport = meta.nat.new_dst_port;
        }
        hdr.ipv4.src_addr = new_src;
        hdr.ipv4.dst_addr = new_dst;

        /* Ones' complement sum of (new - old) over the changed 16-bit words:
         * the addresses (pseudo-header) and the ports. */
        bit<32> delta = (bit<32>)(~old_src[31:16]) + (bit<32>)(~old_src[15:0])
            + (bit<32>)(~old_dst[31:16]) + (bit<32>)(~old_dst[15:0])
            + (bit<32>)(~old_sport) + (bit<32>)(~old_dport)
            + (bit<32>)new_src[31:16] + (bit<32>)new_src[15:0]
            + (bit<32>)new_dst[31:16] + (bit<32>)new_dst[15:0]
            + (bit<32>)new_sport + (bit<32>)new_dport;

        if (hdr.tcp.isValid()) {
            hdr.tcp.src_port = new_sport;
            hdr.tcp.dst_port = new_dport;
            bit<32> sum = (bit<32>)(~hdr.tcp.checksum) + delta;
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            hdr.tcp.checksum = ~sum[15:0];
        } else if (hdr.udp.isValid()) {
            hdr.udp.src_port = new_sport;
            hdr.udp.dst_port = new_dport;
            /* 0: the sender computed no checksum; keep it that way. */
            if (hdr.udp.checksum != 0) {
                bit<32> sum = (bit<32>)(~hdr.udp.checksum) + delta;
                sum = (sum & 0xffff) + (sum >> 16);
                sum = (sum & 0xffff) + (sum >> 16);
                hdr.udp.checksum = ~sum[15:0];
                if (hdr.udp.checksum == 0) {
                    hdr.udp.checksum = 0xffff;
                }
            }
        }
    }
}

#endif
