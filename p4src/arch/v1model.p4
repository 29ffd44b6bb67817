/* The v1model architecture (BMv2 simple_switch / simple_switch_grpc, and the
 * embedded target), in one place.
 *
 * The pipeline (vnic.p4, parser.p4, checksums.p4, deparser.p4, stages/) is
 * written against the target-neutral signature (inout headers_t hdr,
 * inout metadata_t meta): it reaches the target's externs only through the
 * ARCH_* macros below, and talks to the target only through meta.arch
 * (include/headers.p4: ingress port and errors in; egress port, drop, clone,
 * truncate and digest requests out) and meta.now. Another architecture (PSA,
 * PNA, TNA) is another file like this one, with the same macros and its own
 * package; the stages stay as they are.
 *
 * vnic.p4 includes this file twice, like the two halves of a sandwich:
 *   - first, before the pipeline: the target's externs, as macros;
 *   - then with PYOFFLOAD_ARCH_PACKAGE defined, after the pipeline: the
 *     v1model parser and controls around the neutral pipeline, and main.
 *
 * Declarations through the macros keep their @name(".vnic.*") annotation in
 * front of the macro, e.g.
 *     @name(".vnic.ct_info") ARCH_REGISTER(bit<32>, CT_TOTAL_SLOTS) ct_info;
 * so P4Runtime names and ids do not depend on the architecture. Field lists
 * ({ ... }) go last in a macro's arguments: they contain commas, so the macros
 * take them as the variadic part. */

#ifndef PYOFFLOAD_ARCH_PACKAGE

/* ---- Before the pipeline: the target's externs. ---- */
#ifndef PYOFFLOAD_ARCH_V1MODEL_EXTERNS
#define PYOFFLOAD_ARCH_V1MODEL_EXTERNS

#include <core.p4>
#include <v1model.p4>

/* Registers: an array of SIZE values of type T. */
#define ARCH_REGISTER(T, SIZE) register<T>(SIZE)
#define ARCH_REGISTER_READ(REG, VALUE, INDEX) REG.read(VALUE, INDEX)
#define ARCH_REGISTER_WRITE(REG, INDEX, VALUE) REG.write(INDEX, VALUE)

/* Indexed counters, and the per-entry counter of a table. */
#define ARCH_COUNTER_PACKETS(SIZE) counter(SIZE, CounterType.packets)
#define ARCH_COUNTER_PACKETS_AND_BYTES(SIZE) counter(SIZE, CounterType.packets_and_bytes)
#define ARCH_DIRECT_COUNTER_PACKETS_AND_BYTES direct_counter(CounterType.packets_and_bytes)
#define ARCH_COUNT(COUNTER, INDEX) COUNTER.count(INDEX)

/* Two-rate three-colour meters over bytes: indexed, and per table entry.
 * COLOR receives the colour (ARCH_COLOR_RED for red). */
#define ARCH_METER_BYTES(SIZE) meter(SIZE, MeterType.bytes)
#define ARCH_METER_EXECUTE(METER, INDEX, COLOR) METER.execute_meter(INDEX, COLOR)
#define ARCH_DIRECT_METER_BYTES(COLOR_T) direct_meter<COLOR_T>(MeterType.bytes)
#define ARCH_DIRECT_METER_READ(METER, COLOR) METER.read(COLOR)
/* v1model's colours: 0 green, 1 yellow, 2 red. */
const bit<2> ARCH_COLOR_RED = 2;

/* RESULT = BASE + (hash of the field list) mod MAX. */
#define ARCH_HASH_CRC16(RESULT, BASE, MAX, ...) \
    hash(RESULT, HashAlgorithm.crc16, BASE, __VA_ARGS__, MAX)
#define ARCH_HASH_CRC32(RESULT, BASE, MAX, ...) \
    hash(RESULT, HashAlgorithm.crc32, BASE, __VA_ARGS__, MAX)

