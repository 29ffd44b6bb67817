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
 * ct_info layout (the CT_INFO_* constants of include/defines.p4, which the
 * agent decodes with): [3:0] state, [4] originator was the higher endpoint,
 * [6:5] slot kind, [7] rewrite source, [8] rewrite destination,
 * [9] FIN seen from originator, [10] FIN seen from responder, [23:16] profile.
 *
 * The registers are shared by the lookup and the commit, two controls applied
 * at different points of the pipeline, hence declared at file scope. */
#ifndef PYOFFLOAD_CONNTRACK_P4
#define PYOFFLOAD_CONNTRACK_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

#define CT_TOTAL_SLOTS (CT_SLOTS + CT_OVERFLOW_SLOTS)

/* Fields of a ct_info word, placed by the layout constants (slices need
 * compile-time bounds; the constants are). */
#define CT_INFO_STATE(WORD) \
    WORD[CT_INFO_STATE_LSB + CT_INFO_STATE_WIDTH - 1 : CT_INFO_STATE_LSB]
#define CT_INFO_KIND(WORD) \
    WORD[CT_INFO_KIND_LSB + CT_INFO_KIND_WIDTH - 1 : CT_INFO_KIND_LSB]
#define CT_INFO_PROFILE(WORD) \
    WORD[CT_INFO_PROFILE_LSB + CT_INFO_PROFILE_WIDTH - 1 : CT_INFO_PROFILE_LSB]
#define CT_INFO_BIT(WORD, BIT) WORD[BIT:BIT]

/* The bits an update of a tracked connection rewrites (state and FIN flags);
 * originator, kind, rewrite and profile stay as inserted. */
const bit<32> CT_INFO_UPDATED_BITS =
    ((32w1 << CT_INFO_STATE_WIDTH) - 1) << CT_INFO_STATE_LSB
    | 32w1 << CT_INFO_FIN_ORIG_BIT | 32w1 << CT_INFO_FIN_REPLY_BIT;

@name(".vnic.ct_signature")      ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_signature;
@name(".vnic.ct_info")           ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_info;
@name(".vnic.ct_flow")           ARCH_REGISTER(bit<16>, CT_TOTAL_SLOTS) ct_flow;
@name(".vnic.ct_expires")        ARCH_REGISTER(bit<48>, CT_TOTAL_SLOTS) ct_expires;
@name(".vnic.ct_partner")        ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_partner;
@name(".vnic.ct_xlate_src_addr") ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_xlate_src_addr;
@name(".vnic.ct_xlate_src_port") ARCH_REGISTER(bit<16>, CT_TOTAL_SLOTS) ct_xlate_src_port;
@name(".vnic.ct_xlate_dst_addr") ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_xlate_dst_addr;
@name(".vnic.ct_xlate_dst_port") ARCH_REGISTER(bit<16>, CT_TOTAL_SLOTS) ct_xlate_dst_port;
@name(".vnic.ct_events")         ARCH_COUNTER_PACKETS(CT_EVENTS) ct_events;

/* The slot (one of CT_SLOTS) and the 32-bit signature of a VNIC's
 * direction-normalised tuple. The lookup hashes the packet's tuple, the
 * commit of a translated connection the tuple on the far side of the
 * rewrite: both must hash alike, so the hash layout is written only here. */
control ConntrackHash(in vnic_id_t vnic_id, in bit<8> proto,
                      in ip_addr_t lo_addr, in ip_addr_t hi_addr,
                      in bit<16> lo_port, in bit<16> hi_port,
                      out bit<32> slot, out bit<32> signature) {
    apply {
        ARCH_HASH_CRC32(slot, 32w0, (bit<32>)CT_SLOTS,
                        { vnic_id, proto, lo_addr, hi_addr, lo_port, hi_port });
        /* The same fields in another order, and a salt: hashed like the slot,
         * the signature's low bits would be the slot, and two tuples sharing
         * a slot would share them too. */
        ARCH_HASH_CRC32(signature, 32w0, 64w0x100000000,
                        { hi_port, lo_port, hi_addr, lo_addr, proto, vnic_id, 8w0x5a });
    }
}

