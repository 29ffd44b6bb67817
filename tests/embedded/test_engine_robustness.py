"""Load-time refusal of bad or unsupported JSON, and packets that must never crash the engine."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pyoffload.embedded.engine import (
    Exact,
    Pipeline,
    PipelineLoadError,
    UnsupportedConstruct,
)

PROGRAMS = Path(__file__).parent / "programs"
ALL_JSON = sorted(PROGRAMS.glob("*.json"))


def cfg(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROGRAMS / f"{name}.json").read_text())
    return data


def test_not_json() -> None:
    with pytest.raises(PipelineLoadError, match="not valid JSON"):
        Pipeline.load("{nope")


def test_wrong_major_version() -> None:
    c = cfg("tables")
    c["__meta__"]["version"] = [3, 0]
    with pytest.raises(PipelineLoadError, match="version 3"):
        Pipeline.load(c)


def test_unknown_primitive_is_refused_with_location() -> None:
    c = cfg("tables")
    act = next(a for a in c["actions"] if a["primitives"])
    prim = act["primitives"][0]
    prim["op"] = "frobnicate"
    prim["source_info"] = {"filename": "x.p4", "line": 42, "column": 1, "source_fragment": "frob()"}
    with pytest.raises(UnsupportedConstruct, match=r"primitive 'frobnicate'.*x\.p4:42"):
        Pipeline.load(c)


def test_unknown_hash_algorithm_is_refused() -> None:
    c = cfg("externs")
    c["pipelines"][0]["action_profiles"][0]["selector"]["algo"] = "toeplitz"
    with pytest.raises(UnsupportedConstruct, match="toeplitz"):
        Pipeline.load(c)


def test_unknown_expression_operator_is_refused() -> None:
    c = cfg("tables")
    c["pipelines"][0]["conditionals"] = [
        {
            "name": "node_x",
            "id": 99,
            "expression": {
                "type": "expression",
                "value": {"op": "**", "left": None, "right": None},
            },
            "true_next": None,
            "false_next": None,
        }
    ]
    with pytest.raises(UnsupportedConstruct, match=r"operator '\*\*'"):
        Pipeline.load(c)


def test_extern_instances_are_refused() -> None:
    c = cfg("tables")
    c["extern_instances"] = [{"name": "e", "id": 0, "type": "Foo", "attribute_values": []}]
    with pytest.raises(UnsupportedConstruct, match="Foo"):
        Pipeline.load(c)


def test_dangling_references_are_load_errors() -> None:
    c = cfg("tables")
    c["pipelines"][0]["init_table"] = "nowhere"
    with pytest.raises(PipelineLoadError, match="nowhere"):
        Pipeline.load(c)
    c = cfg("tables")
    c["parsers"][0]["parse_states"][0]["parser_ops"][0]["parameters"][0]["value"] = "ghost"
    with pytest.raises(PipelineLoadError, match="ghost"):
        Pipeline.load(c)


def test_truncated_json_documents_never_crash() -> None:
    """Every prefix-truncated/field-dropped variant gives a clean PipelineLoadError or loads."""
    base = cfg("basic")
    for key in list(base):
        c = copy.deepcopy(base)
        c[key] = {"bad": True} if isinstance(c[key], list) else [1, 2]
        with contextlib.suppress(PipelineLoadError):
            Pipeline.load(c)


@pytest.mark.parametrize("path", ALL_JSON, ids=lambda p: p.stem)
def test_random_and_truncated_packets_never_crash(path: Path) -> None:
    try:
        pipe = Pipeline.load(path.read_text())
    except UnsupportedConstruct:
        pytest.skip("program uses an unsupported construct")
    rng = random.Random(path.stem)
    for tname in pipe.state.names()["tables"]:
        t = pipe.state.table(tname)
        exact = t.key_fields and all(mt == "exact" for _, mt, _ in t.key_fields)
        if exact and not t.is_indirect and not t.cfg.has_const_entries:
            action = next((a for a in t.action_names if "drop" not in a.lower()), None)
            if action is not None:
                params = t.cfg.actions[action].params
                key = [Exact(rng.getrandbits(w) if w else 0) for _, _, w in t.key_fields]
                t.add(key, action, [rng.getrandbits(w) for _, w in params])
    samples = [b"", b"\x00", b"\xff" * 3, bytes(13), bytes(14), bytes(range(60)), b"\x08\x00" * 40]
    samples += [rng.randbytes(rng.randrange(0, 200)) for _ in range(60)]
    for pkt in samples:
        for port in (0, 1, 511):
            res = pipe.process(port, pkt)
            for out_port, frame in res.outputs:
                assert isinstance(frame, bytes)
                assert 0 <= out_port < 512


def test_oversized_packet_is_dropped_not_crashing() -> None:
    pipe = Pipeline.load(cfg("tables"))
    res = pipe.process(0, bytes(2 * 1024 * 1024))
    assert res.outputs == []
    assert res.logs
