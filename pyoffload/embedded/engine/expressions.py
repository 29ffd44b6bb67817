"""Compiling BMv2 JSON expressions and references into Python source fragments.

Values follow BMv2: integers of unbounded precision inside an expression
(p4c inserts the masks and `two_comp_mod` that give P4 its wrap-around), and
truncation to the destination's width when written to a field. In generated
code `f` is the PHV list, `a` the action's arguments, `p` the packet context
and `d` the packet bytes (parser only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .codegen import Namespace
from .errors import PipelineLoadError, UnsupportedConstruct
from .model import (
    HeaderInst,
    HeaderType,
    Json,
    Layout,
    StackInst,
    UnionStackInst,
    parse_hexstr,
    where,
)

DATA = "data"
BOOL = "bool"
HEADER = "header"
STACK = "stack"
UNION = "union"
UNION_STACK = "union_stack"


@dataclass(slots=True)
class Ex:
    """A compiled expression: Python source and what kind of value it yields."""

    src: str
    kind: str
    htype: HeaderType | None = None  # for HEADER
    header: HeaderInst | None = None  # for a statically known HEADER
    stack: StackInst | None = None  # for STACK
    union: str | None = None  # for a statically known UNION
    ustack: UnionStackInst | None = None  # for UNION_STACK, or a UNION picked from one


@dataclass(slots=True)
class LValue:
    """A writable field: source of its slot index, its width and signedness."""

    slot: str
    width: int
    signed: bool

    def store(self, value_src: str) -> str:
        """A statement writing `value_src` truncated to the field's width."""
        if self.signed:
            return f"f[{self.slot}] = _sgn({value_src}, {self.width})"
        return f"f[{self.slot}] = ({value_src}) & {(1 << self.width) - 1}"


