"""Compiling a BMv2 parser into one Python function per parse state.

A state function runs its parser ops and returns the next state's function
(or None to accept). Errors (packet too short, verify failures, stack
overflow) raise `ParserErr` with the P4 error code; as in BMv2, parsing then
stops, the headers extracted so far stay valid and the unparsed bytes become
the payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidValue, PipelineLoadError, TableFull, UnsupportedConstruct
from .expressions import ctx_of
from .headers import HeaderCodec
from .model import HeaderInst, Json, parse_hexstr
from .packet import Pkt
from .primitives import CompileEnv, PrimitiveCompiler
from .runtime import ParserErr

StateFn = Callable[[list[int], Pkt], Any]
MAX_STATES_PER_PACKET = 10_000


class ParseValueSet:
    """A parser value set: values (in the transition key's padded layout) the control plane adds."""

    def __init__(self, name: str, bitwidth: int, max_size: int = 0) -> None:
        self.name = name
        self.bitwidth = bitwidth
        """Width of the key in the padded layout (set by the parser from the transition key)."""
        self.max_size = max_size
        """Capacity from the JSON; 0 means unbounded."""
        self.values: set[int] = set()

    def add(self, value: int) -> None:
        """Add a value; InvalidValue if it does not fit the key, TableFull when full."""
        if value < 0 or (self.bitwidth and value >> self.bitwidth):
            raise InvalidValue(
                f"parser value set {self.name}: value {value:#x} does not fit {self.bitwidth} bits"
            )
        if value not in self.values and self.max_size and len(self.values) >= self.max_size:
            raise TableFull(f"parser value set {self.name} is full ({self.max_size})")
        self.values.add(value)

    def remove(self, value: int) -> None:
        self.values.discard(value)

    def clear(self) -> None:
        self.values.clear()

    def matches(self, key: int, mask: int | None) -> bool:
        if mask is None:
            return key in self.values
        return any((v & mask) == (key & mask) for v in self.values)


def _extract_vl(
    codec: HeaderCodec,
    f: list[int],
    b: int,
    d: bytes,
    pos: int,
    nbits: int,
    max_bytes: int,
    e_short: int,
    e_hdr: int,
    e_arg: int,
) -> int:
    """BMv2's varbit extract: bit count a multiple of 8, enough bytes, within max length."""
    if nbits < 0 or nbits % 8:
        raise ParserErr(e_arg)
    need = (codec.ht.fixed_bits + nbits) // 8
    if len(d) - pos < need:
        raise ParserErr(e_short)
    if max_bytes and need > max_bytes:
        raise ParserErr(e_hdr)
    return codec.extract_vl(f, b, d, pos, nbits, e_short)


class Parser:
    """A compiled parser: `run(f, p)` returns the P4 error code (NoError's code on success)."""

    def __init__(
        self, cfg: Json, env: CompileEnv, pc: PrimitiveCompiler, vsets: dict[str, ParseValueSet]
    ) -> None:
        self.env = env
        self.pc = pc
        self.vsets = vsets
        lay = env.lay
        self.name = str(cfg.get("name"))
        self.e_none = lay.error_code("NoError")
        self.e_short = lay.error_code("PacketTooShort")
        self.e_stack = lay.error_code("StackOutOfBounds")
        self.e_hdr = lay.error_code("HeaderTooShort")
        self.e_arg = lay.error_code("ParserInvalidArgument")
        self.e_timeout = lay.error_code("ParserTimeout")
        states = cfg.get("parse_states", [])
        self._slots: list[StateFn | None] = [None] * len(states)
        self._index = {s.get("name"): i for i, s in enumerate(states)}
        self._table = env.ns.const(self._slots, "ST")
        for i, s in enumerate(states):
            self._slots[i] = self._compile_state(s)
        init = cfg.get("init_state")
        if init is not None and init not in self._index:
            raise PipelineLoadError(f"parser {self.name}: unknown init_state '{init}'")
        self.init: StateFn | None = self._slots[self._index[init]] if init is not None else None

    def run(self, f: list[int], p: Pkt) -> int:
        st = self.init
        n = 0
        try:
            while st is not None:
                n += 1
                if n > MAX_STATES_PER_PACKET:
                    return self.e_timeout
                st = st(f, p)
        except ParserErr as e:
            return e.code
        return self.e_none

    # ---- compilation ------------------------------------------------------
    def _next(self, name: Json, ctx: str) -> str:
        if name is None:
            return "None"
        if name not in self._index:
            raise PipelineLoadError(f"{ctx}: unknown next state '{name}'")
        return f"{self._table}[{self._index[name]}]"

    def _compile_state(self, s: Json) -> StateFn:
        sname = s.get("name")
        ctx = f"parser {self.name}, state {sname}"
        body = ["d = p.data", "a = ()"]
        for op in s.get("parser_ops", []):
            body += self._op(op, ctx_of(op, ctx))
        body += self._transition(s, ctx)
        return self.env.ns.compile_function("state", "f, p", body, ctx)

    def _codec(self, h: HeaderInst, ctx: str) -> HeaderCodec:
        codec = self.env.codecs[h.htype.name]
        if codec.nbytes < 0:
            raise PipelineLoadError(f"{ctx}: header {h.name} is not a whole number of bytes")
        return codec

    def _target(
        self, p: Json, ctx: str
    ) -> tuple[str, list[str], list[str], HeaderInst, list[str]]:
        """(base source, lines before, lines after, a header of the type, lines run once
        it is valid) for an extract target."""
        t = p.get("type")
        v = p.get("value")
        lay = self.env.lay
        ns = self.env.ns
        if t == "regular":
            h = lay.header(v, ctx)
            return str(h.base), [], [], h, self._union_fix(h)
        if t == "stack":
            st = lay.stacks.get(v)
            if st is None:
                raise PipelineLoadError(f"{ctx}: unknown header stack '{v}'")
            if not st.elements:
                raise PipelineLoadError(f"{ctx}: header stack {v} is empty")
            bases = ns.const(tuple(h.base for h in st.elements), "S")
            pre = [
                f"_n = f[{st.next_slot}]",
                f"if _n >= {len(st.elements)}: raise ParserErr({self.e_stack})",
            ]
            return f"{bases}[_n]", pre, [f"f[{st.next_slot}] = _n + 1"], st.elements[0], []
        if t == "union_stack":
            # BMv2: the next union's member `v[1]` is extracted (its siblings become
            # invalid), then the stack's next index moves on
            us = lay.union_stacks.get(v[0]) if isinstance(v, list) and len(v) == 2 else None
            if us is None:
                raise PipelineLoadError(f"{ctx}: unknown header union stack {v!r}")
            k = us.member_index(v[1], ctx)
            tuples = [
                ns.const(tuple(u.members[j][1].base for u in us.unions), "S")
                for j in range(len(us.member_names))
            ]
            pre = [
                f"_n = f[{us.next_slot}]",
                f"if _n >= {len(us.unions)}: raise ParserErr({self.e_stack})",
            ]
            fix = [f"f[{tup}[_n]] = 0" for j, tup in enumerate(tuples) if j != k]
            post = [f"f[{us.next_slot}] = _n + 1"]
            return f"{tuples[k]}[_n]", pre, post, us.unions[0].members[k][1], fix
        raise PipelineLoadError(f"{ctx}: bad extract target type '{t}'")

    def _op(self, op: Json, ctx: str) -> list[str]:
        kind = op.get("op")
        ps = op.get("parameters", [])
        ec = self.env.ec
        ns = self.env.ns
        if kind == "extract":
            base, pre, post, h, fix = self._target(ps[0], ctx)
            codec = self._codec(h, ctx)
            x = ns.const(codec.extract, "x")
            return [*pre, f"p.pos += {x}(f, {base}, d, p.pos, {self.e_short})", *fix, *post]
        if kind == "extract_VL":
            base, pre, post, h, fix = self._target(ps[0], ctx)
            codec = self._codec(h, ctx)
            if h.htype.vl_index is None:
                raise PipelineLoadError(f"{ctx}: extract_VL of a header without a varbit field")
            nbits = ec.data(ps[1], ctx)
            c = ns.const(codec, "codec")
            xvl = ns.const(_extract_vl, "xvl")
            mx = h.htype.max_length
            return [
                *pre,
                f"p.pos += {xvl}({c}, f, {base}, d, p.pos, {nbits}, {mx}, "
                f"{self.e_short}, {self.e_hdr}, {self.e_arg})",
                *fix,
                *post,
            ]
        if kind == "set":
            lv = ec.lvalue(ps[0], ctx)
            src = ps[1]
            lines = []
            if isinstance(src, dict) and src.get("type") == "lookahead":
                # BMv2 checks the lookahead's width in bytes, not counting its offset
                w = int(src["value"][1])
                need = (w + 7) // 8
                lines.append(f"if len(d) - p.pos < {need}: raise ParserErr({self.e_short})")
            return [*lines, lv.store(ec.data(src, ctx))]
        if kind == "verify":
            cond = ec.boolean(ps[0], ctx)
            err = ec.data(ps[1], ctx)
            return [f"if not {cond}: raise ParserErr({err})"]
        if kind == "shift":
            n = int(ps[0]) if isinstance(ps[0], int) else parse_hexstr(ps[0].get("value"), ctx)
            return [f"if len(d) - p.pos < {n}: raise ParserErr({self.e_short})", f"p.pos += {n}"]
        if kind == "advance":
            bits = ec.data(ps[0], ctx)
            return [
                f"_bits = {bits}",
                f"if _bits < 0 or _bits % 8: raise ParserErr({self.e_arg})",
                f"if len(d) - p.pos < (_bits >> 3): raise ParserErr({self.e_short})",
                "p.pos += _bits >> 3",
            ]
        if kind == "primitive":
            return self.pc.compile(ps[0], ctx_of(ps[0], ctx)) if ps else []
        raise UnsupportedConstruct(f"parser operation '{kind}'", ctx)

    def _union_fix(self, h: HeaderInst) -> list[str]:
        if h.union is None:
            return []
        members = self.env.lay.unions[h.union].members
        return [f"f[{m.base}] = 0" for _, m in members if m.base != h.base]

    def _key(self, s: Json, ctx: str) -> tuple[str, int]:
        """Source of the transition key as one int (byte-padded concatenation) and its width."""
        ec = self.env.ec
        parts: list[tuple[str, int]] = []
        lay = self.env.lay
        for k in s.get("transition_key", []):
            t = k.get("type")
            v = k.get("value")
            if t == "field":
                h, slot = lay.field_ref(v[0], v[1], ctx)
                w, _ = lay.field_width(h, slot)
                parts.append((f"f[{slot}]", w))
            elif t == "stack_field":
                st = lay.stacks.get(v[0])
                if st is None:
                    raise PipelineLoadError(f"{ctx}: unknown header stack '{v[0]}'")
                i = st.htype.field_index(v[1])
                w = st.htype.fields[i][1]
                parts.append((f"f[{ec.stack_last(st)} + {i + 1}]", w))
            elif t == "lookahead":
                off, w = int(v[0]), int(v[1])
                parts.append((f"_look(d, p.pos, {off}, {w})", w))
            elif t == "union_stack_field":
                parts.append(self._union_stack_field(v, ctx))
            else:
                raise UnsupportedConstruct(f"transition key of type '{t}'", ctx)
        total = sum((w + 7) // 8 * 8 for _, w in parts)
        srcs = []
        shift = total
        for src, w in parts:
            shift -= (w + 7) // 8 * 8
            m = (1 << w) - 1
            srcs.append(f"(({src} & {m}) << {shift})" if shift else f"({src} & {m})")
        return (" | ".join(srcs) if srcs else "0"), total

    def _union_stack_field(self, v: Json, ctx: str) -> tuple[str, int]:
        """Field `v[2]` of member `v[1]` of the last union of stack `v[0]` (p4c does not
        write these keys today; BMv2 reads them, so the engine does)."""
        lay = self.env.lay
        us = lay.union_stacks.get(v[0]) if isinstance(v, list) and len(v) == 3 else None
        if us is None:
            raise PipelineLoadError(f"{ctx}: unknown header union stack field {v!r}")
        k = us.member_index(v[1], ctx)
        ht = us.scratch[k].htype
        try:
            i = ht.field_index(v[2])
        except KeyError:
            raise PipelineLoadError(f"{ctx}: {v[0]}.{v[1]} has no field {v[2]!r}") from None
        bases = (*(u.members[k][1].base for u in us.unions), us.scratch[k].base)
        tup = self.env.ns.const(bases, "S")
        return f"f[{tup}[f[{us.next_slot}] - 1] + {i + 1}]", ht.fields[i][1]

    def _transition(self, s: Json, ctx: str) -> list[str]:
        transitions = s.get("transitions", [])
        if not transitions:
            return ["return None"]
        key_src, key_bits = self._key(s, ctx) if s.get("transition_key") else ("0", 0)
        lines = [f"k = {key_src}"]
        default = "None"
        simple: dict[int, str] = {}
        simple_names: dict[int, Json] = {}
        ordered: list[str] = []
        for t in transitions:
            ttype = t.get("type")
            if ttype is None:  # older JSON: no "type", the value says "default" or is a hexstr
                ttype = "default" if t.get("value") == "default" else "hexstr"
            nxt = self._next(t.get("next_state"), ctx)
            if ttype == "default":
                default = nxt
                break
            mask_j = t.get("mask")
            mask = parse_hexstr(mask_j, ctx) if mask_j is not None else None
            if ttype == "hexstr":
                val = parse_hexstr(t.get("value"), ctx)
                if mask is None and not ordered:
                    simple.setdefault(val, nxt)
                    simple_names.setdefault(val, t.get("next_state"))
                elif mask is None:
                    ordered.append(f"if k == {val}: return {nxt}")
                else:
                    ordered.append(f"if k & {mask} == {val & mask}: return {nxt}")
            elif ttype == "parse_vset":
                vs = self.vsets.get(t.get("value"))
                if vs is None:
                    raise PipelineLoadError(f"{ctx}: unknown parse value set {t.get('value')!r}")
                vs.bitwidth = key_bits  # the padded layout values are given in
                vname = self.env.ns.const(vs, "vs")
                ordered.append(f"if {vname}.matches(k, {mask}): return {nxt}")
            else:
                raise UnsupportedConstruct(f"transition of type '{ttype}'", ctx)
        if len(simple) <= 3:
            for val, nxt in simple.items():
                lines.append(f"if k == {val}: return {nxt}")
        else:
            table = {val: self._index_of(t_nxt) for val, t_nxt in simple_names.items()}
            tname = self.env.ns.const(table, "tr")
            lines.append(f"_n = {tname}.get(k, -2)")
            lines.append(f"if _n != -2: return None if _n < 0 else {self._table}[_n]")
        lines += ordered
        lines.append(f"return {default}")
        return lines

    def _index_of(self, name: Json) -> int:
        return -1 if name is None else self._index[name]
