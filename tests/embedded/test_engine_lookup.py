"""Table lookup structures against a reference scan: seeded random entries, keys, adds,
modifies, deletes and clears on every mix of match kinds (tuple-space search for
ternary/range/optional/mixed tables, per-prefix dicts for LPM, one dict for exact)."""

from __future__ import annotations

import contextlib
import random

import pytest

from pyoffload.embedded.engine import (
    AlreadyExists,
    Exact,
    KeyValue,
    Lpm,
    Optional_,
    Range,
    TableState,
    Ternary,
    Wildcard,
)
from pyoffload.embedded.engine.actions import Action
from pyoffload.embedded.engine.packet import Pkt
from pyoffload.embedded.engine.tables import Entry, KeyField, TableConfig


def _noop(f: list[int], p: Pkt, a: tuple[int, ...]) -> None:
    return None


ACTIONS = {n: Action(n, i, [], _noop) for i, n in enumerate(("a", "b", "c"))}


def make_table(fields: list[tuple[str, int]]) -> TableState:
    kinds = [mt for mt, _ in fields]
    if set(kinds) <= {"exact"}:
        kind = "exact"
    elif kinds.count("lpm") == 1 and set(kinds) <= {"exact", "lpm"}:
        kind = "lpm"
    else:
        kind = "ternary"
    cfg = TableConfig(
        name="T",
        key_fields=[KeyField(f"f{i}", mt, w) for i, (mt, w) in enumerate(fields)],
        actions=dict(ACTIONS),
        size=1 << 20,
        kind=kind,
    )
    return TableState(cfg, lambda f: tuple(f), lambda: 0)


def matches(kv: KeyValue, k: int, w: int) -> bool:
    if isinstance(kv, Exact | Optional_):
        return k == kv.value
    if isinstance(kv, Wildcard):
        return True
    if isinstance(kv, Ternary):
        return k & kv.mask == kv.value & kv.mask
    if isinstance(kv, Range):
        return kv.low <= k <= kv.high
    assert isinstance(kv, Lpm)
    shift = w - kv.prefix_len
    return k >> shift == kv.value >> shift


def reference(t: TableState, key: list[int]) -> Entry | None:
    """The obvious scan: every matching entry, best by the table's documented order."""
    widths = [w for _, _, w in t.key_fields]
    hits = [
        e
        for e in t.entries()
        if all(matches(kv, k, w) for kv, k, w in zip(e.key, key, widths, strict=True))
    ]
    if not hits:
        return None
    if t.cfg.kind == "lpm":
        pos = t._lpm_pos
        return max(hits, key=lambda e: e.key[pos].prefix_len)  # type: ignore[union-attr]
    # larger priority wins; equal priorities: the older entry (smaller id)
    return min(hits, key=lambda e: (-e.priority, e.id))


