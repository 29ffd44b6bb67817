"""Match-action tables: entries, lookup structures and the control-plane view (`TableState`).

Exact tables are one dict; LPM tables one dict per prefix length, probed from
the longest; ternary/range/optional (and mixed) tables a tuple-space search
(`classifier.TupleSpace`): larger priority wins, as in P4Runtime; ties go to
the older entry.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .action_profiles import ActionProfile
from .actions import Action
from .classifier import TupleSpace, make_rank
from .errors import AlreadyExists, InvalidValue, NotFound, TableFull
from .externs import Meter, MeterConfig
from .keys import Exact, KeyValue, Lpm, Optional_, Range, Ternary, Wildcard

EntryId = int
KeyFn = Callable[[list[int]], tuple[int, ...]]


@dataclass(slots=True)
class Entry:
    """One installed entry; `masks`/`values`/`ranges` drive the ternary matcher."""

    id: EntryId
    key: list[KeyValue]
    priority: int
    action: Action | None
    args: tuple[int, ...]
    member: int | None = None
    group: int | None = None
    ttl_ns: int | None = None
    const: bool = False
    seq: int = 0
    bytes_: int = 0
    packets: int = 0
    meter: Meter | None = None
    last_hit_ns: int = 0
    canon: tuple[object, ...] = ()
    masks: tuple[int, ...] = ()
    values: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int, int], ...] = ()
    # tuple-space search (ternary-kind tables): packed priority order, masked key
    # in its shape, general ranges checked after the dict lookup, the shape
    rank: int = 0
    tkey: tuple[int, ...] = ()
    granges: tuple[tuple[int, int, int], ...] = ()
    shape: object = None


@dataclass(slots=True)
class DefaultEntry:
    action: Action
    args: tuple[int, ...]


@dataclass(slots=True)
class KeyField:
    name: str
    match_type: str
    bitwidth: int


@dataclass(slots=True)
class TableConfig:
    """What the JSON says about a table."""

    name: str
    key_fields: list[KeyField]
    actions: dict[str, Action]
    size: int
    kind: str  # exact | lpm | ternary
    profile: ActionProfile | None = None
    with_counters: bool = False
    direct_meter: str | None = None
    support_timeout: bool = False
    default: DefaultEntry | None = None
    default_const: bool = False
    initial_default: DefaultEntry | None = None
    has_const_entries: bool = False
    extra: dict[str, object] = field(default_factory=dict)


class TableState:
    """A table's entries, lookup and control-plane operations."""

    def __init__(self, cfg: TableConfig, key_fn: KeyFn, clock: Callable[[], int]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.key_fn = key_fn
        self._clock = clock
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._entries: dict[EntryId, Entry] = {}
        self._by_canon: dict[tuple[object, ...], Entry] = {}
        self._exact: dict[tuple[int, ...], Entry] = {}
        self._lpm: dict[int, dict[tuple[int, ...], Entry]] = {}
        self._lpm_lens: list[int] = []
        self._lpm_pos = next((i for i, k in enumerate(cfg.key_fields) if k.match_type == "lpm"), -1)
        self._lpm_width = cfg.key_fields[self._lpm_pos].bitwidth if self._lpm_pos >= 0 else 0
        self._fulls = tuple((1 << k.bitwidth) - 1 for k in cfg.key_fields)
        self._tss = TupleSpace(self._fulls)
        self._lpm_probe: list[tuple[int, dict[tuple[int, ...], Entry]]] = []
        self.default = cfg.default
        self.lookup: Callable[[list[int]], Entry | None] = self._make_lookup()
        self._wheres = tuple(f"table {self.name}, field {k.name}" for k in cfg.key_fields)
        """Each key field as error messages name it (built once, not per entry)."""

    def _fits(self, v: int, i: int) -> int:
        """``v`` if it is a value of key field ``i``'s width, else InvalidValue naming it."""
        if isinstance(v, int) and 0 <= v <= self._fulls[i]:
            return v
        w = self.cfg.key_fields[i].bitwidth
        raise InvalidValue(f"{self._wheres[i]}: value {v!r} does not fit {w} bits")

    # ---- schema -----------------------------------------------------------
    @property
    def key_fields(self) -> list[tuple[str, str, int]]:
        return [(k.name, k.match_type, k.bitwidth) for k in self.cfg.key_fields]

    @property
    def action_names(self) -> list[str]:
        return list(self.cfg.actions)

    @property
    def size(self) -> int:
        return self.cfg.size

    @property
    def is_indirect(self) -> bool:
        return self.cfg.profile is not None

    @property
    def has_direct_counter(self) -> bool:
        return self.cfg.with_counters

    @property
    def has_direct_meter(self) -> bool:
        return self.cfg.direct_meter is not None

    # ---- lookup (packet path) ---------------------------------------------
    def _make_lookup(self) -> Callable[[list[int]], Entry | None]:
        """`lookup(f) -> Entry | None`, specialised to the table's kind."""
        key_fn = self.key_fn
        kind = self.cfg.kind
        if kind == "exact":
            get = self._exact.get

            def lookup_exact(f: list[int]) -> Entry | None:
                return get(key_fn(f))

            return lookup_exact
        if kind == "lpm":
            pos = self._lpm_pos
            if len(self.cfg.key_fields) == 1:

                def lookup_lpm1(f: list[int]) -> Entry | None:
                    v = key_fn(f)[0]
                    for mask, d in self._lpm_probe:
                        e = d.get((v & mask,))
                        if e is not None:
                            return e
                    return None

                return lookup_lpm1

            def lookup_lpm(f: list[int]) -> Entry | None:
                k = key_fn(f)
                v = k[pos]
                before, after = k[:pos], k[pos + 1 :]
                for mask, d in self._lpm_probe:
                    e = d.get((*before, v & mask, *after))
                    if e is not None:
                        return e
                return None

            return lookup_lpm
        tss = self._tss.lookup

        def lookup_ternary(f: list[int]) -> Entry | None:
            e: Entry | None = tss(key_fn(f))
            return e

        return lookup_ternary

    # ---- key normalisation --------------------------------------------------
    def _normalise(self, key: Sequence[KeyValue], priority: int) -> Entry:
        """The canonical entry of ``key``: values checked against their widths, bits
        outside masks cleared. Key values already canonical are kept (they are
        immutable), so the common insert builds no new key objects."""
        fields = self.cfg.key_fields
        if len(key) != len(fields):
            raise InvalidValue(
                f"table {self.name}: key has {len(key)} fields, expected {len(fields)}"
            )
        masks: list[int] = []
        values: list[int] = []
        ranges: list[tuple[int, int, int]] = []
        canon: list[object] = []
        norm: list[KeyValue] = []
        fits = self._fits
        for i, (kv, kf) in enumerate(zip(key, fields, strict=True)):
            w = kf.bitwidth
            full = self._fulls[i]
            mt = kf.match_type
            if mt in ("exact", "valid"):
                if not isinstance(kv, Exact):
                    raise InvalidValue(f"{self._wheres[i]}: exact match needs Exact, got {kv!r}")
                m, v = full, fits(kv.value, i)
                norm.append(kv)
            elif mt == "lpm":
                if isinstance(kv, Wildcard):
                    kv = Lpm(0, 0)
                if not isinstance(kv, Lpm):
                    raise InvalidValue(f"{self._wheres[i]}: lpm match needs Lpm, got {kv!r}")
                if not 0 <= kv.prefix_len <= w:
                    raise InvalidValue(f"{self._wheres[i]}: prefix length {kv.prefix_len} "
                                       f"out of [0, {w}]")
                m = ((1 << kv.prefix_len) - 1) << (w - kv.prefix_len)
                v = fits(kv.value, i) & m
                norm.append(kv if v == kv.value else Lpm(v, kv.prefix_len))
            elif mt in ("ternary", "optional"):
                if isinstance(kv, Wildcard):
                    m, v = 0, 0
                elif isinstance(kv, Ternary):
                    m = fits(kv.mask, i)
                    v = fits(kv.value, i) & m
                elif isinstance(kv, Optional_ | Exact):
                    m, v = full, fits(kv.value, i)
                else:
                    raise InvalidValue(f"{self._wheres[i]}: {mt} match cannot take {kv!r}")
                if mt == "ternary":
                    canonical = isinstance(kv, Ternary) and (kv.value, kv.mask) == (v, m)
                    norm.append(kv if canonical else Ternary(v, m))
                else:
                    norm.append(Optional_(v) if m else Wildcard())
            elif mt == "range":
                if isinstance(kv, Wildcard):
                    kv = Range(0, full)
                if not isinstance(kv, Range):
                    raise InvalidValue(f"{self._wheres[i]}: range match needs Range, got {kv!r}")
                lo, hi = fits(kv.low, i), fits(kv.high, i)
                if lo > hi:
                    raise InvalidValue(f"{self._wheres[i]}: range low {lo} > high {hi}")
                ranges.append((i, lo, hi))
                m, v = 0, 0
                norm.append(kv)
            else:
                raise InvalidValue(f"{self._wheres[i]}: unknown match type {mt}")
            masks.append(m)
            values.append(v)
            canon.append((m, v) if mt != "range" else (ranges[-1][1], ranges[-1][2]))
        if self.cfg.kind == "ternary":
            canon.append(priority)
        return Entry(
            id=0,
            key=norm,
            priority=priority,
            action=None,
            args=(),
            canon=tuple(canon),
            masks=tuple(masks),
            values=tuple(values),
            ranges=tuple(ranges),
        )

    def _resolve_action(
        self,
        action: str | None,
        args: list[int] | tuple[int, ...],
        member: int | None,
        group: int | None,
    ) -> tuple[Action | None, tuple[int, ...]]:
        prof = self.cfg.profile
        if prof is not None:
            if (member is None) == (group is None):
                raise InvalidValue(
                    f"table {self.name} is indirect: give exactly one of member or group"
                )
            if member is not None:
                prof.member(member)
            else:
                assert group is not None
                if not prof.has_selector:
                    raise InvalidValue(f"table {self.name}: its action profile has no selector")
                prof.group(group)
            return None, ()
        if member is not None or group is not None:
            raise InvalidValue(f"table {self.name} is not indirect: no member or group")
        if action is None:
            raise InvalidValue(f"table {self.name}: an action is required")
        act = self.cfg.actions.get(action)
        if act is None:
            raise NotFound(f"table {self.name}: action {action} is not an action of this table")
        return act, act.check_args(args, f"table {self.name}")

    # ---- control plane ------------------------------------------------------
    def add(
        self,
        key: Sequence[KeyValue],
        action: str | None = None,
        args: list[int] | tuple[int, ...] = (),
        priority: int = 0,
        *,
        member: int | None = None,
        group: int | None = None,
        ttl_ns: int | None = None,
        _const: bool = False,
    ) -> EntryId:
        if self.cfg.has_const_entries and not _const:
            raise InvalidValue(f"table {self.name} has const entries: it cannot be modified")
        e = self._normalise(key, priority)
        if e.canon in self._by_canon:
            raise AlreadyExists(f"table {self.name}: an entry with this key already exists")
        if len(self._entries) >= self.cfg.size and not _const:
            raise TableFull(f"table {self.name} is full ({self.cfg.size} entries)")
        e.action, e.args = self._resolve_action(action, args, member, group)
        e.member, e.group, e.ttl_ns, e.const = member, group, ttl_ns, _const
        e.id = next(self._ids)
        e.seq = next(self._seq)
        e.last_hit_ns = self._clock() if self.cfg.support_timeout else 0
        self._ref(e, 1)
        self._entries[e.id] = e
        self._by_canon[e.canon] = e
        self._index(e)
        return e.id

    def _ref(self, e: Entry, delta: int) -> None:
        prof = self.cfg.profile
        if prof is None:
            return
        k = ("member", e.member) if e.member is not None else ("group", e.group)
        assert k[1] is not None
        kk = (k[0], k[1])
        prof.refs[kk] = prof.refs.get(kk, 0) + delta

    def _index(self, e: Entry) -> None:
        kind = self.cfg.kind
        if kind == "exact":
            self._exact[e.values] = e
        elif kind == "lpm":
            kv = e.key[self._lpm_pos]
            assert isinstance(kv, Lpm)
            plen = kv.prefix_len
            if plen not in self._lpm:
                self._lpm[plen] = {}
                self._lpm_reorder()
            self._lpm[plen][e.values] = e
        else:
            self._tss_insert(e)

    def _lpm_reorder(self) -> None:
        self._lpm_lens = sorted(self._lpm, reverse=True)
        w = self._lpm_width
        self._lpm_probe = [
            (((1 << plen) - 1) << (w - plen), self._lpm[plen]) for plen in self._lpm_lens
        ]

    def _tss_insert(self, e: Entry) -> None:
        """Index `e` in the tuple space: a single-value range compares as exact, a
        full range as a wildcard, any other range is checked after the dict lookup."""
        masks = list(e.masks)
        values = list(e.values)
        granges = []
        for i, lo, hi in e.ranges:
            if lo == hi:
                masks[i], values[i] = self._fulls[i], lo
            elif lo != 0 or hi != self._fulls[i]:
                granges.append((i, lo, hi))
        e.rank = make_rank(e.priority, e.seq)
        self._tss.insert(e, tuple(masks), tuple(values), tuple(granges))

    def _unindex(self, e: Entry) -> None:
        kind = self.cfg.kind
        if kind == "exact":
            del self._exact[e.values]
        elif kind == "lpm":
            kv = e.key[self._lpm_pos]
            assert isinstance(kv, Lpm)
            d = self._lpm[kv.prefix_len]
            del d[e.values]
            if not d:
                del self._lpm[kv.prefix_len]
                self._lpm_reorder()
        else:
            self._tss.remove(e)

    def entry(self, entry_id: EntryId) -> Entry:
        e = self._entries.get(entry_id)
        if e is None:
            raise NotFound(f"table {self.name}: no entry {entry_id}")
        return e

    def modify(
        self,
        entry_id: EntryId,
        action: str | None = None,
        args: list[int] | tuple[int, ...] = (),
        *,
        member: int | None = None,
        group: int | None = None,
        ttl_ns: int | None = None,
    ) -> None:
        e = self.entry(entry_id)
        if e.const:
            raise InvalidValue(f"table {self.name} has const entries: it cannot be modified")
        act, a = self._resolve_action(action, args, member, group)
        self._ref(e, -1)
        e.action, e.args, e.member, e.group = act, a, member, group
        if ttl_ns is not None:
            e.ttl_ns = ttl_ns
        self._ref(e, 1)

    def delete(self, entry_id: EntryId) -> None:
        e = self.entry(entry_id)
        if e.const:
            raise InvalidValue(f"table {self.name} has const entries: it cannot be modified")
        self._ref(e, -1)
        self._unindex(e)
        del self._entries[entry_id]
        del self._by_canon[e.canon]

    def find(self, key: Sequence[KeyValue], priority: int = 0) -> EntryId | None:
        e = self._normalise(key, priority)
        hit = self._by_canon.get(e.canon)
        return hit.id if hit else None

    def entries(self) -> list[Entry]:
        return sorted(self._entries.values(), key=lambda e: e.id)

    def set_default(self, action: str, args: list[int] | tuple[int, ...] = ()) -> None:
        if self.cfg.default_const:
            raise InvalidValue(f"table {self.name}: the default action is const")
        act = self.cfg.actions.get(action)
        if act is None:
            raise NotFound(f"table {self.name}: action {action} is not an action of this table")
        self.default = DefaultEntry(act, act.check_args(args, f"table {self.name} default"))

    def reset_default(self) -> None:
        self.default = self.cfg.initial_default

    def get_default(self) -> tuple[str, tuple[int, ...]] | None:
        d = self.default
        return (d.action.name, d.args) if d else None

    def direct_counter(self, entry_id: EntryId) -> tuple[int, int]:
        if not self.cfg.with_counters:
            raise InvalidValue(f"table {self.name} has no direct counter")
        e = self.entry(entry_id)
        return e.bytes_, e.packets

    def set_direct_counter(self, entry_id: EntryId, nbytes: int, packets: int) -> None:
        if not self.cfg.with_counters:
            raise InvalidValue(f"table {self.name} has no direct counter")
        if not (0 <= nbytes < 2**64 and 0 <= packets < 2**64):
            raise InvalidValue(f"table {self.name}: counter values must fit 64 bits")
        e = self.entry(entry_id)
        e.bytes_, e.packets = nbytes, packets

    def set_direct_meter(self, entry_id: EntryId, config: MeterConfig | None) -> None:
        if self.cfg.direct_meter is None:
            raise InvalidValue(f"table {self.name} has no direct meter")
        e = self.entry(entry_id)
        e.meter = Meter(config) if config is not None else None

    def get_direct_meter(self, entry_id: EntryId) -> MeterConfig | None:
        if self.cfg.direct_meter is None:
            raise InvalidValue(f"table {self.name} has no direct meter")
        m = self.entry(entry_id).meter
        return m.config if m else None

    def last_hit_ns(self, entry_id: EntryId) -> int:
        return self.entry(entry_id).last_hit_ns

    def clear(self) -> None:
        """Remove all non-const entries and restore the default action."""
        for e in list(self._entries.values()):
            if not e.const:
                self.delete(e.id)
        if not self.cfg.default_const:
            self.reset_default()
