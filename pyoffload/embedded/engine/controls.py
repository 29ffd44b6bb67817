"""Compiling a BMv2 pipeline (ingress or egress control) into a graph of node functions.

Each node (table, conditional, action call) is a function `(f, p) -> next node`
or None at the end; `Control.run` follows the graph, stopping when the packet
is marked for exit, as BMv2's Pipeline::apply does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .action_profiles import ActionProfile
from .actions import Action
from .calculations import compile_input
from .errors import PipelineLoadError, UnsupportedConstruct
from .expressions import ctx_of
from .externs import GREEN
from .hashes import make_hash
from .keys import Exact, KeyValue, Lpm, Range, Ternary
from .model import Json, parse_hexstr
from .packet import Pkt
from .primitives import CompileEnv
from .tables import DefaultEntry, KeyField, TableConfig, TableState

NodeFn = Callable[[list[int], Pkt], Any]


class Control:
    """A compiled control: `run(f, p)` applies it to a packet."""

    def __init__(
        self,
        cfg: Json,
        env: CompileEnv,
        actions: dict[int, Action],
        tables: dict[str, TableState],
        profiles: dict[str, ActionProfile],
        clock: Callable[[], int],
        meter_arrays: dict[str, Json],
        counter_bindings: set[str],
        t0: int,
    ) -> None:
        self.name = str(cfg.get("name"))
        self.env = env
        self.actions = actions
        self.clock = clock
        self._t0 = t0
        self._meter_arrays_json = meter_arrays
        self._built: dict[str, NodeFn] = {}
        self._defs: dict[str, tuple[str, Json]] = {}
        for kind in ("tables", "conditionals", "action_calls"):
            for obj in cfg.get(kind, []):
                n = obj.get("name")
                if n in self._defs:
                    raise PipelineLoadError(f"pipeline {self.name}: duplicate node name '{n}'")
                self._defs[n] = (kind, obj)
        for ap in cfg.get("action_profiles", []):
            profiles[ap["name"]] = self._profile(ap)
        self._tables: dict[str, TableState] = {}
        for t in cfg.get("tables", []):
            ts = self._table(t, profiles, meter_arrays, counter_bindings)
            tables[ts.name] = ts
            self._tables[ts.name] = ts
        self._building: set[str] = set()
        self._conds: dict[str, str] = {}
        self._keyless: dict[str, tuple[DefaultEntry, Json]] = {}
        for n in self._defs:
            self._node(n, f"pipeline {self.name}")
        init = cfg.get("init_table")
        self.init: NodeFn | None = self._node(init, f"pipeline {self.name}")
        self.fused_init: NodeFn | None = self._fuse(init)

    def run(self, f: list[int], p: Pkt) -> None:
        n = self.fused_init
        while n is not None and not p.exit:
            n = n(f, p)

    # ---- fusion: straight-line code for runs of conditionals and keyless tables
    def _successors(self, name: str) -> set[Json]:
        kind, obj = self._defs[name]
        if kind == "conditionals":
            return {obj.get("true_next"), obj.get("false_next")}
        if kind == "action_calls":
            return {obj.get("next_node")}
        nt = obj.get("next_tables", {}) or {}
        base = obj.get("base_default_next")
        if "__HIT__" in nt or "__MISS__" in nt:
            return {nt.get("__HIT__"), nt.get("__MISS__"), base}
        return {nt.get(a, base) for a in self._tables[name].cfg.actions} | {base}

    def _fuse(self, init: Json) -> NodeFn | None:
        """Compile the control graph into fused node functions.

        A fused function runs its node and, inline, every successor that only it
        leads to (conditionals, action calls, keyless tables still on the default
        action they had at load time); it ends by calling the fused function of a
        join node (more than one predecessor) or returning the next node for
        `run`'s loop (after a keyed table). Behaviour is the node graph's: the
        `p.exit` flag is checked after every action, a keyless table given an entry
        or a new default action takes its general node.
        """
        ns = self.env.ns
        indeg: dict[str, int] = {}
        for n in self._defs:
            for s in self._successors(n):
                if s is not None:
                    indeg[s] = indeg.get(s, 0) + 1
        if init is not None:
            indeg[init] = indeg.get(init, 0) + 1
        fmap: dict[object, NodeFn | None] = {None: None}
        fm = ns.const(fmap, "fm")
        fname = {n: ns.fresh("F") for n in self._defs}

        def emit(name: Json, depth: int, top: bool, out: list[str], pad: str) -> None:
            if name is None:
                out.append(f"{pad}return None")
                return
            if not top and (indeg.get(name, 0) > 1 or depth > 30):
                out.append(f"{pad}return {fname[name]}(f, p)")
                return
            kind, obj = self._defs[name]
            if kind == "conditionals":
                out.append(f"{pad}if {self._conds[name]}:")
                emit(obj.get("true_next"), depth + 1, False, out, pad + "    ")
                emit(obj.get("false_next"), depth, False, out, pad)
            elif kind == "action_calls":
                act = self._action(obj.get("action_id"), name)
                out.append(f"{pad}{ns.const(act.fn, 'afn')}(f, p, ())")
                out.append(f"{pad}if p.exit:")
                out.append(f"{pad}    return None")
                emit(obj.get("next_node"), depth, False, out, pad)
            elif name in self._keyless:
                d, nxt = self._keyless[name]
                ts = self._tables[name]
                node = ns.const(self._built[name], "node")
                out.append(
                    f"{pad}if {ns.const(ts._exact, 'ents')} or "
                    f"{ns.const(ts, 'ts')}.default is not {ns.const(d, 'dflt')}:"
                )
                out.append(f"{pad}    return {fm}[{node}(f, p)]")
                out.append(f"{pad}{ns.const(d.action.fn, 'afn')}(f, p, {ns.const(d.args, 'args')})")
                out.append(f"{pad}if p.exit:")
                out.append(f"{pad}    return None")
                emit(nxt, depth, False, out, pad)
            else:
                out.append(f"{pad}return {fm}[{ns.const(self._built[name], 'node')}(f, p)]")

        for n in self._defs:
            body: list[str] = []
            emit(n, 0, True, body, "")
            fn = ns.compile_function("fused", "f, p", body, f"pipeline {self.name} node {n}")
            ns.globals[fname[n]] = fn
            fmap[self._built[n]] = fn
        return fmap[self._built[init]] if init is not None else None

    # ---- helpers ----------------------------------------------------------
    def _node(self, name: Json, ctx: str) -> NodeFn | None:
        """The node function for `name`, building it (and its successors) on first use."""
        if name is None:
            return None
        if name in self._built:
            return self._built[name]
        d = self._defs.get(name)
        if d is None:
            raise PipelineLoadError(f"{ctx}: unknown next node '{name}'")
        if name in self._building:
            raise UnsupportedConstruct(f"control-flow cycle through '{name}'", ctx)
        self._building.add(name)
        kind, obj = d
        if kind == "tables":
            fn = self._table_node(obj, self._tables[name])
        elif kind == "conditionals":
            fn = self._conditional(obj)
        else:
            fn = self._action_call(obj)
        self._building.discard(name)
        self._built[name] = fn
        return fn

    def _action(self, aid: Json, ctx: str) -> Action:
        a = self.actions.get(int(aid)) if aid is not None else None
        if a is None:
            raise PipelineLoadError(f"{ctx}: unknown action id {aid!r}")
        return a

    def _profile(self, ap: Json) -> ActionProfile:
        name = str(ap.get("name"))
        ctx = ctx_of(ap, f"action profile {name}")
        sel = ap.get("selector")
        select = None
        if sel is not None:
            algo = str(sel.get("algo"))
            fn = compile_input(
                sel.get("input", []), self.env.lay, self.env.ns, self.env.codecs, ctx
            )
            h = make_hash(algo, ctx)

            def select(f: list[int], p: Pkt, fn: Any = fn, h: Any = h) -> int:
                return int(h(fn(f, p)))

        return ActionProfile(name, int(ap.get("max_size", 0)) or 1 << 20, {}, select)

    def _key_fn(
        self, t: Json, ctx: str
    ) -> tuple[Callable[[list[int]], tuple[int, ...]], list[KeyField]]:
        lay = self.env.lay
        srcs = []
        fields = []
        for k in t.get("key", []):
            mt = k.get("match_type")
            target = k.get("target")
            if mt == "valid":
                h = lay.header(target if isinstance(target, str) else target[0], ctx)
                src, w, signed = f"f[{h.base}]", 1, False
                name = k.get("name") or f"{h.name}.$valid$"
            elif isinstance(target, list) and len(target) == 2:
                h, slot = lay.field_ref(target[0], target[1], ctx)
                w, signed = lay.field_width(h, slot)
                # BMv2 keys on 0 for a field of an invalid header (its bits are stale)
                valid_too = not h.metadata and slot != h.base
                src = f"(f[{slot}] if f[{h.base}] else 0)" if valid_too else f"f[{slot}]"
                name = k.get("name") or f"{target[0]}.{target[1]}"
            else:
                raise UnsupportedConstruct(f"table key target {target!r}", ctx)
            if mt not in ("exact", "lpm", "ternary", "range", "optional", "valid"):
                raise UnsupportedConstruct(f"match kind '{mt}'", ctx)
            mask_j = k.get("mask")
            if mask_j is not None:
                src = f"({src} & {parse_hexstr(mask_j, ctx)})"
            elif signed:
                src = f"({src} & {(1 << w) - 1})"
            srcs.append(src)
            fields.append(KeyField(str(name), str(mt), w))
        body = [f"return ({', '.join(srcs)}{',' if srcs else ''})"]
        return self.env.ns.compile_function("key", "f", body, f"{ctx} key"), fields

    def _table(
        self,
        t: Json,
        profiles: dict[str, ActionProfile],
        meter_arrays: dict[str, Json],
        counter_bindings: set[str],
    ) -> TableState:
        name = str(t.get("name"))
        ctx = ctx_of(t, f"table {name}")
        key_fn, fields = self._key_fn(t, ctx)
        mt = t.get("match_type", "exact")
        kinds = {k.match_type for k in fields}
        if mt == "exact" and kinds - {"exact", "valid"}:
            mt = "ternary"
        if mt == "lpm" and (
            kinds - {"exact", "valid", "lpm"} or sum(k.match_type == "lpm" for k in fields) != 1
        ):
            mt = "ternary"
        if mt in ("range", "ternary", "optional"):
            mt = "ternary"
        if mt not in ("exact", "lpm", "ternary"):
            raise UnsupportedConstruct(f"table match type '{mt}'", ctx)
        actions: dict[str, Action] = {}
        ids = t.get("action_ids")
        anames = t.get("actions", [])
        if ids is None:
            by_name = {a.name: a for a in self.actions.values()}
            for an in anames:
                if an not in by_name:
                    raise PipelineLoadError(f"{ctx}: unknown action '{an}'")
                actions[an] = by_name[an]
        else:
            for aid in ids:
                a = self._action(aid, ctx)
                actions[a.name] = a
        ttype = t.get("type", "simple")
        profile = None
        if ttype in ("indirect", "indirect_ws"):
            pname = t.get("action_profile")
            profile = profiles.get(pname)
            if profile is None:
                raise PipelineLoadError(f"{ctx}: unknown action profile '{pname}'")
            profile.actions.update(actions)
            if ttype == "indirect_ws" and not profile.has_selector:
                raise PipelineLoadError(f"{ctx}: action profile {pname} has no selector")
        elif ttype != "simple":
            raise UnsupportedConstruct(f"table type '{ttype}'", ctx)
        dm = t.get("direct_meters")
        if dm is not None and dm not in meter_arrays:
            raise PipelineLoadError(f"{ctx}: unknown direct meter '{dm}'")
        cfg = TableConfig(
            name=name,
            key_fields=fields,
            actions=actions,
            size=int(t.get("max_size", 1024)),
            kind=mt,
            profile=profile,
            with_counters=bool(t.get("with_counters", False)) or name in counter_bindings,
            direct_meter=dm,
            support_timeout=bool(t.get("support_timeout", False)),
        )
        de = t.get("default_entry")
        if de is not None:
            act = self._action(de.get("action_id"), ctx)
            data = tuple(parse_hexstr(x, ctx) for x in de.get("action_data", []))
            if len(data) != len(act.params):
                raise PipelineLoadError(
                    f"{ctx}: default action {act.name} has wrong argument count"
                )
            cfg.default = cfg.initial_default = DefaultEntry(act, data)
            cfg.default_const = bool(de.get("action_const", False))
        entries = t.get("entries") or []
        cfg.has_const_entries = bool(entries)
        ts = TableState(cfg, key_fn, self.clock)
        for e in entries:
            self._const_entry(ts, e, ctx)
        return ts

    def _const_entry(self, ts: TableState, e: Json, ctx: str) -> None:
        key: list[KeyValue] = []
        for mk, kf in zip(e.get("match_key", []), ts.cfg.key_fields, strict=False):
            mt = mk.get("match_type")
            if mt in ("exact", "valid"):
                v = mk.get("key")
                key.append(Exact(int(v) if isinstance(v, bool) else parse_hexstr(v, ctx)))
            elif mt == "lpm":
                key.append(Lpm(parse_hexstr(mk.get("key"), ctx), int(mk.get("prefix_length", 0))))
            elif mt in ("ternary", "optional"):
                key.append(
                    Ternary(parse_hexstr(mk.get("key"), ctx), parse_hexstr(mk.get("mask"), ctx))
                )
            elif mt == "range":
                key.append(
                    Range(parse_hexstr(mk.get("start"), ctx), parse_hexstr(mk.get("end"), ctx))
                )
            else:
                raise UnsupportedConstruct(f"const entry match type '{mt}'", ctx)
            if mt != kf.match_type and not (mt == "ternary" and kf.match_type == "optional"):
                raise PipelineLoadError(f"{ctx}: const entry match type {mt} != {kf.match_type}")
        ae = e.get("action_entry", {})
        act = self._action(ae.get("action_id"), ctx)
        data = [parse_hexstr(x, ctx) for x in ae.get("action_data", [])]
        # BMv2: a smaller number is a higher priority; the engine's priorities are P4Runtime's
        prio = (1 << 30) - int(e.get("priority", 0))
        try:
            ts.add(key, act.name, data, prio, _const=True)
        except Exception as exc:
            raise PipelineLoadError(f"{ctx}: bad const entry: {exc}") from exc

    def _table_node(self, t: Json, ts: TableState) -> NodeFn:
        ctx = ctx_of(t, f"table {ts.name}")
        nt = t.get("next_tables", {}) or {}
        base_next = t.get("base_default_next")
        if "__HIT__" in nt or "__MISS__" in nt:
            hit_n = self._node(nt.get("__HIT__"), ctx)
            miss_n = self._node(nt.get("__MISS__"), ctx)
            by_action: dict[str, NodeFn | None] | None = None
        else:
            by_action = {a: self._node(nt.get(a, base_next), ctx) for a in ts.cfg.actions}
            hit_n = miss_n = None
        default_next = self._node(base_next, ctx)
        lookup = ts.lookup
        cfg = ts.cfg
        profile = cfg.profile
        counters = cfg.with_counters
        timeout = cfg.support_timeout
        clock = self.clock
        meter_slot = None
        meter_mask = 0
        if cfg.direct_meter is not None:
            ma = self._meter_array_json(cfg.direct_meter)
            rt = ma.get("result_target")
            if rt is not None:
                h, meter_slot = self.env.lay.field_ref(rt[0], rt[1], ctx)
                meter_mask = (1 << self.env.lay.field_width(h, meter_slot)[0]) - 1
            meter_packets = ma.get("type") == "packets"
            meter_t0 = self._t0
        else:
            meter_packets = False
            meter_t0 = 0

        def run(f: list[int], p: Pkt) -> NodeFn | None:
            e = lookup(f)
            if e is None:
                d = ts.default
                if d is None:
                    return default_next
                d.action.fn(f, p, d.args)
                if by_action is None:
                    return miss_n
                return by_action.get(d.action.name, default_next)
            if meter_slot is not None:
                m = e.meter
                color = GREEN
                if m is not None:
                    color = m.execute(
                        (clock() - meter_t0) // 1000, 1 if meter_packets else p.ingress_length
                    )
                f[meter_slot] = color & meter_mask
            if counters:
                e.bytes_ += p.ingress_length
                e.packets += 1
            if timeout:
                e.last_hit_ns = clock()
            act = e.action
            args = e.args
            if profile is not None:
                if e.member is not None:
                    mem = profile.member(e.member)
                else:
                    assert e.group is not None
                    chosen = profile.choose(e.group, f, p)
                    if chosen is None:
                        return default_next
                    mem = chosen
                act, args = mem.action, mem.args
            assert act is not None
            act.fn(f, p, args)
            if by_action is None:
                return hit_n
            return by_action.get(act.name, default_next)

        if cfg.key_fields or profile is not None or counters or timeout or meter_slot is not None:
            return run
        # A keyless table (p4c wraps every action call of a control body in one): its
        # default action runs, unless the control plane gave it an entry (then `run`).
        entries = ts._exact
        if ts.default is not None:
            dname = ts.default.action.name
            if by_action is None:
                nxt = nt.get("__MISS__")
            else:
                nxt = nt.get(dname, base_next) if dname in by_action else base_next
            self._keyless[ts.name] = (ts.default, nxt)
        same_next = by_action is not None and all(
            n is default_next for n in by_action.values()
        )

        def run_keyless(f: list[int], p: Pkt) -> NodeFn | None:
            if entries:
                return run(f, p)
            d = ts.default
            if d is None:
                return default_next
            d.action.fn(f, p, d.args)
            if same_next:
                return default_next
            if by_action is None:
                return miss_n
            return by_action.get(d.action.name, default_next)

        return run_keyless

    def _meter_array_json(self, name: str) -> Json:
        return self._meter_arrays_json[name]

    def _conditional(self, c: Json) -> NodeFn:
        ctx = ctx_of(c, f"conditional {c.get('name')}")
        src = self.env.ec.boolean(c.get("expression"), ctx)
        tn = self._node(c.get("true_next"), ctx)
        fn_ = self._node(c.get("false_next"), ctx)
        tv = self.env.ns.fresh("tv")
        ev = self.env.ns.fresh("ev")
        self.env.ns.globals[tv] = tn
        self.env.ns.globals[ev] = fn_
        self._conds[str(c.get("name"))] = src
        return self.env.ns.compile_function(
            "cond", "f, p", [f"return {tv} if {src} else {ev}"], ctx
        )

    def _action_call(self, a: Json) -> NodeFn:
        ctx = ctx_of(a, f"action call {a.get('name')}")
        act = self._action(a.get("action_id"), ctx)
        nxt = self._node(a.get("next_node"), ctx)

        def run(f: list[int], p: Pkt) -> NodeFn | None:
            act.fn(f, p, ())
            return nxt

        return run
