/* Stage 4, connection tracking, in registers.
 *
 * A connection is found by hashing the VNIC id and the direction-normalised
 * 5-tuple (the lower endpoint first) into CT_SLOTS slots; a 32-bit signature
 * from a second hash tells a connection from another that hashed to the same
 * slot. A slot held by another live connection is never overwritten: the first
 * packet goes to the agent (PUNT_CT_COLLISION), which installs a ct_overflow
 * entry pointing the tuple at one of the CT_OVERFLOW_SLOTS reserved slots.
 *
 * A translated (NAT, load-balanced) connection has two slots: one for its
 * tuple on the guest side, one for its tuple on the network side. Each holds
 * the rewrite for the packets that hit it and the index of its partner.
 *
 * The lookup runs before the service rules; the commit (insert or state
 * update) after them, once the verdict and the translation are known. Each
 * slot stores when it expires; the timeout depends on the flow's conntrack
 * profile and the connection's state (vnic.ct_timeout, else built-in values).
 *
 * ct_info layout: [3:0] state, [4] originator was the higher endpoint,
 * [6:5] slot kind, [7] rewrite source, [8] rewrite destination,
 * [9] FIN seen from originator, [10] FIN seen from responder, [23:16] profile. */
#ifndef PYOFFLOAD_CONNTRACK_P4
#define PYOFFLOAD_CONNTRACK_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

#define CT_TOTAL_SLOTS (CT_SLOTS + CT_OVERFLOW_SLOTS)

@name(".vnic.ct_signature")     register<bit<32>>(CT_TOTAL_SLOTS) ct_signature;
@name(".vnic.ct_info")          register<bit<32>>(CT_TOTAL_SLOTS) ct_info;
@name(".vnic.ct_flow")          register<bit<16>>(CT_TOTAL_SLOTS) ct_flow;
@name(".vnic.ct_expires")       register<bit<48>>(CT_TOTAL_SLOTS) ct_expires;
@name(".vnic.ct_partner")       register<bit<32>>(CT_TOTAL_SLOTS) ct_partner;
@name(".vnic.ct_xlate_src_addr") register<bit<32>>(CT_TOTAL_SLOTS) ct_xlate_src_addr;
@name(".vnic.ct_xlate_src_port") register<bit<16>>(CT_TOTAL_SLOTS) ct_xlate_src_port;
@name(".vnic.ct_xlate_dst_addr") register<bit<32>>(CT_TOTAL_SLOTS) ct_xlate_dst_addr;
@name(".vnic.ct_xlate_dst_port") register<bit<16>>(CT_TOTAL_SLOTS) ct_xlate_dst_port;
@name(".vnic.ct_events")        counter(CT_EVENTS, CounterType.packets) ct_events;

