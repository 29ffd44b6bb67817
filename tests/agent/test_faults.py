"""``kill -9`` of ``pyoffload up`` at random moments, fifty times, under live traffic.

The embedded target runs as its own process between a guest and an uplink
namespace; ``pyoffload up`` (a subprocess; state file in the test's directory,
periodic reconciliation every 0.3 s, the VNIC's quotas raised to 20,000 rules)
drives it, and five TCP connections opened at the start keep exchanging
echoes through the stateful firewall the whole time. Each round kills the
agent at a random moment of one of:

- ``idle``: nothing under way (0 to 0.5 s after the round starts);
- ``apply``: a request being applied: a 10,000-rule request when the VNIC holds
  the base rules or 500 bulk rules (up to 10,000 inserts), a 500-rule request
  when it holds 10,000 (9,500 deletes). The bulk rules of the smaller request
  are a prefix of the larger one, so the table never holds both;
- ``withdraw``: the bulk flow being withdrawn (10,000 deletes; when the VNIC
  holds no bulk flow, the 10,000 rules are applied first, unharmed);
- ``reconcile``: a second controller (another role) has just deleted, changed
  and added ACL entries behind the agent's back; the kill lands before, during
  or after the periodic reconciliation that repairs it;
- ``checkpoint``: the agent checkpoints its connections every 50 ms (in every
  round), so kills land in checkpoints too; these rounds kill it at a random
  moment of nothing else. After every kill the checkpoint in the state file must
  read back whole and hold the five connections;
- ``import``: the target is killed and a new one started on the same ports (it
  comes back empty); the agent is killed at a random moment of its reconnecting
  and putting rules, checkpointed connections (an import) and port maps back. The
  connections must still pass once the next agent has finished what it began.

After each kill ``pyoffload up`` is started again and the round checks: the
journal's generation is the last one the guest saw acknowledged, or the one
that was in flight; the guest's ``show`` (its ``Get``) reports that
generation with its rules; the target holds exactly the entities of the
journal's desired state, compiled here independently with the journaled
resource numbers (no orphans, nothing missing, the ACL holding one entry per
rule); the agent is primary; and every connection got more echoes (none lost).

The seed is printed; ``PYOFFLOAD_FAULT_SEED=N`` replays its choices (the
timing of a machine is not replayed).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import attrs
import pytest
from finsy.proto import p4r
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError
from guest_shim.rulefile import parse_file

from guest_shim import offload_pb2 as pb
from pyoffload.agent.checkpoint import decode_rows
from pyoffload.agent.config import load_config
from pyoffload.agent.journal import Journal
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline import names
from pyoffload.rules import Verdict
from tests.agent.service import (
    NETNS,
    VNIC,
    Connections,
    Lab,
    Up,
    acl_entry,
    channel_of,
    describe_difference,
    expected_from_journal,
    open_lab,
    poll,
    read_back,
    rules_document,
    schema,
    start_up,
    summary,
    table_counts,
    vnic_acl,
    write_host_config,
)

pytestmark = [*NETNS]

KILLS = 50
MOMENTS = ("idle", "apply", "withdraw", "reconcile", "checkpoint", "import")
CHECKPOINT_INTERVAL = 0.05
BIG, SMALL = 10_000, 500
RECONCILE_INTERVAL = 0.3


@attrs.define
class Op:
    """A guest request running in a thread: its reply's generation, or its error."""

    kind: str
    thread: threading.Thread | None = None
    generation: int | None = None
    error: str = ""
    seconds: float = 0.0

    def run(self, channel: str, call: str, request: pb.OffloadRequest | None) -> Op:
        def work() -> None:
            began = time.monotonic()
            try:
                with Channel(channel, timeout=120) as guest:
                    if request is not None:
                        self.generation = guest.apply(request).generation
                    else:
                        self.generation = guest.withdraw(["bulk"]).generation
            except GuestShimError as exc:
                self.error = f"{exc.code.name}: {exc}"
            self.seconds = time.monotonic() - began

        self.thread = threading.Thread(target=work, name=f"guest-{call}", daemon=True)
        self.thread.start()
        return self

    def join(self) -> Op:
        assert self.thread is not None
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), f"the guest's {self.kind} did not return"
        return self