def random_kv(rng: random.Random, mt: str, w: int) -> KeyValue:
    full = (1 << w) - 1
    if mt == "exact":
        return Exact(rng.randrange(1 << w))
    if mt == "optional":
        return Wildcard() if rng.random() < 0.4 else Optional_(rng.randrange(1 << w))
    if mt == "lpm":
        plen = rng.choice([0, 1, w // 2, w - 1, w])
        return Lpm(rng.randrange(1 << w), plen)
    if mt == "ternary":
        r = rng.random()
        if r < 0.2:
            return Wildcard()
        # a few masks, so that many entries share a shape, and the odd random one
        mask = rng.choice([full, full, full >> 1 << 1, full ^ 1, 1, rng.randrange(1 << w)])
        return Ternary(rng.randrange(1 << w), mask)
    assert mt == "range"
    r = rng.random()
    if r < 0.25:
        return Wildcard() if rng.random() < 0.5 else Range(0, full)
    if r < 0.6:
        v = rng.randrange(1 << w)
        return Range(v, v)
    lo = rng.randrange(1 << w)
    return Range(lo, rng.randrange(lo, 1 << w))


SCHEMAS = [
    [("ternary", 4)],
    [("range", 5)],
    [("optional", 3)],
    [("exact", 3), ("ternary", 4), ("range", 4), ("optional", 2)],
    [("ternary", 3), ("ternary", 3), ("range", 3), ("range", 3)],
    [("exact", 2), ("lpm", 5), ("ternary", 3)],
    [("lpm", 4), ("lpm", 4)],
    [("range", 8), ("range", 2)],
    [("lpm", 6)],
    [("exact", 2), ("lpm", 5)],
    [("lpm", 4), ("exact", 2), ("exact", 1)],
    [("exact", 3), ("exact", 2)],
]


def random_key(rng: random.Random, t: TableState) -> list[int]:
    """A key that often hits: half the time taken from an installed entry."""
    widths = [w for _, _, w in t.key_fields]
    entries = t.entries()
    if entries and rng.random() < 0.5:
        e = rng.choice(entries)
        key = []
        for kv, w in zip(e.key, widths, strict=True):
            if isinstance(kv, Range):
                key.append(rng.randint(kv.low, kv.high))
            elif isinstance(kv, Exact | Optional_):
                key.append(kv.value)
            elif isinstance(kv, Ternary):
                key.append(kv.value | (rng.randrange(1 << w) & ~kv.mask))
            elif isinstance(kv, Lpm):
                key.append(kv.value | (rng.randrange(1 << (w - kv.prefix_len))))
            else:
                key.append(rng.randrange(1 << w))
        return key
    return [rng.randrange(1 << w) for w in widths]


def check(t: TableState, rng: random.Random, n: int) -> None:
    for _ in range(n):
        key = random_key(rng, t)
        got = t.lookup(key)
        want = reference(t, key)
        assert (got.id if got else None) == (want.id if want else None), (key, got, want)
        if got is not None:
            assert want is not None and got.action is want.action


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: "-".join(f"{m}{w}" for m, w in s))
@pytest.mark.parametrize("seed", range(4))
def test_random_tables_against_reference_scan(schema: list[tuple[str, int]], seed: int) -> None:
    rng = random.Random(f"{seed}-{schema}")
    t = make_table(schema)
    prio_pool = [rng.randrange(1, 1000) for _ in range(6)]  # few priorities: many ties
    for _ in range(300):
        r = rng.random()
        live = t.entries()
        if r < 0.5 or not live:
            key = [random_kv(rng, mt, w) for _, mt, w in t.key_fields]
            with contextlib.suppress(AlreadyExists):
                t.add(key, rng.choice(list(ACTIONS)), [], priority=rng.choice(prio_pool))
        elif r < 0.7:
            t.delete(rng.choice(live).id)
        elif r < 0.85:
            t.modify(rng.choice(live).id, rng.choice(list(ACTIONS)), [])
        elif r < 0.87:
            t.clear()
            assert t.entries() == []
        check(t, rng, 5)
    check(t, rng, 200)
    for e in t.entries():  # delete everything one by one: the structure empties
        t.delete(e.id)
        check(t, rng, 2)
    assert t.lookup([0] * len(schema)) is None
    assert not t._tss.shapes and not t._exact and not t._lpm


def test_const_entries_json_priority_order() -> None:
    """Const entries: earlier JSON entries get higher engine priorities and win."""
    t = make_table([("ternary", 4), ("range", 4)])
    t.add([Ternary(0, 0), Range(0, 15)], "a", [], (1 << 30) - 0, _const=True)
    t.add([Ternary(5, 15), Range(5, 5)], "b", [], (1 << 30) - 1, _const=True)
    t.add([Ternary(5, 15), Range(3, 9)], "c", [], (1 << 30) - 2, _const=True)
    assert all(t.lookup([k, p]).action.name == "a" for k in range(16) for p in range(16))  # type: ignore[union-attr]


def test_equal_priority_older_entry_wins_across_shapes() -> None:
    t = make_table([("ternary", 8), ("range", 8)])
    first = t.add([Ternary(0x10, 0xF0), Wildcard()], "a", [], 5)
    second = t.add([Ternary(0x12, 0xFF), Range(0, 100)], "b", [], 5)
    third = t.add([Wildcard(), Range(0x20, 0x20)], "c", [], 5)
    assert t.lookup([0x12, 50]).id == first  # type: ignore[union-attr]
    t.delete(first)
    assert t.lookup([0x12, 50]).id == second  # type: ignore[union-attr]
    assert t.lookup([0x12, 0x20]).id == second  # type: ignore[union-attr]
    t.delete(second)
    assert t.lookup([0x12, 0x20]).id == third  # type: ignore[union-attr]
    again = t.add([Ternary(0x10, 0xF0), Wildcard()], "a", [], 5)
    assert t.lookup([0x12, 0x20]).id == third  # type: ignore[union-attr]  # older wins
    t.delete(third)
    assert t.lookup([0x12, 0x20]).id == again  # type: ignore[union-attr]


def test_many_rules_one_shape_are_one_probe() -> None:
    """The benchmark's ACL shape: 1,000 single-port rules share one shape."""
    t = make_table([("exact", 8), ("ternary", 8), ("range", 16), ("range", 16)])
    for i in range(1000):
        t.add([Exact(1), Ternary(17, 255), Wildcard(), Range(10000 + i, 10000 + i)], "a", [],
              100 + i)
    allow = t.add([Exact(1), Ternary(17, 255), Wildcard(), Range(5353, 5353)], "b", [], 18)
    assert len(t._tss.shapes) == 1
    assert t.lookup([1, 17, 40000, 5353]).id == allow  # type: ignore[union-attr]
    assert t.lookup([1, 17, 40000, 10999]).action.name == "a"  # type: ignore[union-attr]
    assert t.lookup([1, 6, 40000, 5353]) is None
