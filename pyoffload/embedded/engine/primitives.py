"""Compiling BMv2 primitive calls (core and simple_switch ones) into Python statements.

Each primitive becomes a few lines of source over the PHV list `f`, the
action arguments `a` and the packet context `p`; objects such as register
arrays are bound as constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .calculations import Calculation
from .codegen import Namespace
from .errors import PipelineLoadError, UnsupportedConstruct
from .expressions import HEADER, STACK, UNION, UNION_STACK, Ex, ExprCompiler, LValue
from .externs import CounterArray, MeterArray, RegisterArray
from .headers import HeaderCodec, stack_pop, stack_push
from .model import HeaderInst, HeaderType, Json, Layout

DROP_PORT = 511


@dataclass(slots=True)
class CompileEnv:
    """Everything primitives may refer to, by JSON name."""

    lay: Layout
    ns: Namespace
    ec: ExprCompiler
    codecs: dict[str, HeaderCodec]
    registers: dict[str, RegisterArray] = field(default_factory=dict)
    counters: dict[str, CounterArray] = field(default_factory=dict)
    meters: dict[str, MeterArray] = field(default_factory=dict)
    calcs: dict[str, Calculation] = field(default_factory=dict)
    rng: Any = None

    def obj(self, kind: str, table: dict[str, Any], name: Json, ctx: str) -> str:
        o = table.get(name)
        if o is None:
            raise PipelineLoadError(f"{ctx}: unknown {kind} '{name}'")
        return self.ns.const(o, kind[:3])


def _name(p: Json, ctx: str) -> Any:
    if not isinstance(p, dict) or "value" not in p:
        raise PipelineLoadError(f"{ctx}: bad primitive parameter {p!r}")
    return p["value"]


def _nfields(ht: HeaderType) -> int:
    return len(ht.fields) + (1 if ht.vl_index is not None else 0)


def _header_ex(h: HeaderInst) -> Ex:
    return Ex(str(h.base), HEADER, h.htype, h)


class PrimitiveCompiler:
    """Turns one primitive call into source lines (jumps are handled by the caller)."""

    def __init__(self, env: CompileEnv) -> None:
        self.env = env
        self.ec = env.ec
        lay = env.lay
        self.egress_spec = lay.alias_slot("standard_metadata.egress_spec")
        self.mcast_grp = lay.alias_slot("intrinsic_metadata.mcast_grp")
        self._table: dict[str, Callable[[list[Json], str], list[str]]] = {
            "assign": self._assign,
            "modify_field": self._assign,
            "assign_VL": self._assign_vl,
            "assign_header": self._assign_header,
            "copy_header": self._assign_header,
            "assign_union": self._assign_union,
            "assign_header_stack": self._assign_stack,
            "assign_union_stack": self._assign_stack,
            "add_header": self._add_header,
            "add_header_fast": self._add_header_fast,
            "remove_header": self._remove_header,
            "push": self._push,
            "pop": self._pop,
            "mark_to_drop": self._mark_to_drop,
            "drop": self._drop,
            "register_read": self._register_read,
            "register_write": self._register_write,
            "count": self._count,
            "execute_meter": self._execute_meter,
            "modify_field_with_hash_based_offset": self._hash,
            "modify_field_rng_uniform": self._random,
            "generate_digest": self._digest,
            "clone_ingress_pkt_to_egress": self._clone,
            "clone_egress_pkt_to_egress": self._clone,
            "resubmit": self._resubmit,
            "recirculate": self._recirculate,
            "truncate": self._truncate,
            "exit": lambda ps, ctx: ["p.exit = True"],
            "no_op": lambda ps, ctx: [],
            "log_msg": self._log_msg,
            "assert": self._assert,
            "assume": self._assert,
            "add_to_field": self._binop_field("+"),
            "subtract_from_field": self._binop_field("-"),
            "add": self._binop3("+"),
            "subtract": self._binop3("-"),
            "bit_xor": self._binop3("^"),
            "bit_or": self._binop3("|"),
            "bit_and": self._binop3("&"),
            "shift_left": self._binop3("<<"),
            "shift_right": self._binop3(">>"),
        }

    def compile(self, prim: Json, ctx: str) -> list[str]:
        op = prim.get("op")
        params = prim.get("parameters", [])
        fn = self._table.get(op)
        if fn is None:
            raise UnsupportedConstruct(f"primitive '{op}'", ctx)
        if not isinstance(params, list):
            raise PipelineLoadError(f"{ctx}: primitive '{op}' parameters must be a list")
        return fn(params, ctx)

    def _n(self, params: list[Json], n: int, ctx: str) -> None:
        if len(params) != n:
            raise PipelineLoadError(f"{ctx}: expected {n} parameters, got {len(params)}")

    # ---- assignment -------------------------------------------------------
    def _assign(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        dst = ps[0]
        if isinstance(dst, dict) and dst.get("type") in ("header", "header_union",
                                                          "header_stack", "expression"):
            kind = self.ec.compile(dst, ctx).kind
            if kind == HEADER:
                return self._assign_header(ps, ctx)
            if kind == UNION:
                return self._assign_union(ps, ctx)
            if kind == STACK:
                return self._assign_stack(ps, ctx)
        lv = self.ec.lvalue(dst, ctx)
        return [lv.store(self.ec.data(ps[1], ctx))]

    def _assign_vl(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        d = ps[0]["value"]
        s = ps[1]["value"]
        dh, dslot = self.env.lay.field_ref(d[0], d[1], ctx)
        sh, sslot = self.env.lay.field_ref(s[0], s[1], ctx)
        return [f"f[{dslot}] = f[{sslot}]", f"f[{dh.vl_slot}] = f[{sh.vl_slot}]"]

    def _hdr(self, p: Json, ctx: str) -> tuple[str, HeaderType, int | None]:
        e = self.ec.compile(p, ctx)
        if e.kind != HEADER or e.htype is None:
            raise PipelineLoadError(f"{ctx}: expected a header, got a {e.kind}")
        return e.src, e.htype, (e.header.base if e.header else None)

    def _assign_header(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        d = self.ec.header(ps[0], ctx)
        s = self.ec.header(ps[1], ctx)
        return self._copy_header(d, s, ctx)

    def _copy_header(self, d: Ex, s: Ex, ctx: str) -> list[str]:
        """BMv2's header assignment: an invalid source only invalidates the destination
        (whose fields keep their values); a valid one makes it valid, then copies the fields
        (and a varbit's width). The sources may be picked at run time (`?`, stack index)."""
        assert d.htype is not None and s.htype is not None
        if len(d.htype.fields) != len(s.htype.fields):
            raise PipelineLoadError(
                f"{ctx}: header assignment between header types {d.htype.name} and "
                f"{s.htype.name}"
            )
        n = _nfields(d.htype) + 1
        return [
            f"_d = {d.src}",
            f"_s = {s.src}",
            "if f[_s]:",
            f"    f[_d + 1:_d + {n}] = f[_s + 1:_s + {n}]",
            "    f[_d] = 1",
            *("    " + ln for ln in self._siblings_invalid(d)),
            "else:",
            "    f[_d] = 0",
        ]

    def _siblings_invalid(self, h: Ex) -> list[str]:
        """Lines run when header `h` becomes valid: the other members of its union become
        invalid (BMv2 keeps at most one member of a union valid)."""
        if h.header is None or h.header.union is None:
            return []
        members = self.env.lay.unions[h.header.union].members
        return [f"f[{m.base}] = 0" for _, m in members if m.base != h.header.base]

    def _union_fixup(self, base_src: str, p: Json, ctx: str) -> list[str]:
        """When a header that belongs to a union becomes valid, its siblings become invalid."""
        lines = self._siblings_invalid(self.ec.compile(p, ctx))
        return [f"if f[{base_src}]:", *("    " + ln for ln in lines)] if lines else []

    def _assign_union(self, ps: list[Json], ctx: str) -> list[str]:
        """Member by member, each a header assignment (so validity moves as in BMv2)."""
        self._n(ps, 2, ctx)
        du = self.ec.compile(ps[0], ctx)
        su = self.ec.compile(ps[1], ctx)
        if du.kind != UNION or su.kind != UNION or du.union is None or su.union is None:
            raise UnsupportedConstruct("assign_union of non-static unions", ctx)
        dm = self.env.lay.unions[du.union].members
        sm = self.env.lay.unions[su.union].members
        if len(dm) != len(sm):
            raise PipelineLoadError(f"{ctx}: assign_union between different union types")
        lines: list[str] = []
        for (_, dh), (_, sh) in zip(dm, sm, strict=True):
            lines += self._copy_header(_header_ex(dh), _header_ex(sh), ctx)
        return lines

    def _assign_stack(self, ps: list[Json], ctx: str) -> list[str]:
        """assign_header_stack and assign_union_stack: the next index, then element by
        element (a union member by member) as header assignments, in BMv2's order."""
        self._n(ps, 2, ctx)
        d = self.ec.compile(ps[0], ctx)
        s = self.ec.compile(ps[1], ctx)
        if d.kind != s.kind:
            raise PipelineLoadError(f"{ctx}: stack assignment between a {d.kind} and a {s.kind}")
        d_next, d_headers = self._stack_headers(d, ctx)
        s_next, s_headers = self._stack_headers(s, ctx)
        if len(d_headers) != len(s_headers):
            raise PipelineLoadError(f"{ctx}: stack assignment between stacks of other sizes")
        lines = [f"f[{d_next}] = f[{s_next}]"]
        for dh, sh in zip(d_headers, s_headers, strict=True):
            lines += self._copy_header(_header_ex(dh), _header_ex(sh), ctx)
        return lines

    @staticmethod
    def _stack_headers(e: Ex, ctx: str) -> tuple[int, list[HeaderInst]]:
        """A stack's next-index slot and its headers (a union stack's: union by union,
        member by member)."""
        if e.kind == STACK and e.stack is not None:
            return e.stack.next_slot, list(e.stack.elements)
        if e.kind == UNION_STACK and e.ustack is not None:
            return e.ustack.next_slot, [h for u in e.ustack.unions for _, h in u.members]
        raise PipelineLoadError(f"{ctx}: a stack assignment needs two header stacks or two "
                                "header union stacks")

    # ---- validity ---------------------------------------------------------
    def _add_header(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 1, ctx)
        b, ht, _ = self._hdr(ps[0], ctx)
        n = _nfields(ht)
        size = ht.fixed_bits // 8
        lines = [
            f"_b = {b}",
            "if not f[_b]:",
            f"    f[_b + 1:_b + {n + 1}] = {[0] * n!r}",
            "    f[_b] = 1",
            f"    p.length += {size}",
        ]
        lines += ["    " + ln for ln in self._union_fixup("_b", ps[0], ctx)]
        return lines

    def _add_header_fast(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 1, ctx)
        b, _, _ = self._hdr(ps[0], ctx)
        return [f"f[{b}] = 1", *self._union_fixup(b, ps[0], ctx)]

    def _remove_header(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 1, ctx)
        b, ht, _ = self._hdr(ps[0], ctx)
        codec = self.env.ns.const(self.env.codecs[ht.name].size, "size")
        return [f"_b = {b}", "if f[_b]:", f"    p.length -= {codec}(f, _b)", "    f[_b] = 0"]

    # ---- stacks (P4_16 semantics, as BMv2 is built by default) -------------
    def _stack(self, p: Json, ctx: str) -> tuple[list[int], int, int, bool]:
        """(element bases, element width, next-index slot, elements are headers)."""
        e = self.ec.compile(p, ctx)
        if e.kind == UNION_STACK and e.ustack is not None:
            us = e.ustack
            return us.bases, us.width, us.next_slot, False
        if e.kind != STACK or e.stack is None:
            raise PipelineLoadError(f"{ctx}: expected a header stack, got a {e.kind}")
        st = e.stack
        return (
            [h.base for h in st.elements],
            st.elements[0].nslots if st.elements else 0,
            st.next_slot,
            True,
        )

    def _push(self, ps: list[Json], ctx: str) -> list[str]:
        return self._shift(ps, stack_push, ctx)

    def _pop(self, ps: list[Json], ctx: str) -> list[str]:
        return self._shift(ps, stack_pop, ctx)

    def _shift(self, ps: list[Json], fn: Callable[..., None], ctx: str) -> list[str]:
        """push_front/pop_front as BMv2 does them: by swapping elements (headers.py)."""
        self._n(ps, 2, ctx)
        bases, w, nxt, hdr = self._stack(ps[0], ctx)
        num = self.ec.data(ps[1], ctx)
        k = self.env.ns.const(tuple(bases), "S")
        return [f"{self.env.ns.const(fn, 'shift')}(f, {k}, {w}, {nxt}, {num}, {hdr})"]

    # ---- v1model ----------------------------------------------------------
    def _mark_to_drop(self, ps: list[Json], ctx: str) -> list[str]:
        if len(ps) == 1:
            hname = _name(ps[0], ctx)
            h = self.env.lay.header(hname, ctx)
            try:
                es = h.slot("egress_spec")
            except KeyError:
                raise PipelineLoadError(
                    f"{ctx}: mark_to_drop on a header without egress_spec"
                ) from None
            try:
                mg: int | None = h.slot("mcast_grp")
            except KeyError:
                mg = None
            lines = [f"f[{es}] = {DROP_PORT}"]
            if mg is not None:
                lines.append(f"f[{mg}] = 0")
            return lines
        return self._drop(ps, ctx)

    def _drop(self, ps: list[Json], ctx: str) -> list[str]:
        if self.egress_spec is None:
            raise PipelineLoadError(f"{ctx}: drop needs standard_metadata.egress_spec")
        lines = [f"f[{self.egress_spec}] = {DROP_PORT}"]
        if self.mcast_grp is not None:
            lines.append(f"f[{self.mcast_grp}] = 0")
        return lines

    def _register_read(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 3, ctx)
        lv = self.ec.lvalue(ps[0], ctx)
        r = self.env.obj("register array", self.env.registers, _name(ps[1], ctx), ctx)
        idx = self.ec.data(ps[2], ctx)
        return [f"_i = {idx}", f"if 0 <= _i < {r}.size:", "    " + lv.store(f"{r}.cells[_i]")]

    def _register_write(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 3, ctx)
        r = self.env.obj("register array", self.env.registers, _name(ps[0], ctx), ctx)
        idx = self.ec.data(ps[1], ctx)
        val = self.ec.data(ps[2], ctx)
        return [f"{r}.put({idx}, {val})"]

    def _count(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        c = self.env.obj("counter array", self.env.counters, _name(ps[0], ctx), ctx)
        return [f"{c}.count({self.ec.data(ps[1], ctx)}, p.ingress_length)"]

    def _execute_meter(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 3, ctx)
        m = self.env.obj("meter array", self.env.meters, _name(ps[0], ctx), ctx)
        idx = self.ec.data(ps[1], ctx)
        lv = self.ec.lvalue(ps[2], ctx)
        return [
            f"_i = {idx}",
            f"if 0 <= _i < {m}.size:",
            "    " + lv.store(f"{m}.execute(_i, p.ingress_length)"),
        ]

    def _hash(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 4, ctx)
        lv = self.ec.lvalue(ps[0], ctx)
        base = self.ec.data(ps[1], ctx)
        calc = self.env.obj("calculation", self.env.calcs, _name(ps[2], ctx), ctx)
        size = self.ec.data(ps[3], ctx)
        return [
            f"_sz = {size}",
            "if _sz == 0: _sz = 1",
            lv.store(f"({calc}.output(f, p) % _sz) + {base}"),
        ]

    def _random(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 3, ctx)
        lv = self.ec.lvalue(ps[0], ctx)
        lo = self.ec.data(ps[1], ctx)
        hi = self.ec.data(ps[2], ctx)
        rng = self.env.ns.const(self.env.rng, "rng")
        return [
            f"_lo = {lo}",
            f"_hi = {hi}",
            "if _lo <= _hi:",
            "    " + lv.store(f"{rng}.randint(_lo, _hi)"),
        ]

    def _digest(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        return [f"p.digest = {self.ec.data(ps[1], ctx)} & 0xffff"]

    def _clone(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 2, ctx)
        sid = self.ec.data(ps[0], ctx)
        fl = self.ec.data(ps[1], ctx)
        return [f"p.clone_sid = ({sid}) & 0x7fff", f"p.clone_fl = ({fl}) & 0xffff"]

    def _resubmit(self, ps: list[Json], ctx: str) -> list[str]:
        fl = self.ec.data(ps[0], ctx) if ps else "0"
        return [f"p.resubmit_fl = ({fl}) & 0xffff"]

    def _recirculate(self, ps: list[Json], ctx: str) -> list[str]:
        fl = self.ec.data(ps[0], ctx) if ps else "0"
        return [f"p.recirc_fl = ({fl}) & 0xffff"]

    def _truncate(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 1, ctx)
        v = self.ec.data(ps[0], ctx)
        return [f"_t = {v}", "p.trunc = _t if p.trunc is None else min(p.trunc, _t)"]

    def _log_msg(self, ps: list[Json], ctx: str) -> list[str]:
        fmt = str(_name(ps[0], ctx)) if ps else ""
        args: list[str] = []
        if len(ps) > 1:
            vec = ps[1]
            items = vec.get("value", []) if isinstance(vec, dict) else []
            args = [self.ec.data(x, ctx) for x in items]
        k = self.env.ns.const(fmt, "fmt")
        return [f"p.logs.append(_fmt_log({k}, ({', '.join(args)}{',' if args else ''})))"]

    def _assert(self, ps: list[Json], ctx: str) -> list[str]:
        self._n(ps, 1, ctx)
        cond = self.ec.boolean(ps[0], ctx)
        msg = self.env.ns.const(f"Assert error: {ctx}", "msg")
        return [f"if not {cond}: raise PipelineAbort({msg})"]

    def _binop_field(self, op: str) -> Callable[[list[Json], str], list[str]]:
        def fn(ps: list[Json], ctx: str) -> list[str]:
            self._n(ps, 2, ctx)
            lv = self.ec.lvalue(ps[0], ctx)
            return [lv.store(f"f[{lv.slot}] {op} {self.ec.data(ps[1], ctx)}")]

        return fn

    def _binop3(self, op: str) -> Callable[[list[Json], str], list[str]]:
        def fn(ps: list[Json], ctx: str) -> list[str]:
            self._n(ps, 3, ctx)
            lv: LValue = self.ec.lvalue(ps[0], ctx)
            a = self.ec.data(ps[1], ctx)
            b = self.ec.data(ps[2], ctx)
            if op == "<<":
                return [lv.store(f"_shl({a}, {b})")]
            return [lv.store(f"({a}) {op} ({b})")]

        return fn