@attrs.define
class Host:
    """The test's side of the host: what it knows the guest was told."""

    lab: Lab
    up: Up
    requests: dict[int, pb.OffloadRequest]
    acked: int = 0
    """The last generation the guest got acknowledged (or the check found in force)."""
    bulk: dict[int, int] = attrs.field(factory=dict)
    """Bulk rules of each generation the guest asked for."""
    estimate: dict[str, float] = attrs.field(factory=lambda: {
        "apply-10000": 0.7, "apply-500": 0.4, "withdraw": 0.45})
    """Seconds each kind of request takes (updated when one runs unharmed)."""

    @property
    def current(self) -> int:
        return self.bulk[self.acked]

    def apply(self, bulk: int) -> Op:
        return Op(kind=f"apply-{bulk}").run(channel_of(self.lab.tmp), "apply",
                                            self.requests[bulk])

    def withdraw(self) -> Op:
        return Op(kind="withdraw").run(channel_of(self.lab.tmp), "withdraw", None)

    def settle(self, op: Op, bulk: int) -> None:
        """An op that was not interrupted: it must have succeeded."""
        op.join()
        assert op.generation == self.acked + 1, (op.kind, op.generation, op.error)
        self.acked = op.generation
        self.bulk[self.acked] = bulk
        self.estimate[op.kind] = op.seconds


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[ExitStack, Host]]:
    with ExitStack() as stack:
        lab = open_lab(stack, tmp_path)
        config = write_host_config(tmp_path, lab.target, reconcile_interval=RECONCILE_INTERVAL,
                                   rules_quota=20000, checkpoint_interval=CHECKPOINT_INTERVAL)
        up = start_up(stack, config)
        requests = {}
        for bulk in (0, SMALL, BIG):
            path = tmp_path / f"rules-{bulk}.json"
            path.write_text(json.dumps(rules_document(bulk)))
            requests[bulk] = parse_file(path)
        yield stack, Host(lab=lab, up=up, requests=requests, bulk={0: 0})


def _drift(address: str, rng: random.Random) -> int:
    """Another controller (a role of its own) deletes some of the VNIC's ACL entries,
    changes one and adds orphans; the updates it made."""
    with P4RuntimeClient(address, election_id=1, role="rogue") as rogue:
        mine = vnic_acl(rogue)
        doomed = rng.sample(mine, min(len(mine), rng.randint(1, 50)))
        updates = [p4r.Update(type=UpdateType.DELETE.value, entity=e) for e in doomed[1:]]
        changed = p4r.Entity()
        changed.CopyFrom(doomed[0])
        changed.table_entry.action.action.action_id = \
            schema().actions[names.ACL_ACTIONS[Verdict.REJECT]].id
        updates.append(p4r.Update(type=UpdateType.MODIFY.value, entity=changed))
        updates += [p4r.Update(type=UpdateType.INSERT.value, entity=acl_entry(port))
                    for port in rng.sample(range(60000), 3)]
        rogue.write(updates)
    return len(updates)


def _checkpointed(path: Path) -> int:
    """Connections in the state file's checkpoint, every row decoded (a torn one fails)."""
    with Journal.open(path) as journal:
        rows = journal.read_connections(VNIC)
    assert rows, "no checkpoint"
    return len(decode_rows([(row, read) for _key, row, read in rows], time.time()))


def _primary(up: Up) -> bool:
    return bool(up.status()["target"]["role"] == "primary")


