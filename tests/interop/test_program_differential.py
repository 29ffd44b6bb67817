"""Differential test, part three: whole-header assignment (hdr_assign.p4) and a
P4Info/JSON pair p4c made unequal (nested_switch.p4), on BMv2 and on the embedded
target side by side, frame by frame (issue 13, classes 1 and 3).

Both targets get the same program over P4Runtime (nested_switch's P4Info names a
table its JSON lacks: both must accept it), the same entries, and the frames of
``tests/embedded/program_inputs.py`` on veth pairs (ports 1 and 2, the programs
send sync frames across, ``wire.py``). Each frame's outputs must be equal on both,
and equal to the outputs written there (which tests/embedded checks on the engine
alone wherever BMv2 is absent).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from finsy import P4TableAction, P4TableEntry, P4TableMatch

from pyoffload.p4runtime import UpdateType
from pyoffload.targets import bmv2_path
from tests.embedded.program_inputs import HDR_ASSIGN, NESTED_SWITCH, NESTED_SWITCH_ENTRIES, Case
from tests.interop.wire import Output, Wire, target_on_veths

pytestmark = pytest.mark.netns

PROGRAMS_DIR = Path(__file__).parent.parent / "embedded" / "programs"
PEERS = {1: 2, 2: 1}
CASES = {"hdr_assign": HDR_ASSIGN, "nested_switch": NESTED_SWITCH}
KEY_FIELDS = {"MyIngress.outer": "hdr.req.op", "MyIngress.inner": "hdr.req.arg"}


def entries(program: str) -> list[P4TableEntry]:
    if program != "nested_switch":
        return []  # hdr_assign's entries are const
    return [P4TableEntry(e.table, match=P4TableMatch({KEY_FIELDS[e.table]: e.key}),
                         action=P4TableAction(e.action, **_params(e.action, e.args)))
            for e in NESTED_SWITCH_ENTRIES]


def _params(action: str, args: tuple[int, ...]) -> dict[str, int]:
    names = {"MyIngress.tag": ("v",), "MyIngress.set_port": ("port",), "MyIngress.pass": ()}
    return dict(zip(names[action], args, strict=True))


def run(kind: str, program: str, cases: list[Case], workdir: Path) -> dict[str, Counter[Output]]:
    """Start ``kind`` on two fresh veth pairs, push ``program``, send each case's frame."""
    outputs: dict[str, Counter[Output]] = {}
    with target_on_veths(kind, PEERS, PROGRAMS_DIR / f"{program}.p4info.txtpb",
                         PROGRAMS_DIR / f"{program}.json", workdir) as (client, schema, test_ends):
        client.write_entities(UpdateType.INSERT, [e.encode(schema) for e in entries(program)])
        with Wire(test_ends, PEERS) as wire:
            for case in cases:
                outputs[case.name] = wire.exchange(1, case.frame)
    return outputs


def describe(out: Counter[Output]) -> str:
    return "; ".join(f"{n}x port {p}: {f.hex()}" for (p, f), n in sorted(out.items())) or "nothing"


@pytest.mark.bmv2
@pytest.mark.parametrize("program", sorted(CASES))
def test_embedded_agrees_with_bmv2(program: str, tmp_path: Path) -> None:
    if bmv2_path() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed (not on PATH): nothing to "
                    "compare with; tests/embedded/test_engine_header_assignment.py checks "
                    "the embedded side against the expected outputs")
    if os.geteuid() != 0:
        pytest.skip("needs root to create veth pairs")
    cases = CASES[program]
    with ThreadPoolExecutor(max_workers=2) as pool:
        bmv2, embedded = pool.map(lambda kind: run(kind, program, cases, tmp_path),
                                  ("bmv2", "embedded"))
    diffs = [f"{c.name}:\n  bmv2: {describe(bmv2[c.name])}\n  embedded: "
             f"{describe(embedded[c.name])}" for c in cases if bmv2[c.name] != embedded[c.name]]
    assert not diffs, f"{len(diffs)} of {len(cases)} inputs differ:\n" + "\n".join(diffs)
    wrong = [f"{c.name}: bmv2 gave {describe(bmv2[c.name])}" for c in cases
             if bmv2[c.name] != Counter(c.expected)]
    assert not wrong, "program_inputs.py expects other outputs:\n" + "\n".join(wrong)