class ExprCompiler:
    """Compiles expressions in the context of one program (layout + externs)."""

    def __init__(
        self,
        layout: Layout,
        ns: Namespace,
        register_lookup: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.lay = layout
        self.ns = ns
        self.register_lookup = register_lookup
        self._stack_consts: dict[str, str] = {}

    # ---- references -------------------------------------------------------
    def field(self, ref: Json, ctx: str) -> LValue:
        if not isinstance(ref, list) or len(ref) != 2:
            raise PipelineLoadError(f"{ctx}: bad field reference {ref!r}")
        h, slot = self.lay.field_ref(ref[0], ref[1], ctx)
        w, s = self.lay.field_width(h, slot)
        return LValue(str(slot), w, s)

    def stack_of(self, name: str, ctx: str) -> StackInst:
        st = self.lay.stacks.get(name)
        if st is None:
            raise PipelineLoadError(f"{ctx}: unknown header stack '{name}'")
        return st

    def stack_bases(self, st: StackInst) -> str:
        """Name of a tuple: element bases, then the scratch base for out-of-range indices."""
        cached = self._stack_consts.get(st.name)
        if cached is None:
            bases = (*(h.base for h in st.elements), st.scratch.base)
            cached = self._stack_consts[st.name] = self.ns.const(bases, "S")
        return cached

    def stack_elem(self, st: StackInst, idx_src: str) -> str:
        n = len(st.elements)
        return f"{self.stack_bases(st)}[min({idx_src}, {n}) if ({idx_src}) >= 0 else {n}]"

    def stack_last(self, st: StackInst) -> str:
        """Base of the last valid element (the scratch element when the stack is empty)."""
        return f"{self.stack_bases(st)}[f[{st.next_slot}] - 1]"

    # ---- expressions ------------------------------------------------------
    def compile(self, node: Json, ctx: str) -> Ex:
        """Compile a type/value object (or a bare expression object)."""
        if isinstance(node, dict) and "op" in node and "type" not in node:
            return self._op(node, ctx)
        if not isinstance(node, dict) or "type" not in node:
            raise PipelineLoadError(f"{ctx}: bad expression {node!r}")
        t = node["type"]
        v: Any = node.get("value")
        if t == "field":
            lv = self.field(v, ctx)
            return Ex(f"f[{lv.slot}]", DATA)
        if t == "hexstr":
            return Ex(str(parse_hexstr(v, ctx)), DATA)
        if t == "bool":
            return Ex("True" if v else "False", BOOL)
        if t in ("local", "runtime_data"):
            return Ex(f"a[{int(v)}]", DATA)
        if t == "header":
            h = self.lay.header(v, ctx)
            return Ex(str(h.base), HEADER, h.htype, h)
        if t == "header_stack":
            st = self.stack_of(v, ctx)
            return Ex(self.stack_bases(st), STACK, st.htype, stack=st)
        if t == "header_union":
            if v not in self.lay.unions:
                raise PipelineLoadError(f"{ctx}: unknown header union '{v}'")
            return Ex(repr(v), UNION, union=v)
        if t == "header_union_stack":
            us = self.lay.union_stacks.get(v)
            if us is None:
                raise PipelineLoadError(f"{ctx}: unknown header union stack '{v}'")
            return Ex(repr(v), UNION_STACK, ustack=us)
        if t == "stack_field":
            st = self.stack_of(v[0], ctx)
            try:
                k = st.htype.field_index(v[1])
            except KeyError:
                raise PipelineLoadError(f"{ctx}: stack {v[0]} has no field {v[1]}") from None
            return Ex(f"f[{self.stack_last(st)} + {1 + k}]", DATA)
        if t == "expression":
            return self.compile(v, ctx)
        if t == "register":
            return self._register(v, ctx)
        if t == "string":
            return Ex(self.ns.const(str(v), "str"), "string")
        if t == "lookahead":
            return Ex(f"_look(d, p.pos, {int(v[0])}, {int(v[1])})", DATA)
        raise UnsupportedConstruct(f"expression operand of type '{t}'", ctx)

    def _register(self, v: Json, ctx: str) -> Ex:
        if self.register_lookup is None:
            raise UnsupportedConstruct("register reference in this context", ctx)
        reg = self.register_lookup(str(v[0]), ctx)
        idx = self.data(v[1], ctx)
        r = self.ns.const(reg, "R")
        return Ex(f"{r}.get({idx})", DATA)

    def data(self, node: Json, ctx: str) -> str:
        """Compile to a source yielding an int (bools converted as BMv2 does for data)."""
        e = self.compile(node, ctx)
        if e.kind == BOOL:
            return f"(1 if {e.src} else 0)"
        if e.kind != DATA:
            raise PipelineLoadError(f"{ctx}: expected a data value, got a {e.kind}")
        return e.src

    def boolean(self, node: Json, ctx: str) -> str:
        e = self.compile(node, ctx)
        if e.kind == BOOL:
            return e.src
        if e.kind == DATA:
            return f"({e.src} != 0)"
        raise PipelineLoadError(f"{ctx}: expected a boolean, got a {e.kind}")

    def header(self, node: Json, ctx: str) -> Ex:
        e = self.compile(node, ctx)
        if e.kind != HEADER:
            raise PipelineLoadError(f"{ctx}: expected a header, got a {e.kind}")
        return e

    def lvalue(self, node: Json, ctx: str) -> LValue:
        """Compile a writable field reference (field, stack field or access_field)."""
        if isinstance(node, dict) and node.get("type") == "field":
            return self.field(node["value"], ctx)
        if isinstance(node, dict) and node.get("type") == "stack_field":
            st = self.stack_of(node["value"][0], ctx)
            k = st.htype.field_index(node["value"][1])
            _, w, s = st.htype.fields[k]
            return LValue(f"{self.stack_last(st)} + {1 + k}", w, s)
        if isinstance(node, dict) and node.get("type") == "expression":
            return self.lvalue(node["value"], ctx)
        if isinstance(node, dict) and node.get("op") == "access_field":
            h = self.header(node["left"], ctx)
            k = int(node["right"])
            assert h.htype is not None
            if not 0 <= k < len(h.htype.fields):
                raise PipelineLoadError(f"{ctx}: field offset {k} out of range")
            _, w, s = h.htype.fields[k]
            return LValue(f"{h.src} + {1 + k}", w, s)
        raise UnsupportedConstruct(f"assignment target {node!r}", ctx)

    # ---- operators --------------------------------------------------------
    def _op(self, node: Json, ctx: str) -> Ex:
        op = node.get("op")
        left = node.get("left")
        right = node.get("right")
        if op in _ARITH:
            return Ex(f"({self.data(left, ctx)} {_ARITH[op]} {self.data(right, ctx)})", DATA)
        if op in ("/", "%"):
            fn = "_div" if op == "/" else "_mod"
            return Ex(f"{fn}({self.data(left, ctx)}, {self.data(right, ctx)})", DATA)
        if op == "<<":
            r = self.compile(right, ctx)
            lsrc = self.data(left, ctx)
            if r.kind == DATA and r.src.lstrip("-").isdigit():
                return Ex(f"({lsrc} << {r.src})", DATA)
            return Ex(f"_shl({lsrc}, {self.data(right, ctx)})", DATA)
        if op == ">>":
            return Ex(f"({self.data(left, ctx)} >> {self.data(right, ctx)})", DATA)
        if op in _CMP:
            return Ex(f"({self.data(left, ctx)} {_CMP[op]} {self.data(right, ctx)})", BOOL)
        if op in ("==b", "!=b"):
            o = "==" if op == "==b" else "!="
            return Ex(f"({self.boolean(left, ctx)} {o} {self.boolean(right, ctx)})", BOOL)
        if op == "and":
            return Ex(f"({self.boolean(left, ctx)} and {self.boolean(right, ctx)})", BOOL)
        if op == "or":
            return Ex(f"({self.boolean(left, ctx)} or {self.boolean(right, ctx)})", BOOL)
        if op == "not":
            return Ex(f"(not {self.boolean(right, ctx)})", BOOL)
        if op == "~":
            return Ex(f"(~{self.data(right, ctx)})", DATA)
        if op == "valid":
            e = self.compile(right, ctx)
            if e.kind == HEADER:
                return Ex(f"(f[{e.src}] == 1)", BOOL)
            if e.kind == UNION:
                return self._union_valid(e, ctx)
            raise PipelineLoadError(f"{ctx}: 'valid' of a {e.kind}")
        if op == "valid_union":
            return self._union_valid(self.compile(right, ctx), ctx)
        if op in ("==h", "!=h"):
            a = self.header(left, ctx)
            b = self.header(right, ctx)
            assert a.htype is not None
            n = len(a.htype.fields)
            same = f"all(f[{a.src} + i] == f[{b.src} + i] for i in range(1, {n + 1}))"
            src = f"(f[{a.src}] == f[{b.src}] and (f[{a.src}] == 0 or {same}))"
            return Ex(src if op == "==h" else f"(not {src})", BOOL)
        if op in ("==u", "!=u"):
            raise UnsupportedConstruct(f"header union comparison '{op}'", ctx)
        if op == "?":
            c = self.boolean(node.get("cond"), ctx)
            lt = self.compile(left, ctx)
            rt = self.compile(right, ctx)
            if lt.kind == BOOL and rt.kind == BOOL:
                return Ex(f"({lt.src} if {c} else {rt.src})", BOOL)
            if lt.kind == HEADER or rt.kind == HEADER:
                return self._header_mux(c, lt, rt, ctx)
            return Ex(f"({self.data(left, ctx)} if {c} else {self.data(right, ctx)})", DATA)
        if op == "two_comp_mod":
            return Ex(f"_tcm({self.data(left, ctx)}, {self.data(right, ctx)})", DATA)
        if op == "usat_cast":
            return Ex(f"_usat({self.data(left, ctx)}, {self.data(right, ctx)})", DATA)
        if op == "sat_cast":
            return Ex(f"_sat({self.data(left, ctx)}, {self.data(right, ctx)})", DATA)
        if op == "d2b":
            return Ex(f"({self.data(right, ctx)} != 0)", BOOL)
        if op == "b2d":
            return Ex(f"(1 if {self.boolean(right, ctx)} else 0)", DATA)
        if op in ("dereference_header_stack", "dereference_stack"):
            st_e = self.compile(left, ctx)
            if st_e.kind != STACK or st_e.stack is None:
                raise PipelineLoadError(f"{ctx}: dereference of a {st_e.kind}")
            idx = self.data(right, ctx)
            return Ex(self.stack_elem(st_e.stack, idx), HEADER, st_e.stack.htype)
        if op == "dereference_union_stack":
            us_e = self.compile(left, ctx)
            if us_e.kind != UNION_STACK or us_e.ustack is None:
                raise PipelineLoadError(f"{ctx}: dereference_union_stack of a {us_e.kind}")
            return Ex(self.data(right, ctx), UNION, ustack=us_e.ustack)
        if op in ("last_stack_index", "size_stack"):
            st_e = self.compile(right, ctx)
            nxt = st_e.ustack.next_slot if st_e.kind == UNION_STACK and st_e.ustack else None
            if nxt is not None:
                return Ex(f"(f[{nxt}] - 1)" if op == "last_stack_index" else f"f[{nxt}]", DATA)
        if op == "last_stack_index":
            st_e = self.compile(right, ctx)
            if st_e.stack is None:
                raise PipelineLoadError(f"{ctx}: last_stack_index of a {st_e.kind}")
            return Ex(f"(f[{st_e.stack.next_slot}] - 1)", DATA)
        if op == "size_stack":
            st_e = self.compile(right, ctx)
            if st_e.stack is None:
                raise PipelineLoadError(f"{ctx}: size_stack of a {st_e.kind}")
            return Ex(f"f[{st_e.stack.next_slot}]", DATA)
        if op == "access_field":
            lv = self.lvalue(node, ctx)
            return Ex(f"f[{lv.slot}]", DATA)
        if op == "access_union_header":
            u = self.compile(left, ctx)
            if u.kind == UNION and u.ustack is not None:
                return self._union_stack_member(u, int(right), ctx)
            if u.kind != UNION or u.union is None:
                raise UnsupportedConstruct("access_union_header on a run-time union", ctx)
            members = self.lay.unions[u.union].members
            k = int(right)
            if not 0 <= k < len(members):
                raise PipelineLoadError(f"{ctx}: union member offset {k} out of range")
            h = members[k][1]
            return Ex(str(h.base), HEADER, h.htype, h)
        raise UnsupportedConstruct(f"expression operator '{op}'", ctx)

    @staticmethod
    def _header_mux(cond: str, lt: Ex, rt: Ex, ctx: str) -> Ex:
        """`cond ? h1 : h2` over headers (p4c's form of a header assignment under a
        condition inside an action): the base of the header picked at run time."""
        if lt.kind != HEADER or rt.kind != HEADER or lt.htype is None or rt.htype is None:
            raise PipelineLoadError(f"{ctx}: '?' between a {lt.kind} and a {rt.kind}")
        if len(lt.htype.fields) != len(rt.htype.fields):
            raise PipelineLoadError(
                f"{ctx}: '?' between header types {lt.htype.name} and {rt.htype.name}"
            )
        return Ex(f"({lt.src} if {cond} else {rt.src})", HEADER, lt.htype)

    def _union_stack_member(self, u: Ex, k: int, ctx: str) -> Ex:
        """Member `k` of the union at run-time index `u.src` of a union stack (an index out
        of range reads a scratch header, as for header stacks)."""
        us = u.ustack
        assert us is not None
        if not 0 <= k < len(us.member_names):
            raise PipelineLoadError(f"{ctx}: union member offset {k} out of range")
        bases = (*(x.members[k][1].base for x in us.unions), us.scratch[k].base)
        n = len(us.unions)
        tup = self.ns.const(bases, "S")
        src = f"{tup}[min({u.src}, {n}) if ({u.src}) >= 0 else {n}]"
        return Ex(src, HEADER, us.scratch[k].htype)

    def _union_valid(self, e: Ex, ctx: str) -> Ex:
        if e.kind == UNION and e.ustack is not None:
            picked = [
                self._union_stack_member(e, k, ctx) for k in range(len(e.ustack.member_names))
            ]
            return Ex("(" + " or ".join(f"f[{m.src}] == 1" for m in picked) + ")", BOOL)
        if e.kind != UNION or e.union is None:
            raise PipelineLoadError(f"{ctx}: valid_union of a {e.kind}")
        members = self.lay.unions[e.union].members
        if not members:
            return Ex("False", BOOL)
        return Ex("(" + " or ".join(f"f[{h.base}] == 1" for _, h in members) + ")", BOOL)


_ARITH = {"+": "+", "-": "-", "*": "*", "&": "&", "|": "|", "^": "^"}
_CMP = {"==": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def ctx_of(obj: Json, fallback: str) -> str:
    """Context string for error messages: source location if known, else `fallback`."""
    w = where(obj)
    return f"{fallback} ({w})" if w else fallback
