/* Packet headers and the metadata every stage shares. */
#ifndef PYOFFLOAD_HEADERS_P4
#define PYOFFLOAD_HEADERS_P4

#include "defines.p4"

/* From the agent: send the frame to egress_port, or (inject = 1) run it
 * through the pipeline as if it had arrived on inject_port, or (probe = 1)
 * record the pipeline's clock in vnic.clock and drop the frame. */
@controller_header("packet_out")
header packet_out_h {
    port_t egress_port;
    port_t inject_port;
    bit<1> inject;
    bit<1> probe;
    bit<4> _pad;
}

/* To the agent: why the frame was punted, and whose it was. */
@controller_header("packet_in")
header packet_in_h {
    port_t    ingress_port;
    bit<7>    _pad;
    bit<8>    reason;
    vnic_id_t vnic_id;
    flow_id_t flow_id;
}

header ethernet_h {
    mac_t   dst_addr;
    mac_t   src_addr;
    bit<16> ether_type;
}

header vlan_h {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> ether_type;
}

header ipv4_h {
    bit<4>      version;
    bit<4>      ihl;
    bit<6>      dscp;
    bit<2>      ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

/* IPv4 options: up to 40 bytes, length from ihl. */
header ipv4_options_h {
    varbit<320> options;
}

header ipv6_h {
    bit<4>    version;
    bit<8>    traffic_class;
    bit<20>   flow_label;
    bit<16>   payload_len;
    bit<8>    next_hdr;
    bit<8>    hop_limit;
    ip_addr_t src_addr;
    ip_addr_t dst_addr;
}

header tcp_h {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  res;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_h {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> len;
    bit<16> checksum;
}

/* ICMP and ICMPv6 share this layout; identifier/sequence are the "rest of
 * header" word, meaningful for echo request/reply. */
header icmp_h {
    bit<8>  type;
    bit<8>  code;
    bit<16> checksum;
    bit<16> identifier;
    bit<16> sequence;
}

/* To the agent, once per new tracked connection: whose it is, its
 * direction-normalised tuple and its slot, so the agent can list connections
 * (`pyoffload flows`) and count them per VNIC. */
struct ct_new_digest_t {
    vnic_id_t vnic_id;
    flow_id_t flow_id;
    bit<8>    protocol;
    ip_addr_t lo_addr;
    ip_addr_t hi_addr;
    bit<16>   lo_port;
    bit<16>   hi_port;
    bit<32>   slot;
}

struct headers_t {
    packet_out_h   packet_out;
    packet_in_h    packet_in;
    ethernet_h     ethernet;
    vlan_h         vlan;
    ipv4_h         ipv4;
    ipv4_options_h ipv4_options;
    ipv6_h         ipv6;
    tcp_h          tcp;
    udp_h          udp;
    icmp_h         icmp;
    icmp_h         icmpv6;
}

/* The VNIC the packet belongs to (port map). */
struct vnic_meta_t {
    port_t    in_port;
    bit<1>    mapped;
    vnic_id_t vnic_id;
    bit<1>    direction;
    port_t    peer_port;
    bit<2>    default_policy;
    bit<1>    admit_new;       /* 0: the VNIC is at its tracked-connection quota */
}

/* The packet's addresses and ports, IPv4 and IPv6 alike. */
struct l34_meta_t {
    bit<1>    is_ip;
    bit<4>    ip_ver;
    ip_addr_t src_addr;
    ip_addr_t dst_addr;
    bit<8>    proto;
    bit<16>   src_port;
    bit<16>   dst_port;
    bit<8>    tcp_flags;
    bit<1>    bad_tcp_flags; /* SYN+FIN, SYN+RST, or none of SYN/ACK/RST/FIN */
    bit<1>    trackable;   /* TCP, UDP, or ICMP echo, not a later fragment */
    bit<1>    is_fragment;
    bit<16>   l4_len;      /* bytes after the IP header(s), for checksums */
}

/* The declared flow the packet belongs to, and its configuration. */
struct flow_meta_t {
    bit<1>    hit;
    flow_id_t flow_id;
    bit<8>    services;
    bit<8>    ct_profile;
    bit<3>    default_verdict;
    bit<32>   meter_index;
    bit<32>   counter_index;
    bit<32>   mirror_session;
}

/* Connection tracking: the looked-up slot and what it says. */
struct ct_meta_t {
    /* direction-normalised tuple: (lo_addr, lo_port) <= (hi_addr, hi_port) */
    bit<1>    swapped;
    ip_addr_t lo_addr;
    ip_addr_t hi_addr;
    bit<16>   lo_port;
    bit<16>   hi_port;
    bit<32>   index;
    bit<32>   signature;
    bit<1>    overflow_hit;
    bit<16>   stored_flow;
    /* what the slot holds */
    bit<32>   stored_signature;
    bit<32>   stored_info;
    bit<48>   stored_expires;
    bit<48>   timeout;
    bit<4>    stored_state;
    bit<1>    live;
    bit<1>    hit;
    bit<1>    occupied;      /* live, but another connection's */
    bit<1>    is_reply;
    bit<4>    next_state;
    bit<1>    fin_orig;
    bit<1>    fin_reply;
    bit<2>    acl_state;     /* CTS_* */
    bit<32>   partner;
    /* rewrite held by the hit slot */
    bit<1>    xlate_src;
    bit<1>    xlate_dst;
    bit<32>   xlate_src_addr;
    bit<16>   xlate_src_port;
    bit<32>   xlate_dst_addr;
    bit<16>   xlate_dst_port;
}

/* NAT / load-balancer decision for the first packet of a connection. */
struct nat_meta_t {
    bit<1>  src_rewrite;
    bit<32> new_src_addr;
    bit<16> new_src_port;
    bit<1>  dst_rewrite;
    bit<32> new_dst_addr;
    bit<16> new_dst_port;
    bit<1>  applied;         /* headers were rewritten: update checksums */
}

/* What the pipeline and its target tell each other. The architecture file
 * (arch/v1model.p4) fills in the inputs from the target's own metadata before
 * the pipeline runs and carries out the requests after it, so no stage sees
 * the target's metadata. */
struct arch_meta_t {
    /* from the target */
    port_t  ingress_port;
    bit<1>  parser_error;     /* the parser rejected the frame */
    bit<1>  checksum_error;   /* the IPv4 header checksum did not verify */
    /* requests to the target */
    port_t  egress_port;      /* where the frame goes, unless drop */
    bit<1>  drop;             /* drop the frame (a requested clone still goes) */
    bit<1>  clone_request;    /* a copy to clone session clone_session */
    bit<32> clone_session;
    bit<32> truncate_len;     /* 0: the whole frame; else cut it to this many bytes */
    bit<1>  ct_new_digest;    /* send metadata_t.ct_new to the agent */
}

struct metadata_t {
    arch_meta_t arch;
    bit<48>     now;          /* ingress timestamp, microseconds (from the target) */
    vnic_meta_t vnic;
    l34_meta_t  l34;
    flow_meta_t flow;
    ct_meta_t   ct;
    nat_meta_t  nat;
    bit<3>      verdict;
    bit<1>      acl_hit;
    bit<2>      color;
    bit<1>      drop;         /* the pipeline's verdict; Forward turns it into meta.arch.drop */
    bit<32>     drop_reason;
    bit<1>      punt;
    bit<8>      punt_reason;
    bit<1>      reject;
    ct_new_digest_t ct_new;   /* a new tracked connection, for the agent */
}

#endif