/* The action selector of a table: SIZE members, OUTPUT_BITS of CRC16 hash. */
#define ARCH_ACTION_SELECTOR_CRC16(SIZE, OUTPUT_BITS) \
    action_selector(HashAlgorithm.crc16, SIZE, OUTPUT_BITS)

/* The Internet checksum (16-bit ones' complement) of a field list: checked
 * before ingress (a mismatch sets meta.arch.checksum_error) and written into
 * CHECKSUM after it, each only when COND holds. */
#define ARCH_VERIFY_CHECKSUM16(COND, CHECKSUM, ...) \
    verify_checksum(COND, __VA_ARGS__, CHECKSUM, HashAlgorithm.csum16)
#define ARCH_UPDATE_CHECKSUM16(COND, CHECKSUM, ...) \
    update_checksum(COND, __VA_ARGS__, CHECKSUM, HashAlgorithm.csum16)

#endif  /* PYOFFLOAD_ARCH_V1MODEL_EXTERNS */

#else  /* PYOFFLOAD_ARCH_PACKAGE */

/* ---- After the pipeline: v1model's package around it. ---- */
#ifndef PYOFFLOAD_ARCH_V1MODEL_PACKAGE
#define PYOFFLOAD_ARCH_V1MODEL_PACKAGE

/* The parser needs the ingress port (frames from the CPU port start with
 * packet_out); the neutral parser reads it from meta.arch. It takes hdr
 * inout (see parser.p4): the headers handed on are the target's fresh, all
 * invalid ones, which p4c cannot know, hence its warning silenced here. */
parser V1ModelParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t std_meta) {
    VnicParser() vnic_parser;

    @noWarn("uninitialized_use")
    state start {
        meta.arch.ingress_port = std_meta.ingress_port;
        vnic_parser.apply(pkt, hdr, meta);
        transition accept;
    }
}

/* The pipeline runs in ingress: the target's metadata is copied into
 * meta.arch (and meta.now) before it, and its requests are carried out
 * after it. v1model acts on clone, truncate and digest at the end of ingress
 * wherever they are called, so calling them here changes nothing. */
control V1ModelIngress(inout headers_t hdr, inout metadata_t meta,
                       inout standard_metadata_t std_meta) {
    VnicIngress() vnic_ingress;

    apply {
        meta.now = std_meta.ingress_global_timestamp;
        meta.arch.ingress_port = std_meta.ingress_port;
        if (std_meta.parser_error != error.NoError) {
            meta.arch.parser_error = 1;
        }
        meta.arch.checksum_error = std_meta.checksum_error;

        vnic_ingress.apply(hdr, meta);

        if (meta.arch.drop == 1) {
            mark_to_drop(std_meta);
        } else {
            std_meta.egress_spec = meta.arch.egress_port;
        }
        if (meta.arch.clone_request == 1) {
            clone(CloneType.I2E, meta.arch.clone_session);
        }
        if (meta.arch.truncate_len != 0) {
            truncate(meta.arch.truncate_len);
        }
        /* The pipeline's one digest; a new digest is a new request bit in
         * arch_meta_t and a call here. */
        if (meta.arch.ct_new_digest == 1) {
            digest<ct_new_digest_t>(1, meta.ct_new);
        }
    }
}

/* The pipeline has no egress stage. */
control V1ModelEgress(inout headers_t hdr, inout metadata_t meta,
                      inout standard_metadata_t std_meta) {
    apply {
    }
}

/* VnicVerifyChecksum, VnicComputeChecksum and VnicDeparser already have
 * v1model's signatures (their checksum externs come from the macros above). */
V1Switch(V1ModelParser(), VnicVerifyChecksum(), V1ModelIngress(), V1ModelEgress(),
         VnicComputeChecksum(), VnicDeparser()) main;

#endif  /* PYOFFLOAD_ARCH_V1MODEL_PACKAGE */

#endif  /* PYOFFLOAD_ARCH_PACKAGE */
