/* Constants shared by the stages: port numbers, verdicts, states, reasons.
 *
 * The control plane finds the same numbers in pyoffload/p4constants.py; a
 * test compares the two so they cannot drift apart.
 */
#ifndef PYOFFLOAD_DEFINES_P4
#define PYOFFLOAD_DEFINES_P4

typedef bit<9>  port_t;
typedef bit<16> vnic_id_t;
typedef bit<16> flow_id_t;
typedef bit<48> mac_t;
typedef bit<32> ipv4_addr_t;
typedef bit<128> ip_addr_t;  /* IPv4 addresses sit in the low 32 bits */

/* The CPU port: give the same number to the target (`--cpu-port 510`). */
const port_t CPU_PORT = 510;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86dd;
const bit<16> ETHERTYPE_VLAN = 0x8100;

const bit<8> PROTO_ICMP   = 1;
const bit<8> PROTO_TCP    = 6;
const bit<8> PROTO_UDP    = 17;
const bit<8> PROTO_ICMPV6 = 58;

const bit<8> TCP_FIN = 0x01;
const bit<8> TCP_SYN = 0x02;
const bit<8> TCP_RST = 0x04;
const bit<8> TCP_ACK = 0x10;

const bit<8> ICMP_ECHO_REPLY     = 0;
const bit<8> ICMP_ECHO_REQUEST   = 8;
const bit<8> ICMPV6_ECHO_REQUEST = 128;
const bit<8> ICMPV6_ECHO_REPLY   = 129;
/* Neighbour discovery from router solicitation (133) to neighbour
 * advertisement (136): passed untouched like ARP (redirects, 137, are not). */
const bit<8> ICMPV6_ND_FIRST     = 133;
const bit<8> ICMPV6_ND_LAST      = 136;

/* Direction of a packet, seen from the VNIC's guest. */
const bit<1> DIR_FROM_GUEST = 0;
const bit<1> DIR_TO_GUEST   = 1;

/* What a VNIC does with IP traffic no declared flow matches. */
const bit<2> POLICY_ALLOW = 0;
const bit<2> POLICY_DENY  = 1;
const bit<2> POLICY_PUNT  = 2;

/* Verdicts of the service rules (ACL) and of a flow's default. */
const bit<3> VERDICT_ALLOW       = 0;
const bit<3> VERDICT_ALLOW_TRACK = 1;
const bit<3> VERDICT_DENY        = 2;
const bit<3> VERDICT_REJECT      = 3;
const bit<3> VERDICT_PUNT        = 4;

/* Services a flow can enable (flow_config.services bit mask). */
const bit<8> SVC_CONNTRACK = 0x01;
const bit<8> SVC_NAT       = 0x02;
const bit<8> SVC_LB        = 0x04;
const bit<8> SVC_METER     = 0x08;
const bit<8> SVC_MIRROR    = 0x10;
const bit<8> SVC_COUNT     = 0x20;

/* Connection states stored in the conntrack registers. */
const bit<4> CT_FREE            = 0;
const bit<4> CT_TCP_SYN_SENT    = 1;
const bit<4> CT_TCP_SYN_RECV    = 2;
const bit<4> CT_TCP_ESTABLISHED = 3;
const bit<4> CT_TCP_FIN_WAIT    = 4;
const bit<4> CT_TCP_CLOSING     = 5;
const bit<4> CT_TCP_CLOSED      = 6;
const bit<4> CT_UDP_NEW         = 7;
const bit<4> CT_UDP_ESTABLISHED = 8;
const bit<4> CT_ICMP_NEW        = 9;
const bit<4> CT_ICMP_REPLIED    = 10;

/* Layout of the 32-bit ct_info word of a conntrack slot (vnic.ct_info): the
 * agent reads slots back and decodes them with these numbers (from the
 * compiled constants), so moving a field changes both sides at once. Single
 * bits are named by their position, fields by their lowest bit and width. */
const bit<8> CT_INFO_STATE_LSB     = 0;   /* connection state, CT_* */
const bit<8> CT_INFO_STATE_WIDTH   = 4;
const bit<8> CT_INFO_ORIG_HI_BIT   = 4;   /* the originator is the higher endpoint */
const bit<8> CT_INFO_KIND_LSB      = 5;   /* slot kind, CT_KIND_* */
const bit<8> CT_INFO_KIND_WIDTH    = 2;
const bit<8> CT_INFO_XLATE_SRC_BIT = 7;   /* the slot rewrites the source */
const bit<8> CT_INFO_XLATE_DST_BIT = 8;   /* the slot rewrites the destination */
const bit<8> CT_INFO_FIN_ORIG_BIT  = 9;   /* FIN seen from the originator */
const bit<8> CT_INFO_FIN_REPLY_BIT = 10;  /* FIN seen from the responder */
const bit<8> CT_INFO_PROFILE_LSB   = 16;  /* the flow's conntrack profile */
const bit<8> CT_INFO_PROFILE_WIDTH = 8;

/* What conntrack tells the service rules about a packet (ACL key ct_state). */
const bit<2> CTS_UNTRACKED   = 0;  /* not a trackable packet (or no conntrack) */
const bit<2> CTS_NEW         = 1;  /* may start a connection */
const bit<2> CTS_ESTABLISHED = 2;  /* belongs to a tracked connection */
const bit<2> CTS_INVALID     = 3;  /* not valid for any connection state */

/* Kinds of conntrack slot: a connection without NAT has one slot seen from
 * both sides; a translated one has a slot for the guest-side tuple and one for
 * the network-side tuple, each holding the rewrite for packets that hit it. */
const bit<2> CT_KIND_PLAIN   = 0;
const bit<2> CT_KIND_GUEST   = 1;
const bit<2> CT_KIND_NETWORK = 2;

/* Reasons in the packet_in header. */
const bit<8> PUNT_RULE          = 1;  /* a service rule said punt */
const bit<8> PUNT_NO_FLOW       = 2;  /* VNIC policy punt, no flow matched */
const bit<8> PUNT_CT_COLLISION  = 3;  /* conntrack slot held by another live connection */
const bit<8> PUNT_NAT_COLLISION = 4;  /* translated tuple's slot held by another connection */

/* Indices of vnic.drop_counter. */
const bit<32> DROP_UNMAPPED_PORT = 0;
const bit<32> DROP_MALFORMED     = 1;
const bit<32> DROP_IPV4_CHECKSUM = 2;
const bit<32> DROP_NO_FLOW       = 3;
const bit<32> DROP_RULE_DENY     = 4;
const bit<32> DROP_RULE_REJECT   = 5;
const bit<32> DROP_RATE_LIMIT    = 6;
const bit<32> DROP_CT_INVALID    = 7;
const bit<32> DROP_CT_QUOTA      = 8;  /* new connection of a VNIC at its tracked-connection quota */
const bit<32> DROP_REASONS       = 9;

/* Indices of vnic.ct_events. */
const bit<32> CT_EVENT_NEW           = 0;
const bit<32> CT_EVENT_COLLISION     = 1;
const bit<32> CT_EVENT_NAT_COLLISION = 2;
const bit<32> CT_EVENT_OVERFLOW_HIT  = 3;
const bit<32> CT_EVENT_EXPIRED_REUSE = 4;
const bit<32> CT_EVENT_QUOTA         = 5;
const bit<32> CT_EVENTS              = 6;

#endif