def test_kill_9_at_random_moments_loses_nothing(host: tuple[ExitStack, Host]) -> None:
    stack, h = host
    seed = int(os.environ.get("PYOFFLOAD_FAULT_SEED") or secrets.randbits(32))
    print(f"PYOFFLOAD_FAULT_SEED={seed}")
    rng = random.Random(seed)
    began = time.monotonic()
    h.up.start()
    h.settle(h.apply(0), 0)
    connections = Connections(h.lab, count=5, period=0.05, lifetime=900).start(stack)
    connections.wait_passing(more=5)

    moments = [m for m in MOMENTS for _ in range(KILLS // len(MOMENTS))]
    moments += rng.choices(MOMENTS, k=KILLS - len(moments))
    rng.shuffle(moments)
    restarts: list[float] = []
    outcomes: Counter[str] = Counter()
    mixed = 0
    for number, moment in enumerate(moments, 1):
        before = h.acked
        op: Op | None = None
        asked = 0
        note = ""
        if moment == "idle":
            delay = rng.uniform(0, 0.5)
        elif moment == "checkpoint":
            delay = rng.uniform(0, 4 * CHECKPOINT_INTERVAL)
        elif moment == "import":
            h.lab.restart_target()
            delay = rng.uniform(0, 1.0)
        elif moment == "apply":
            asked = SMALL if h.current == BIG else BIG
            delay = rng.uniform(0, 1.2 * h.estimate[f"apply-{asked}"])
            op = h.apply(asked)
        elif moment == "withdraw":
            if h.current == 0:
                h.settle(h.apply(BIG), BIG)
                before = h.acked
            delay = rng.uniform(0, 1.2 * h.estimate["withdraw"])
            op = h.withdraw()
        else:
            note = f"{_drift(h.lab.target.grpc_address, rng)} updates of drift, "
            delay = rng.uniform(0, 2 * RECONCILE_INTERVAL + 0.3)
        time.sleep(delay)  # the random moment of the fault (not a readiness wait)
        h.up.kill()
        killed_log = h.up.output()
        if moment == "reconcile":
            note += ("repaired before the kill, " if "repaired drift" in killed_log
                     else "not repaired before the kill, ")
        if op is not None:
            op.join()
            outcome = f"acked {op.generation}" if op.generation else "cut off"
            outcomes[f"{op.kind} {'acked' if op.generation else 'cut off'}"] += 1
        else:
            outcome = "nothing in flight"
            outcomes[moment] += 1

        checkpointed = _checkpointed(load_config(h.up.config).state.path)
        assert checkpointed >= 5, f"round {number}: the checkpoint holds {checkpointed}"
        # What the kill left: the journal's desired state against the target as it is.
        view = expected_from_journal(load_config(h.up.config))
        left = read_back(h.lab.target.grpc_address)
        if left != view.entities:
            mixed += 1
            note += f"{len(left ^ view.entities)} entities off at the kill, "
        restarts.append(h.up.start())
        generation = view.generations[VNIC]
        where = f"round {number} ({moment}, seed {seed})"
        if op is None:
            assert generation == before, where
        elif op.generation is not None:
            assert generation == op.generation, f"{where}: acknowledged, then lost"
        else:
            assert generation in (before, before + 1), (where, before, generation)
        if generation == before + 1:
            h.bulk[generation] = 0 if op is not None and op.kind == "withdraw" else asked
        h.acked = generation
        with Channel(channel_of(h.lab.tmp)) as guest:
            shown = guest.get()
        assert shown.generation == generation, where
        rules = sum(len(flow.rules) for flow in shown.flows)
        assert rules == view.rules[VNIC] == 1 + h.current, where
        actual = read_back(h.lab.target.grpc_address)
        assert actual == view.entities, f"{where}: {describe_difference(view.entities, actual)}"
        assert expected_from_journal(load_config(h.up.config)) == view, where
        assert table_counts(actual)["vnic.acl"] == rules, where
        poll(lambda: _primary(h.up), 10, "the agent to be primary")
        tally = connections.wait_passing(more=3)
        assert tally.lost == 0, where
        assert "Traceback" not in killed_log, f"{where}:\n{killed_log}"
        print(f"{number:2d} {moment:9s} kill after {delay:.2f} s ({note}{outcome}): "
              f"generation {before} -> {generation}, {rules} rules, restart "
              f"{restarts[-1]:.2f} s, echoes {min(tally.replies)}")

    assert h.up.terminate() == 0
    output = h.up.output()
    assert "Traceback" not in output, output
    tally = connections.tally()
    assert tally.lost == 0
    print(f"{KILLS} kills in {time.monotonic() - began:.0f} s (seed {seed}): "
          f"{dict(sorted(outcomes.items()))}")
    print(f"rounds where the kill left the target unlike the journal: {mixed}")
    print(f"restart to admin endpoint, s: {summary(restarts)}")
    print(f"connections: {tally.replies} echoes, {tally.lost} lost, longest gap "
          f"{tally.max_gap_ms} ms")