control ConntrackLookup(inout headers_t hdr, inout metadata_t meta) {
    ConntrackHash() ct_hash;

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

        ct_hash.apply(meta.vnic.vnic_id, meta.l34.proto, meta.ct.lo_addr, meta.ct.hi_addr,
                      meta.ct.lo_port, meta.ct.hi_port, meta.ct.index, meta.ct.signature);
        ct_overflow.apply();

        ARCH_REGISTER_READ(ct_signature, meta.ct.stored_signature, meta.ct.index);
        ARCH_REGISTER_READ(ct_info, meta.ct.stored_info, meta.ct.index);
        ARCH_REGISTER_READ(ct_expires, meta.ct.stored_expires, meta.ct.index);
        meta.ct.stored_state = CT_INFO_STATE(meta.ct.stored_info);

        if (meta.ct.stored_state != CT_FREE && meta.ct.stored_expires > meta.now) {
            meta.ct.live = 1;
        }

        bit<2> kind = CT_INFO_KIND(meta.ct.stored_info);
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
            meta.ct.is_reply = meta.ct.swapped
                ^ CT_INFO_BIT(meta.ct.stored_info, CT_INFO_ORIG_HI_BIT);
            meta.ct.fin_orig = CT_INFO_BIT(meta.ct.stored_info, CT_INFO_FIN_ORIG_BIT);
            meta.ct.fin_reply = CT_INFO_BIT(meta.ct.stored_info, CT_INFO_FIN_REPLY_BIT);
            meta.ct.next_state = meta.ct.stored_state;
            meta.ct.acl_state = CTS_ESTABLISHED;
            ARCH_REGISTER_READ(ct_flow, meta.ct.stored_flow, meta.ct.index);
            ARCH_REGISTER_READ(ct_partner, meta.ct.partner, meta.ct.index);
            meta.ct.xlate_src = CT_INFO_BIT(meta.ct.stored_info, CT_INFO_XLATE_SRC_BIT);
            meta.ct.xlate_dst = CT_INFO_BIT(meta.ct.stored_info, CT_INFO_XLATE_DST_BIT);
            ARCH_REGISTER_READ(ct_xlate_src_addr, meta.ct.xlate_src_addr, meta.ct.index);
            ARCH_REGISTER_READ(ct_xlate_src_port, meta.ct.xlate_src_port, meta.ct.index);
            ARCH_REGISTER_READ(ct_xlate_dst_addr, meta.ct.xlate_dst_addr, meta.ct.index);
            ARCH_REGISTER_READ(ct_xlate_dst_port, meta.ct.xlate_dst_port, meta.ct.index);

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
    ConntrackHash() ct_hash;

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
                    meta.flow.ct_profile = CT_INFO_PROFILE(meta.ct.stored_info);
                }
            } else if (meta.ct.acl_state == CTS_NEW
                    && (meta.verdict == VERDICT_ALLOW_TRACK || translate)) {
                if (meta.vnic.admit_new == 0) {
                    meta.drop = 1;
                    meta.drop_reason = DROP_CT_QUOTA;
                    ARCH_COUNT(ct_events, CT_EVENT_QUOTA);
                } else if (meta.ct.occupied == 1) {
                    meta.punt = 1;
                    meta.punt_reason = PUNT_CT_COLLISION;
                    ARCH_COUNT(ct_events, CT_EVENT_COLLISION);
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
            state_bits = ((bit<32>)meta.ct.next_state << CT_INFO_STATE_LSB)
                | ((bit<32>)meta.ct.fin_orig << CT_INFO_FIN_ORIG_BIT)
                | ((bit<32>)meta.ct.fin_reply << CT_INFO_FIN_REPLY_BIT);
        }

        if (update) {
            ARCH_REGISTER_WRITE(ct_info, meta.ct.index,
                (meta.ct.stored_info & ~CT_INFO_UPDATED_BITS) | state_bits);
            ARCH_REGISTER_WRITE(ct_expires, meta.ct.index, expires);
            if (CT_INFO_KIND(meta.ct.stored_info) != CT_KIND_PLAIN) {
                /* Both slots name the same originator, so state and FIN
                 * bits carry over unchanged. */
                bit<32> partner_info;
                ARCH_REGISTER_READ(ct_info, partner_info, meta.ct.partner);
                ARCH_REGISTER_WRITE(ct_info, meta.ct.partner,
                    (partner_info & ~CT_INFO_UPDATED_BITS) | state_bits);
                ARCH_REGISTER_WRITE(ct_expires, meta.ct.partner, expires);
            }
        }

        /* A new connection is announced to the agent once it is stored. */
        bool announce = false;
        bit<32> profile_bits = (bit<32>)meta.flow.ct_profile << CT_INFO_PROFILE_LSB;
        if (insert && !translate) {
            announce = true;
            ARCH_REGISTER_WRITE(ct_signature, meta.ct.index, meta.ct.signature);
            ARCH_REGISTER_WRITE(ct_info, meta.ct.index,
                state_bits | ((bit<32>)meta.ct.swapped << CT_INFO_ORIG_HI_BIT)
                | ((bit<32>)CT_KIND_PLAIN << CT_INFO_KIND_LSB) | profile_bits);
            ARCH_REGISTER_WRITE(ct_flow, meta.ct.index, meta.flow.flow_id);
            ARCH_REGISTER_WRITE(ct_expires, meta.ct.index, expires);
            ARCH_COUNT(ct_events, CT_EVENT_NEW);
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
            ct_hash.apply(meta.vnic.vnic_id, meta.l34.proto, t_lo_addr, t_hi_addr,
                          t_lo_port, t_hi_port, t_index, t_signature);
            bit<32> t_info;
            bit<48> t_expires;
            ARCH_REGISTER_READ(ct_info, t_info, t_index);
            ARCH_REGISTER_READ(ct_expires, t_expires, t_index);
            if (t_index == meta.ct.index
                    || (CT_INFO_STATE(t_info) != CT_FREE && t_expires > meta.now)) {
                meta.punt = 1;
                meta.punt_reason = PUNT_NAT_COLLISION;
                ARCH_COUNT(ct_events, CT_EVENT_NAT_COLLISION);
            } else {
                bit<2> here_kind = CT_KIND_NETWORK;
                bit<2> there_kind = CT_KIND_GUEST;
                if (meta.vnic.direction == DIR_FROM_GUEST) {
                    here_kind = CT_KIND_GUEST;
                    there_kind = CT_KIND_NETWORK;
                }

                announce = true;

                /* This side: rewrite as decided. */
                ARCH_REGISTER_WRITE(ct_signature, meta.ct.index, meta.ct.signature);
                ARCH_REGISTER_WRITE(ct_info, meta.ct.index,
                    state_bits | ((bit<32>)meta.ct.swapped << CT_INFO_ORIG_HI_BIT)
                    | ((bit<32>)here_kind << CT_INFO_KIND_LSB)
                    | ((bit<32>)meta.nat.src_rewrite << CT_INFO_XLATE_SRC_BIT)
                    | ((bit<32>)meta.nat.dst_rewrite << CT_INFO_XLATE_DST_BIT) | profile_bits);
                ARCH_REGISTER_WRITE(ct_flow, meta.ct.index, meta.flow.flow_id);
                ARCH_REGISTER_WRITE(ct_expires, meta.ct.index, expires);
                ARCH_REGISTER_WRITE(ct_partner, meta.ct.index, t_index);
                ARCH_REGISTER_WRITE(ct_xlate_src_addr, meta.ct.index, meta.nat.new_src_addr);
                ARCH_REGISTER_WRITE(ct_xlate_src_port, meta.ct.index, meta.nat.new_src_port);
                ARCH_REGISTER_WRITE(ct_xlate_dst_addr, meta.ct.index, meta.nat.new_dst_addr);
                ARCH_REGISTER_WRITE(ct_xlate_dst_port, meta.ct.index, meta.nat.new_dst_port);

                /* Far side: replies come back as (t_dst -> t_src) and are
                 * rewritten to (original dst -> original src). */
                ARCH_REGISTER_WRITE(ct_signature, t_index, t_signature);
                ARCH_REGISTER_WRITE(ct_info, t_index,
                    state_bits | ((bit<32>)t_swapped << CT_INFO_ORIG_HI_BIT)
                    | ((bit<32>)there_kind << CT_INFO_KIND_LSB)
                    | ((bit<32>)meta.nat.dst_rewrite << CT_INFO_XLATE_SRC_BIT)
                    | ((bit<32>)meta.nat.src_rewrite << CT_INFO_XLATE_DST_BIT) | profile_bits);
                ARCH_REGISTER_WRITE(ct_flow, t_index, meta.flow.flow_id);
                ARCH_REGISTER_WRITE(ct_expires, t_index, expires);
                ARCH_REGISTER_WRITE(ct_partner, t_index, meta.ct.index);
                ARCH_REGISTER_WRITE(ct_xlate_src_addr, t_index, meta.l34.dst_addr[31:0]);
                ARCH_REGISTER_WRITE(ct_xlate_src_port, t_index, meta.l34.dst_port);
                ARCH_REGISTER_WRITE(ct_xlate_dst_addr, t_index, meta.l34.src_addr[31:0]);
                ARCH_REGISTER_WRITE(ct_xlate_dst_port, t_index, meta.l34.src_port);

                ARCH_COUNT(ct_events, CT_EVENT_NEW);
                meta.nat.applied = 1;
            }
        }

        /* Whose connection, its normalised tuple and its slot (the digest
         * ct_new_digest_t); the architecture sends it at the end of ingress. */
        if (announce) {
            meta.ct_new = { meta.vnic.vnic_id, meta.flow.flow_id, meta.l34.proto,
                            meta.ct.lo_addr, meta.ct.hi_addr, meta.ct.lo_port,
                            meta.ct.hi_port, meta.ct.index };
            meta.arch.ct_new_digest = 1;
        }
    }
}

#endif
