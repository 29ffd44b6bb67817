/* Stage 8, rate limiting: a two-rate three-colour meter per flow (indexed by
 * the flow's meter slot) on top of the per-rule direct meter of the ACL.
 * Red is dropped and counted; yellow passes. */
#ifndef PYOFFLOAD_RATE_LIMITER_P4
#define PYOFFLOAD_RATE_LIMITER_P4

#include "../include/headers.p4"
#include "../include/sizes.p4"

control RateLimiter(inout headers_t hdr, inout metadata_t meta) {
    @name(".vnic.flow_meter")
    ARCH_METER_BYTES(FLOW_METER_SIZE) flow_meter;

    apply {
        if (meta.verdict != VERDICT_ALLOW && meta.verdict != VERDICT_ALLOW_TRACK) {
            return;
        }
        bit<2> flow_color = 0;
        if (meta.flow.hit == 1 && (meta.flow.services & SVC_METER) != 0) {
            ARCH_METER_EXECUTE(flow_meter, meta.flow.meter_index, flow_color);
        }
        if (flow_color == ARCH_COLOR_RED || meta.color == ARCH_COLOR_RED) {
            meta.drop = 1;
            meta.drop_reason = DROP_RATE_LIMIT;
        }
    }
}

#endif
