/* Stage 10, forward / punt: to the VNIC's peer port, back to the sender as a
 * TCP reset (reject), to the CPU port with a packet_in header (punt), or
 * dropped and counted. Per-flow counters are updated here, once the fate of
 * the packet is known. The decision goes to the target through meta.arch
 * (egress port, drop, truncate). */
#ifndef PYOFFLOAD_FORWARD_P4
#define PYOFFLOAD_FORWARD_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

/* Turns a TCP segment into the RST its sender should see (reject), cut to
 * its headers. A control rather than an action: it branches on header
 * validity, which BMv2 does not allow inside actions. */
control TcpReset(inout headers_t hdr, inout metadata_t meta) {
    apply {
        mac_t mac = hdr.ethernet.src_addr;
        hdr.ethernet.src_addr = hdr.ethernet.dst_addr;
        hdr.ethernet.dst_addr = mac;

        bit<16> port = hdr.tcp.src_port;
        hdr.tcp.src_port = hdr.tcp.dst_port;
        hdr.tcp.dst_port = port;
        bit<32> seg_len = (bit<32>)meta.l34.l4_len - ((bit<32>)hdr.tcp.data_offset << 2);
        if ((hdr.tcp.flags & TCP_SYN) != 0) {
            seg_len = seg_len + 1;
        }
        if ((hdr.tcp.flags & TCP_FIN) != 0) {
            seg_len = seg_len + 1;
        }
        if ((hdr.tcp.flags & TCP_ACK) != 0) {
            hdr.tcp.seq_no = hdr.tcp.ack_no;
            hdr.tcp.ack_no = 0;
            hdr.tcp.flags = TCP_RST;
        } else {
            hdr.tcp.ack_no = hdr.tcp.seq_no + seg_len;
            hdr.tcp.seq_no = 0;
            hdr.tcp.flags = TCP_RST | TCP_ACK;
        }
        hdr.tcp.data_offset = 5;
        hdr.tcp.res = 0;
        hdr.tcp.window = 0;
        hdr.tcp.urgent_ptr = 0;

        bit<32> frame_len = 14 + 20;
        if (hdr.vlan.isValid()) {
            frame_len = frame_len + 4;
        }
        if (hdr.ipv4.isValid()) {
            ipv4_addr_t a = hdr.ipv4.src_addr;
            hdr.ipv4.src_addr = hdr.ipv4.dst_addr;
            hdr.ipv4.dst_addr = a;
            hdr.ipv4.ihl = 5;
            hdr.ipv4_options.setInvalid();
            hdr.ipv4.total_len = 40;
            hdr.ipv4.ttl = 64;
            hdr.ipv4.flags = 0;
            hdr.ipv4.identification = 0;
            frame_len = frame_len + 20;
        } else {
            ip_addr_t a6 = hdr.ipv6.src_addr;
            hdr.ipv6.src_addr = hdr.ipv6.dst_addr;
            hdr.ipv6.dst_addr = a6;
            hdr.ipv6.payload_len = 20;
            hdr.ipv6.hop_limit = 64;
            frame_len = frame_len + 40;
        }
        meta.arch.truncate_len = frame_len;
    }
}

control Forward(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.drop_counter")
    ARCH_COUNTER_PACKETS_AND_BYTES(DROP_REASONS) drop_counter;

    @name(".vnic.flow_counter")
    ARCH_COUNTER_PACKETS_AND_BYTES(FLOW_COUNTER_SIZE) flow_counter;

    TcpReset() tcp_reset;

    apply {
        if (meta.punt == 1) {
            meta.arch.egress_port = CPU_PORT;
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.vnic.in_port;
            hdr.packet_in._pad = 0;
            hdr.packet_in.reason = meta.punt_reason;
            hdr.packet_in.vnic_id = meta.vnic.vnic_id;
            hdr.packet_in.flow_id = meta.flow.flow_id;
            return;
        }
        if (meta.drop == 1) {
            ARCH_COUNT(drop_counter, meta.drop_reason);
            meta.arch.drop = 1;
            return;
        }
        if (meta.flow.hit == 1 && (meta.flow.services & SVC_COUNT) != 0) {
            ARCH_COUNT(flow_counter, meta.flow.counter_index);
        }
        if (meta.reject == 1) {
            tcp_reset.apply(hdr, meta);
            meta.arch.egress_port = meta.vnic.in_port;
            return;
        }
        meta.arch.egress_port = meta.vnic.peer_port;
    }
}

#endif
