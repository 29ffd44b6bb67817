"""The v1model pipeline driver: what BMv2 simple_switch does with a packet, in order.

ingress parser -> checksum verify -> ingress control -> ingress clone ->
digest -> resubmit | multicast | unicast (egress_spec 511 drops) -> per copy:
egress control -> egress clone -> drop check -> deparse -> recirculate | out.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .actions import build_actions
from .calculations import build_calculations, build_checksums
from .codegen import Namespace
from .controls import Control
from .deparser import build_deparser
from .errors import EngineError, PipelineLoadError, UnsupportedConstruct
from .expressions import ExprCompiler, ctx_of
from .externs import CounterArray, MeterArray, RegisterArray
from .headers import HeaderCodec
from .model import Json, Layout, build_layout, check_version, where
from .packet import Pkt
from .parser import Parser, ParseValueSet
from .phv import PhvPool
from .pre import Pre
from .primitives import DROP_PORT, CompileEnv, PrimitiveCompiler
from .runtime import PipelineAbort
from .state import PipelineState

NORMAL, INGRESS_CLONE, EGRESS_CLONE, COALESCED, RECIRC, REPLICATION, RESUBMIT = range(7)
MAX_PASSES = 64  # resubmit/recirculate passes per received packet before the engine gives up
MAX_PACKET = 1 << 20


@dataclass(slots=True)
class ProcessResult:
    """What one received packet produced."""

    outputs: list[tuple[int, bytes]] = field(default_factory=list)
    digests: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Std:
    """PHV slots of the standard metadata fields simple_switch reads or writes."""

    ingress_port: int | None
    egress_spec: int | None
    egress_port: int | None
    instance_type: int | None
    packet_length: int | None
    mcast_grp: int | None
    egress_rid: int | None
    parser_error: int | None
    checksum_error: int | None
    priority: int | None
    ingress_ts: int | None
    egress_ts: int | None
    queueing: tuple[int, int, int, int] | None

    @classmethod
    def of(cls, lay: Layout) -> _Std:
        s = lay.alias_slot
        q = [
            s("queueing_metadata.enq_timestamp"),
            s("queueing_metadata.enq_qdepth"),
            s("queueing_metadata.deq_timedelta"),
            s("queueing_metadata.deq_qdepth"),
        ]
        qs = [x for x in q if x is not None]
        queueing = (qs[0], qs[1], qs[2], qs[3]) if len(qs) == 4 else None
        return cls(
            s("standard_metadata.ingress_port"),
            s("standard_metadata.egress_spec"),
            s("standard_metadata.egress_port"),
            s("standard_metadata.instance_type"),
            s("standard_metadata.packet_length"),
            s("intrinsic_metadata.mcast_grp"),
            s("intrinsic_metadata.egress_rid"),
            s("standard_metadata.parser_error"),
            s("standard_metadata.checksum_error"),
            s("intrinsic_metadata.priority"),
            s("intrinsic_metadata.ingress_global_timestamp"),
            s("intrinsic_metadata.egress_global_timestamp"),
            queueing,
        )


def _pick(objs: list[Json], name: str, index: int, what: str) -> Json:
    for o in objs:
        if o.get("name") == name:
            return o
    if len(objs) > index:
        return objs[index]
    raise PipelineLoadError(f"BMv2 JSON: no {what} '{name}'")


class Pipeline:
    """A loaded v1model program: `process` packets, configure it through `state`."""

    def __init__(self, cfg: Json, clock: Callable[[], int], seed: int | None = None) -> None:
        check_version(cfg)
        self.clock = clock
        self.t0 = clock()
        self.lay = lay = build_layout(cfg)
        self.ns = ns = Namespace()
        regs = {
            r["name"]: RegisterArray(r["name"], int(r["size"]), int(r["bitwidth"]))
            for r in cfg.get("register_arrays", [])
        }
        counters = {
            c["name"]: CounterArray(c["name"], int(c["size"]))
            for c in cfg.get("counter_arrays", [])
            if not c.get("is_direct")
        }
        counter_bindings = {
            str(c.get("binding")) for c in cfg.get("counter_arrays", []) if c.get("is_direct")
        }
        meter_json = {m["name"]: m for m in cfg.get("meter_arrays", [])}
        meters = {
            m["name"]: MeterArray(
                m["name"], int(m["size"]), m.get("type") == "packets", clock, self.t0
            )
            for m in cfg.get("meter_arrays", [])
            if not m.get("is_direct")
        }
        for m in meter_json.values():
            if int(m.get("rate_count", 2)) != 2:
                raise UnsupportedConstruct(f"meter with {m.get('rate_count')} rates", where(m))

        def reg_lookup(name: str, ctx: str) -> RegisterArray:
            if name not in regs:
                raise PipelineLoadError(f"{ctx}: unknown register array '{name}'")
            return regs[name]

        ec = ExprCompiler(lay, ns, reg_lookup)
        codecs = {name: HeaderCodec(ht, ns) for name, ht in lay.types.items()}
        env = CompileEnv(lay, ns, ec, codecs, regs, counters, meters, rng=random.Random(seed))
        if cfg.get("extern_instances"):
            ext = cfg["extern_instances"][0]
            raise UnsupportedConstruct(
                f"extern instance of type '{ext.get('type')}'", ctx_of(ext, str(ext.get("name")))
            )
        env.calcs = build_calculations(cfg, lay, ns, codecs)
        pc = PrimitiveCompiler(env)
        self.actions = build_actions(cfg, env, pc)
        self.checksums = build_checksums(cfg, lay, ns, ec, env.calcs)
        self.vsets = {
            v["name"]: ParseValueSet(
                v["name"], int(v.get("compressed_bitwidth", 0)), int(v.get("max_size", 0))
            )
            for v in cfg.get("parse_vsets", [])
        }
        parsers = cfg.get("parsers", [])
        self.parser = Parser(_pick(parsers, "parser", 0, "parser"), env, pc, self.vsets)
        deparsers = cfg.get("deparsers", [])
        self.deparse = build_deparser(
            _pick(deparsers, "deparser", 0, "deparser"), env, pc, self.checksums
        )
        self.tables: dict[str, Any] = {}
        self.profiles: dict[str, Any] = {}
        pipes = cfg.get("pipelines", [])
        self.ingress = Control(
            _pick(pipes, "ingress", 0, "pipeline"),
            env,
            self.actions,
            self.tables,
            self.profiles,
            clock,
            meter_json,
            counter_bindings,
            self.t0,
        )
        self.egress = Control(
            _pick(pipes, "egress", 1, "pipeline"),
            env,
            self.actions,
            self.tables,
            self.profiles,
            clock,
            meter_json,
            counter_bindings,
            self.t0,
        )
        self.field_lists = {
            int(fl["id"]): [self._fl_slot(e, fl) for e in fl.get("elements", [])]
            for fl in cfg.get("field_lists", [])
        }
        self.learn_lists = {
            int(ll["id"]): (str(ll["name"]), [self._fl_slot(e, ll) for e in ll.get("elements", [])])
            for ll in cfg.get("learn_lists", [])
        }
        self.std = _Std.of(lay)
        if self.std.egress_spec is None or self.std.ingress_port is None:
            raise PipelineLoadError("BMv2 JSON: standard_metadata.egress_spec/ingress_port missing")
        self.phvs = PhvPool(lay)
        self.verify = [c for c in self.checksums if c.verify]
        self.pre = Pre()
        self.state = PipelineState(
            self.tables,
            self.profiles,
            regs,
            counters,
            meters,
            self.pre,
            self.vsets,
            {k: v[0] for k, v in self.learn_lists.items()},
        )

    def _fl_slot(self, e: Json, fl: Json) -> int:
        if e.get("type") != "field":
            raise UnsupportedConstruct(f"field list element of type '{e.get('type')}'", where(fl))
        _, slot = self.lay.field_ref(e["value"][0], e["value"][1], f"field list {fl.get('name')}")
        return slot

    # ---- loading ----------------------------------------------------------
    @classmethod
    def load(
        cls,
        source: str | bytes | dict[str, Any],
        clock: Callable[[], int] = time.monotonic_ns,
        seed: int | None = None,
    ) -> Pipeline:
        """Load and compile a BMv2 JSON (text or parsed); raises PipelineLoadError."""
        if isinstance(source, str | bytes):
            try:
                cfg = json.loads(source)
            except (ValueError, UnicodeDecodeError) as e:
                raise PipelineLoadError(f"BMv2 JSON is not valid JSON: {e}") from None
        else:
            cfg = source
        try:
            return cls(cfg, clock, seed)
        except EngineError:
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            SyntaxError,
            RecursionError,
        ) as e:
            raise PipelineLoadError(f"malformed BMv2 JSON: {type(e).__name__}: {e}") from e

    # ---- packet path --------------------------------------------------------
    def _now_us(self) -> int:
        return (self.clock() - self.t0) // 1000

    def _derive(self, src: list[int], f: list[int], fl_id: int, itype: int) -> list[int]:
        """BMv2's copy for clones/resubmit/recirculate, into the copy's PHV `f`:
        metadata reset, field list copied."""
        self.phvs.reset_metadata(f)
        for slot in self.field_lists.get(fl_id, ()):
            f[slot] = src[slot]
        it = self.std.instance_type
        if it is not None:
            f[it] = itype
        return f

    def process(self, ingress_port: int, packet: bytes) -> ProcessResult:
        """Run one received packet through the whole v1model pipeline."""
        res = ProcessResult()
        if len(packet) > MAX_PACKET:
            res.logs.append(f"packet of {len(packet)} bytes exceeds {MAX_PACKET}: dropped")
            return res
        ingress: deque[tuple[bytes, list[int] | None, int]] = deque(
            [(bytes(packet), None, len(packet))]
        )
        passes = 0
        while ingress:
            passes += 1
            if passes > MAX_PASSES:
                res.logs.append("too many resubmit/recirculate passes: packet dropped")
                break
            data, f0, plen = ingress.popleft()
            try:
                egress = self._ingress(ingress_port, data, f0, plen, res, ingress)
                for job in egress:
                    self._egress(job, res, ingress)
            except PipelineAbort as e:
                res.logs.append(str(e))
        return res

    def _parse(self, f: list[int], p: Pkt) -> None:
        std = self.std
        err = self.parser.run(f, p)
        if std.parser_error is not None:
            f[std.parser_error] = err
        bad = False
        for c in self.verify:
            if not c.verify_ok(f, p):
                bad = True
        if std.checksum_error is not None:
            f[std.checksum_error] = 1 if bad else 0

    def _ingress(
        self,
        port: int,
        data: bytes,
        f0: list[int] | None,
        plen: int,
        res: ProcessResult,
        ingress: deque[tuple[bytes, list[int] | None, int]],
    ) -> list[tuple[list[int], Pkt, int]]:
        std = self.std
        if f0 is None:
            f = self.phvs.get()
            self.phvs.reset_metadata(f)
            f[std.ingress_port] = port & 0x1FF  # type: ignore[index]
            if std.instance_type is not None:
                f[std.instance_type] = NORMAL
            if std.ingress_ts is not None:
                f[std.ingress_ts] = self._now_us() & 0xFFFFFFFFFFFF
        else:
            f = f0
        if std.packet_length is not None:
            f[std.packet_length] = plen & 0xFFFFFFFF
        p = Pkt(f, data, plen, res.logs)
        self._parse(f, p)
        self.ingress.run(f, p)
        p.exit = False
        out: list[tuple[list[int], Pkt, int]] = []
        egress_spec = f[std.egress_spec]  # type: ignore[index]
        mgid = f[std.mcast_grp] if std.mcast_grp is not None else 0
        if p.clone_sid is not None:
            session = self.pre.session(p.clone_sid)
            if session is not None:
                # BMv2 parses the received bytes again into a PHV of the clone's own
                fc = self.phvs.get()
                fc[std.ingress_port] = port & 0x1FF  # type: ignore[index]
                pc = Pkt(fc, data, plen, res.logs)
                self.parser.run(fc, pc)
                self._derive(f, fc, p.clone_fl, INGRESS_CLONE)
                self._replicate(fc, pc, session.replicas, plen, out)
                self.phvs.put(fc)
        if p.digest:
            ll = self.learn_lists.get(p.digest)
            if ll is not None:
                res.digests.append((ll[0], tuple(f[s] for s in ll[1])))
        if p.resubmit_fl:
            fr = self._derive(f, self.phvs.get(), p.resubmit_fl, RESUBMIT)
            ingress.append((data, fr, plen))
            self.phvs.put(f)
            return out
        if mgid:
            if std.instance_type is not None:
                f[std.instance_type] = REPLICATION
            self._replicate(f, p, self.pre.replicate(mgid), p.length, out)
            self.phvs.put(f)
            return out
        if egress_spec == DROP_PORT:
            self.phvs.put(f)
            return out
        if std.instance_type is not None:
            f[std.instance_type] = NORMAL
        self._enqueue(f, p, egress_spec, out)
        return out

    def _replicate(
        self,
        f: list[int],
        p: Pkt,
        replicas: tuple[tuple[int, int], ...],
        length: int,
        out: list[tuple[list[int], Pkt, int]],
    ) -> None:
        rid = self.std.egress_rid
        for port, r in replicas:
            fc = self.phvs.get()
            self.phvs.copy_headers(fc, f)
            if rid is not None:
                fc[rid] = r
            pc = Pkt(fc, p.data, p.ingress_length, p.logs)
            pc.pos = p.pos
            pc.length = length
            self._enqueue(fc, pc, port, out)

    def _enqueue(
        self, f: list[int], p: Pkt, port: int, out: list[tuple[list[int], Pkt, int]]
    ) -> None:
        std = self.std
        if std.priority is not None and f[std.priority] != 0:
            p.logs.append("Priority out of range, dropping packet")
            self.phvs.put(f)
            return
        if std.queueing is not None:
            f[std.queueing[0]] = self._now_us() & 0xFFFFFFFF
            f[std.queueing[1]] = 0
        out.append((f, p, port))

    def _egress(
        self,
        job: tuple[list[int], Pkt, int],
        res: ProcessResult,
        ingress: deque[tuple[bytes, list[int] | None, int]],
    ) -> None:
        queue = deque([job])
        std = self.std
        while queue:
            f, p, port = queue.popleft()
            if std.egress_ts is not None:
                f[std.egress_ts] = self._now_us() & 0xFFFFFFFFFFFF
            if std.queueing is not None:
                f[std.queueing[2]] = (self._now_us() - f[std.queueing[0]]) & 0xFFFFFFFF
                f[std.queueing[3]] = 0
            if std.egress_port is not None:
                f[std.egress_port] = port
            f[std.egress_spec] = DROP_PORT + 1  # type: ignore[index]
            if std.packet_length is not None:
                f[std.packet_length] = p.length & 0xFFFFFFFF
            p.clone_sid = None
            self.egress.run(f, p)
            if p.clone_sid is not None:
                session = self.pre.session(p.clone_sid)
                if session is not None:
                    fc = self.phvs.get()
                    self.phvs.copy_headers(fc, f)
                    self._derive(f, fc, p.clone_fl, EGRESS_CLONE)
                    clones: list[tuple[list[int], Pkt, int]] = []
                    self._replicate(fc, p, session.replicas, p.length, clones)
                    self.phvs.put(fc)
                    queue.extend(clones)
            if f[std.egress_spec] == DROP_PORT:  # type: ignore[index]
                self.phvs.put(f)
                continue
            frame = self.deparse(f, p)
            if p.trunc is not None:
                frame = frame[: p.trunc]
            if p.recirc_fl:
                fr = self._derive(f, self.phvs.get(), p.recirc_fl, RECIRC)
                ingress.append((frame, fr, len(frame)))
                self.phvs.put(f)
                continue
            res.outputs.append((port, frame))
            self.phvs.put(f)


__all__ = ["Pipeline", "ProcessResult"]