control ConntrackLookup(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.ct_use_overflow_slot")
    action use_overflow_slot(bit<32> slot) {
        meta.ct.index = slot;
        meta.ct.overflow_hit = 1;
    }

    @name(".vnic.ct_overflow")
    table ct_overflow {
        key = {
            meta.vnic.vnic_id: exact @name("vnic_id");
            meta.l34.proto:    exact @name("protocol");
            meta.ct.lo_addr:   exact @name("lo_addr");
            meta.ct.hi_addr:   exact @name("hi_addr");
            meta.ct.lo_port:   exact @name("lo_port");
            meta.ct.hi_port:   exact @name("hi_port");
        }
        actions = {
            use_overflow_slot;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        size = CT_OVERFLOW_SLOTS;
        /* The agent gives each entry an idle timeout longer than any conntrack
         * timeout: when it fires, the connection is gone and the slot is free. */
        support_timeout = true;
    }

    apply {
        if (meta.l34.trackable == 0) {
            meta.ct.acl_state = CTS_UNTRACKED;
            return;
        }

        /* Normalise: the lower (address, port) endpoint first. */
        if (meta.l34.src_addr < meta.l34.dst_addr
                || (meta.l34.src_addr == meta.l34.dst_addr
                    && meta.l34.src_port <= meta.l34.dst_port)) {
            meta.ct.swapped = 0;
            meta.ct.lo_addr = meta.l34.src_addr;
            meta.ct.lo_port = meta.l34.src_port;
            meta.ct.hi_addr = meta.l34.dst_addr;
            meta.ct.hi_port = meta.l34.dst_port;
        } else {
            meta.ct.swapped = 1;
            meta.ct.lo_addr = meta.l34.dst_addr;
            meta.ct.lo_port = meta.l34.dst_port;
            meta.ct.hi_addr = meta.l34.src_addr;
            meta.ct.hi_port = meta.l34.src_port;
        }

        hash(meta.ct.index, HashAlgorithm.crc32, 32w0,
             { meta.vnic.vnic_id, meta.l34.proto, meta.ct.lo_addr, meta.ct.hi_addr,
               meta.ct.lo_port, meta.ct.hi_port },
             (bit<32>)CT_SLOTS);
        hash(meta.ct.signature, HashAlgorithm.crc32, 32w0,
             { meta.ct.hi_port, meta.ct.lo_port, meta.ct.hi_addr, meta.ct.lo_addr,
               meta.l34.proto, meta.vnic.vnic_id, 8w0x5a },
             64w0x100000000);
        ct_overflow.apply();

        ct_signature.read(meta.ct.stored_signature, meta.ct.index);
        ct_info.read(meta.ct.stored_info, meta.ct.index);
        ct_expires.read(meta.ct.stored_expires, meta.ct.index);
        meta.ct.stored_state = meta.ct.stored_info[3:0];

        if (meta.ct.stored_state != CT_FREE && meta.ct.stored_expires > meta.now) {
            meta.ct.live = 1;
        }

        bit<2> kind = meta.ct.stored_info[6:5];
        bool side_ok = kind == CT_KIND_PLAIN
            || (kind == CT_KIND_GUEST && meta.vnic.direction == DIR_FROM_GUEST)
            || (kind == CT_KIND_NETWORK && meta.vnic.direction == DIR_TO_GUEST);
        if (meta.ct.live == 1) {
            if (meta.ct.stored_signature == meta.ct.signature && side_ok) {
                meta.ct.hit = 1;
            } else {
                meta.ct.occupied = 1;
            }
        }

        bit<8> f = meta.l34.tcp_flags;
        bool syn = (f & TCP_SYN) != 0;
        bool ack = (f & TCP_ACK) != 0;
        bool fin = (f & TCP_FIN) != 0;
        bool rst = (f & TCP_RST) != 0;

        if (meta.ct.hit == 1) {
            meta.ct.is_reply = meta.ct.swapped ^ meta.ct.stored_info[4:4];
            meta.ct.fin_orig = meta.ct.stored_info[9:9];
            meta.ct.fin_reply = meta.ct.stored_info[10:10];
            meta.ct.next_state = meta.ct.stored_state;
            meta.ct.acl_state = CTS_ESTABLISHED;
            ct_flow.read(meta.ct.stored_flow, meta.ct.index);
            ct_partner.read(meta.ct.partner, meta.ct.index);
            meta.ct.xlate_src = meta.ct.stored_info[7:7];
            meta.ct.xlate_dst = meta.ct.stored_info[8:8];
            ct_xlate_src_addr.read(meta.ct.xlate_src_addr, meta.ct.index);
            ct_xlate_src_port.read(meta.ct.xlate_src_port, meta.ct.index);
            ct_xlate_dst_addr.read(meta.ct.xlate_dst_addr, meta.ct.index);
            ct_xlate_dst_port.read(meta.ct.xlate_dst_port, meta.ct.index);

            if (hdr.tcp.isValid()) {
                bit<4> s = meta.ct.stored_state;
                if (meta.l34.bad_tcp_flags == 1) {
                    meta.ct.acl_state = CTS_INVALID;
                } else if (rst) {
                    meta.ct.next_state = CT_TCP_CLOSED;
                } else if (s == CT_TCP_SYN_SENT) {
                    if (meta.ct.is_reply == 1 && syn && ack) {
                        meta.ct.next_state = CT_TCP_SYN_RECV;
                    } else if (!(meta.ct.is_reply == 0 && syn && !ack)) {
                        meta.ct.acl_state = CTS_INVALID;
                    }
                } else if (s == CT_TCP_SYN_RECV) {
                    if (syn) {
                        if (ack && meta.ct.is_reply == 0) {
                            meta.ct.acl_state = CTS_INVALID;
                        }
                    } else if (ack && meta.ct.is_reply == 0) {
                        meta.ct.next_state = CT_TCP_ESTABLISHED;
                    }
                } else if (s == CT_TCP_ESTABLISHED || s == CT_TCP_FIN_WAIT) {
                    if (syn) {
                        meta.ct.acl_state = CTS_INVALID;
                    } else if (fin) {
                        if (meta.ct.is_reply == 1) {
                            meta.ct.fin_reply = 1;
                        } else {
                            meta.ct.fin_orig = 1;
                        }
                        if (meta.ct.fin_orig == 1 && meta.ct.fin_reply == 1) {
                            meta.ct.next_state = CT_TCP_CLOSING;
                        } else {
                            meta.ct.next_state = CT_TCP_FIN_WAIT;
                        }
                    }
                } else if (s == CT_TCP_CLOSING) {
                    if (syn) {
                        meta.ct.acl_state = CTS_INVALID;
                    }
                } else if (s == CT_TCP_CLOSED) {
                    /* A fresh SYN reuses the slot of a reset connection. */
                    if (syn && !ack && meta.ct.is_reply == 0) {
                        meta.ct.hit = 0;
                        meta.ct.acl_state = CTS_NEW;
                    } else {
                        meta.ct.acl_state = CTS_INVALID;
                    }
                }
            } else if (hdr.udp.isValid()) {
                if (meta.ct.is_reply == 1) {
                    meta.ct.next_state = CT_UDP_ESTABLISHED;
                }
            } else {
                if (meta.ct.is_reply == 1) {
                    meta.ct.next_state = CT_ICMP_REPLIED;
                }
            }
        } else {
            if (hdr.tcp.isValid()) {
                if (syn && !ack && meta.l34.bad_tcp_flags == 0) {
                    meta.ct.acl_state = CTS_NEW;
                } else {
                    meta.ct.acl_state = CTS_INVALID;
                }
            } else if (hdr.udp.isValid()) {
                meta.ct.acl_state = CTS_NEW;
            } else if ((hdr.icmp.isValid() && hdr.icmp.type == ICMP_ECHO_REQUEST)
                    || (hdr.icmpv6.isValid() && hdr.icmpv6.type == ICMPV6_ECHO_REQUEST)) {
                meta.ct.acl_state = CTS_NEW;
            } else {
                meta.ct.acl_state = CTS_INVALID;
            }
        }
    }
}

control ConntrackCommit(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.ct_set_timeout")
    action set_timeout(bit<48> timeout_us) {
        meta.ct.timeout = timeout_us;
    }

    /* No entry for this (profile, state): use the built-in timeout. */
    @name(".vnic.ct_builtin_timeout")
    action builtin_timeout() {
        meta.ct.timeout = 0;
    }

    @name(".vnic.ct_timeout")
    table ct_timeout {
        key = {
            meta.flow.ct_profile: exact @name("profile");
            meta.ct.next_state:   exact @name("state");
        }
        actions = {
            set_timeout;
            @defaultonly builtin_timeout;
        }
        const default_action = builtin_timeout();
        size = CT_TIMEOUT_SIZE;
    }

    apply {
        bool translate = meta.nat.src_rewrite == 1 || meta.nat.dst_rewrite == 1;
        bool update = false;
        bool insert = false;

        if (meta.l34.trackable == 1 && meta.drop == 0 && meta.punt == 0) {
            if (meta.ct.hit == 1) {
                if (meta.ct.acl_state == CTS_ESTABLISHED) {
                    update = true;
                    meta.flow.ct_profile = meta.ct.stored_info[23:16];
                }
            } else if (meta.ct.acl_state == CTS_NEW
                    && (meta.verdict == VERDICT_ALLOW_TRACK || translate)) {
                if (meta.vnic.admit_new == 0) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_CT_QUOTA;
                    ct_events.count(CT_EVENT_QUOTA);
                } else if (meta.ct.occupied == 1) {
                    meta.punt = 1;
                    meta.punt_reason = PUNT_CT_COLLISION;
                    ct_events.count(CT_EVENT_COLLISION);
                } else {
                    insert = true;
                    if (hdr.tcp.isValid()) {
                        meta.ct.next_state = CT_TCP_SYN_SENT;
                    } else if (hdr.udp.isValid()) {
                        meta.ct.next_state = CT_UDP_NEW;
                    } else {
                        meta.ct.next_state = CT_ICMP_NEW;
                    }
                }
            }
        }

        bit<48> expires = 0;
        bit<32> state_bits = 0;
        if (update || insert) {
            ct_timeout.apply();
            if (meta.ct.timeout == 0) {
                if (meta.ct.next_state == CT_TCP_ESTABLISHED) {
                    meta.ct.timeout = 48w3600000000;         /* 1 h */
                } else if (meta.ct.next_state == CT_TCP_SYN_SENT
                        || meta.ct.next_state == CT_TCP_SYN_RECV) {
                    meta.ct.timeout = 48w60000000;           /* 60 s */
                } else if (meta.ct.next_state == CT_TCP_FIN_WAIT
                        || meta.ct.next_state == CT_TCP_CLOSING) {
                    meta.ct.timeout = 48w120000000;          /* 120 s */
                } else if (meta.ct.next_state == CT_TCP_CLOSED) {
                    meta.ct.timeout = 48w10000000;           /* 10 s */
                } else if (meta.ct.next_state == CT_UDP_ESTABLISHED) {
                    meta.ct.timeout = 48w180000000;          /* 180 s */
                } else {
                    meta.ct.timeout = 48w30000000;           /* 30 s */
                }
            }
            expires = meta.now + meta.ct.timeout;
            state_bits = (bit<32>)meta.ct.next_state
                | ((bit<32>)meta.ct.fin_orig << 9) | ((bit<32>)meta.ct.fin_reply << 10);
        }

        if (update) {
            ct_info.write(meta.ct.index, (meta.ct.stored_info & 32w0xfffff9f0) | state_bits);
            ct_expires.write(meta.ct.index, expires);
            if (meta.ct.stored_info[6:5] != CT_KIND_PLAIN) {
                /* Both slots name the same originator, so state and FIN
                 * bits carry over unchanged. */
                bit<32> partner_info;
                ct_info.read(partner_info, meta.ct.partner);
                ct_info.write(meta.ct.partner, (partner_info & 32w0xfffff9f0) | state_bits);
                ct_expires.write(meta.ct.partner, expires);
            }
        }

        bit<32> profile_bits = (bit<32>)meta.flow.ct_profile << 16;
        if (insert && !translate) {
            digest<ct_new_digest_t>(1, { meta.vnic.vnic_id, meta.flow.flow_id, meta.l34.proto,
                                         meta.ct.lo_addr, meta.ct.hi_addr, meta.ct.lo_port,
                                         meta.ct.hi_port, meta.ct.index });
            ct_signature.write(meta.ct.index, meta.ct.signature);
            ct_info.write(meta.ct.index, state_bits | ((bit<32>)meta.ct.swapped << 4)
                | ((bit<32>)CT_KIND_PLAIN << 5) | profile_bits);
            ct_flow.write(meta.ct.index, meta.flow.flow_id);
            ct_expires.write(meta.ct.index, expires);
            ct_events.count(CT_EVENT_NEW);
        }

        if (insert && translate) {
            /* The tuple on the far side of the rewrite gets a slot too. */
            ip_addr_t t_src = meta.l34.src_addr;
            bit<16> t_sport = meta.l34.src_port;
            ip_addr_t t_dst = meta.l34.dst_addr;
            bit<16> t_dport = meta.l34.dst_port;
            if (meta.nat.src_rewrite == 1) {
                t_src = (ip_addr_t)meta.nat.new_src_addr;
                t_sport = meta.nat.new_src_port;
            }
            if (meta.nat.dst_rewrite == 1) {
                t_dst = (ip_addr_t)meta.nat.new_dst_addr;
                t_dport = meta.nat.new_dst_port;
            }
            bit<1> t_swapped = 0;
            ip_addr_t t_lo_addr = t_src;
            ip_addr_t t_hi_addr = t_dst;
            bit<16> t_lo_port = t_sport;
            bit<16> t_hi_port = t_dport;
            if (!(t_src < t_dst || (t_src == t_dst && t_sport <= t_dport))) {
                t_swapped = 1;
                t_lo_addr = t_dst;
                t_lo_port = t_dport;
                t_hi_addr = t_src;
                t_hi_port = t_sport;
            }
            bit<32> t_index;
            bit<32> t_signature;
            hash(t_index, HashAlgorithm.crc32, 32w0,
                 { meta.vnic.vnic_id, meta.l34.proto, t_lo_addr, t_hi_addr, t_lo_port,
                   t_hi_port },
                 (bit<32>)CT_SLOTS);
            hash(t_signature, HashAlgorithm.crc32, 32w0,
                 { t_hi_port, t_lo_port, t_hi_addr, t_lo_addr, meta.l34.proto,
                   meta.vnic.vnic_id, 8w0x5a },
                 64w0x100000000);
            bit<32> t_info;
            bit<48> t_expires;
            ct_info.read(t_info, t_index);
            ct_expires.read(t_expires, t_index);
            if (t_index == meta.ct.index || (t_info[3:0] != CT_FREE && t_expires > meta.now)) {
                meta.punt = 1;
                meta.punt_reason = PUNT_NAT_COLLISION;
                ct_events.count(CT_EVENT_NAT_COLLISION);
            } else {
                bit<2> here_kind = CT_KIND_NETWORK;
                bit<2> there_kind = CT_KIND_GUEST;
                if (meta.vnic.direction == DIR_FROM_GUEST) {
                    here_kind = CT_KIND_GUEST;
                    there_kind = CT_KIND_NETWORK;
                }

                digest<ct_new_digest_t>(1, { meta.vnic.vnic_id, meta.flow.flow_id,
                                             meta.l34.proto, meta.ct.lo_addr, meta.ct.hi_addr,
                                             meta.ct.lo_port, meta.ct.hi_port, meta.ct.index });

                /* This side: rewrite as decided. */
                ct_signature.write(meta.ct.index, meta.ct.signature);
                ct_info.write(meta.ct.index, state_bits | ((bit<32>)meta.ct.swapped << 4)
                    | ((bit<32>)here_kind << 5) | ((bit<32>)meta.nat.src_rewrite << 7)
                    | ((bit<32>)meta.nat.dst_rewrite << 8) | profile_bits);
                ct_flow.write(meta.ct.index, meta.flow.flow_id);
                ct_expires.write(meta.ct.index, expires);
                ct_partner.write(meta.ct.index, t_index);
                ct_xlate_src_addr.write(meta.ct.index, meta.nat.new_src_addr);
                ct_xlate_src_port.write(meta.ct.index, meta.nat.new_src_port);
                ct_xlate_dst_addr.write(meta.ct.index, meta.nat.new_dst_addr);
                ct_xlate_dst_port.write(meta.ct.index, meta.nat.new_dst_port);

                /* Far side: replies come back as (t_dst -> t_src) and are
                 * rewritten to (original dst -> original src). */
                ct_signature.write(t_index, t_signature);
                ct_info.write(t_index, state_bits | ((bit<32>)t_swapped << 4)
                    | ((bit<32>)there_kind << 5) | ((bit<32>)meta.nat.dst_rewrite << 7)
                    | ((bit<32>)meta.nat.src_rewrite << 8) | profile_bits);
                ct_flow.write(t_index, meta.flow.flow_id);
                ct_expires.write(t_index, expires);
                ct_partner.write(t_index, meta.ct.index);
                ct_xlate_src_addr.write(t_index, meta.l34.dst_addr[31:0]);
                ct_xlate_src_port.write(t_index, meta.l34.dst_port);
                ct_xlate_dst_addr.write(t_index, meta.l34.src_addr[31:0]);
                ct_xlate_dst_port.write(t_index, meta.l34.src_port);

                ct_events.count(CT_EVENT_NEW);
                meta.nat.applied = 1;
            }
        }
    }
}

#endif
