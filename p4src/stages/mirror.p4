/* Stage 9, mirroring: a copy of every forwarded packet of a flow with the
 * mirror service goes to the flow's monitor session (a clone session of the
 * packet replication engine, configured through P4Runtime); the architecture
 * makes the copy at the end of ingress. */
#ifndef PYOFFLOAD_MIRROR_P4
#define PYOFFLOAD_MIRROR_P4

#include "../include/headers.p4"

control Mirror(inout headers_t hdr, inout metadata_t meta) {
    apply {
        if (meta.flow.hit == 1 && (meta.flow.services & SVC_MIRROR) != 0
                && meta.flow.mirror_session != 0 && meta.drop == 0 && meta.punt == 0) {
            meta.arch.clone_request = 1;
            meta.arch.clone_session = meta.flow.mirror_session;
        }
    }
}

#endif
