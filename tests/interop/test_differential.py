"""Differential test: the embedded target against BMv2, frame by frame.

DESIGN.md makes BMv2 the reference: "the embedded target must agree with it
packet for packet". Both targets get the same pipeline, the same entries
(``entries.py``) and the same corpus (``benchmarks.corpus``), each on veth pairs
of its own, and every input frame must produce the same multiset of
(egress port, bytes) on both, packet-ins to the controller included (their
metadata and payload, as port CPU_PORT). The corpus is sent in order through each VNIC,
so connection tracking and NAT state build up the same way on both targets;
the drop counters must agree at the end, too.
"""

from __future__ import annotations

import os
import queue
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from finsy import P4CounterEntry

from benchmarks.corpus import CorpusFrame, build_corpus
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.targets import bmv2_path
from tests.interop.entries import PEERS, SIDES, differential_entities
from tests.interop.wire import Output, Wire, target_on_veths

pytestmark = pytest.mark.netns


@attrs.frozen(kw_only=True)
class Run:
    """What one target did with the corpus."""

    kind: str
    outputs: dict[str, Counter[Output]]
    """``"vnic N: frame name"`` -> what came out."""
    drops: dict[int, tuple[int, int]]
    """drop reason -> (packets, bytes)"""


def run_corpus(kind: str, corpus: list[CorpusFrame], workdir: Path) -> Run:
    """Start ``kind`` on four fresh veth pairs, configure it, send the corpus."""
    artifacts = Artifacts.packaged()
    const = load_constants()
    outputs: dict[str, Counter[Output]] = {}
    with target_on_veths(kind, PEERS, artifacts.p4info, artifacts.bmv2_json,
                         workdir) as (client, schema, test_ends):
        client.write_entities(UpdateType.INSERT,
                              [e.encode(schema) for e in differential_entities(const)])
        with Wire(test_ends, PEERS) as wire:
            for vnic, (guest, uplink) in SIDES.items():
                for item in corpus:
                    port = guest if item.side == "guest" else uplink
                    out = wire.exchange(port, item.frame)
                    out.update(packet_ins(client, const["CPU_PORT"]))
                    outputs[f"vnic {vnic}: {item.name}"] = out
        drops = {}
        for entity in client.read([P4CounterEntry(names.DROP_COUNTER).encode(schema)]):
            cell = entity.counter_entry
            drops[cell.index.index] = (cell.data.packet_count, cell.data.byte_count)
    return Run(kind=kind, outputs=outputs, drops=drops)


def packet_ins(client: P4RuntimeClient, cpu_port: int, settle: float = 0.05
               ) -> Counter[Output]:
    """The packet-ins the target sent since the last call, as (CPU port, metadata and payload).

    Metadata are compared by value (id=number), not by their byte encoding, which
    P4Runtime lets a server pad."""
    seen: Counter[Output] = Counter()
    while True:
        try:
            message = client.stream_messages.get(timeout=settle)
        except queue.Empty:
            return seen
        if message.WhichOneof("update") != "packet":
            continue
        meta = ",".join(f"{m.metadata_id}={int.from_bytes(m.value, 'big')}"
                        for m in sorted(message.packet.metadata, key=lambda m: m.metadata_id))
        seen[(cpu_port, meta.encode() + b"|" + message.packet.payload)] += 1


def describe(outputs: Counter[Output]) -> str:
    if not outputs:
        return "nothing"
    return "; ".join(f"{n}x port {port}: {frame.hex()}" for (port, frame), n in
                     sorted(outputs.items()))


def differences(a: Run, b: Run) -> list[str]:
    """One line pair per input whose outputs differ, plus drop counter differences."""
    lines = []
    for name, out_a in a.outputs.items():
        out_b = b.outputs.get(name, Counter())
        if out_a != out_b:
            lines.append(f"{name}:\n  {a.kind}: {describe(out_a)}\n  {b.kind}: {describe(out_b)}")
    if a.drops != b.drops:
        lines.append(f"drop counters (reason: packets, bytes):\n  {a.kind}: {a.drops}\n"
                     f"  {b.kind}: {b.drops}")
    return lines


def compare_targets(kinds: tuple[str, str], workdir: Path) -> tuple[list[str], Run]:
    """Run the corpus through both targets at once; the differences and one run."""
    corpus = build_corpus()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda kind: run_corpus(kind, corpus, workdir), kinds))
    return differences(runs[0], runs[1]), runs[0]


@pytest.mark.bmv2
def test_embedded_agrees_with_bmv2(tmp_path: Path) -> None:
    if bmv2_path() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed (not on PATH): nothing to "
                    "compare the embedded target with")
    if os.geteuid() != 0:
        pytest.skip("needs root to create veth pairs")
    diffs, run = compare_targets(("embedded", "bmv2"), tmp_path)
    assert not diffs, (f"{len(diffs)} of {len(run.outputs)} inputs differ between the "
                       "embedded target and BMv2:\n" + "\n".join(diffs))
    # A corpus that forwarded nothing would agree trivially.
    assert sum(1 for out in run.outputs.values() if out) > len(run.outputs) // 4
    punted = [name for name, out in run.outputs.items()
              if any(port == load_constants()["CPU_PORT"] for port, _ in out)]
    assert len(punted) >= 2, f"no packet-in to compare: {punted}"
