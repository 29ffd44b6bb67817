/* Capacities of the VNIC data path, in one place.
 *
 * Every table, register and meter size of the pipeline comes from here, so a
 * target with more (or less) memory changes one file. The P4Info records the
 * table sizes; pyoffload reads them from there to refuse a request that does
 * not fit before anything is written. The values can be overridden at compile
 * time, e.g. `p4c-bm2-ss -DCT_SLOTS=1048576 ...`.
 */
#ifndef PYOFFLOAD_SIZES_P4
#define PYOFFLOAD_SIZES_P4

/* VNIC port map: one entry per (VNIC, side) port. */
#ifndef PORT_MAP_SIZE
#define PORT_MAP_SIZE 1024
#endif

/* Declared flows, all VNICs together (ternary/range classifier). */
#ifndef FLOW_CLASSIFIER_SIZE
#define FLOW_CLASSIFIER_SIZE 4096
#endif

/* Per-flow configuration (exact match on VNIC id and flow id). */
#ifndef FLOW_CONFIG_SIZE
#define FLOW_CONFIG_SIZE 4096
#endif

/* Service rules (ACL), all VNICs together. */
#ifndef ACL_SIZE
#define ACL_SIZE 16384
#endif

/* Connection-tracking hash slots. Must be a power of two. */
#ifndef CT_SLOTS
#define CT_SLOTS 65536
#endif

/* Slots reserved after the hash slots for connections whose hash slot is held
 * by another live connection; the agent hands them out through ct_overflow. */
#ifndef CT_OVERFLOW_SLOTS
#define CT_OVERFLOW_SLOTS 1024
#endif

/* Conntrack timeout table: (profile, state) -> timeout. 256 profiles x 16 states. */
#ifndef CT_TIMEOUT_SIZE
#define CT_TIMEOUT_SIZE 4096
#endif

/* NAT rules, all VNICs together. */
#ifndef NAT_SIZE
#define NAT_SIZE 4096
#endif

/* Load-balanced VIPs and the members/groups of their action selector. */
#ifndef LB_VIP_SIZE
#define LB_VIP_SIZE 1024
#endif
#ifndef LB_SELECTOR_SIZE
#define LB_SELECTOR_SIZE 16384
#endif

/* Per-flow meters and counters (indexed by a slot the agent allocates). */
#ifndef FLOW_METER_SIZE
#define FLOW_METER_SIZE 4096
#endif
#ifndef FLOW_COUNTER_SIZE
#define FLOW_COUNTER_SIZE 4096
#endif

#endif
