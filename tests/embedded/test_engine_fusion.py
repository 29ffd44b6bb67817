"""Fused control code (runs of conditionals, action calls and keyless tables compiled to
straight-line functions) against the plain node graph: same outputs, digests and logs on
every program we ship and on the VNIC pipeline with the benchmark's entries and corpus;
the guard of fused keyless tables (an installed entry)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyoffload.embedded.engine import Pipeline, ProcessResult

PROGRAMS = Path(__file__).parent / "programs"
ROOT = Path(__file__).parents[2]


def unfused(pipe: Pipeline) -> Pipeline:
    """Make `pipe` walk the plain node graph (the reference for the fused code)."""
    for ctl in (pipe.ingress, pipe.egress):
        ctl.fused_init = ctl.init
    return pipe


def same(a: ProcessResult, b: ProcessResult) -> None:
    assert (a.outputs, a.digests, a.logs) == (b.outputs, b.digests, b.logs)


def clock() -> int:
    return 1_000_000_000


@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.json")))
def test_programs_fused_equals_graph(name: str) -> None:
    text = (PROGRAMS / f"{name}.json").read_text()
    fused = Pipeline.load(text, clock=clock, seed=1)
    plain = unfused(Pipeline.load(text, clock=clock, seed=1))
    rng = random.Random(name)
    frames = [bytes(rng.randrange(256) for _ in range(rng.randrange(14, 120)))
              for _ in range(300)]
    frames += [bytes.fromhex("ffffffffffff0a0b0c0d0e0f0800") + bytes(40),
               bytes.fromhex("ffffffffffff0a0b0c0d0e0f88b5") + bytes(8)]
    for i, fr in enumerate(frames):
        same(fused.process(i % 4, fr), plain.process(i % 4, fr))


def test_vnic_fused_equals_graph() -> None:
    pytest.importorskip("finsy")
    from finsy import P4Schema

    from benchmarks.bench_entries import engine_install, vnic_entities
    from benchmarks.corpus import build_corpus
    from pyoffload.pipeline.artifacts import ArtifactError, Artifacts, load_constants

    try:
        art = Artifacts.packaged()
    except ArtifactError as exc:
        pytest.skip(str(exc))
    schema = P4Schema(art.p4info)
    pipes = [Pipeline.load(art.bmv2_json.read_text(), clock=clock, seed=1) for _ in range(2)]
    unfused(pipes[1])
    for pipe in pipes:
        engine_install(pipe.state, schema, vnic_entities(load_constants(), rules=50))
    corpus = build_corpus()
    for cf in corpus:
        port = 1 if cf.side == "guest" else 2
        same(pipes[0].process(port, cf.frame), pipes[1].process(port, cf.frame))
    # the guard of fused keyless tables: an installed entry sends them to the table's
    # own node (here with the default action, so the results must not change)
    guarded = 0
    for pipe in pipes:
        for name in pipe.ingress._keyless:
            t = pipe.state.table(name)
            d = t.get_default()
            assert d is not None
            t.add([], d[0], list(d[1]))
            guarded += 1
    assert guarded
    for cf in corpus:
        port = 1 if cf.side == "guest" else 2
        same(pipes[0].process(port, cf.frame), pipes[1].process(port, cf.frame))
