"""The agent keeps the target equal to its journal, whoever else writes to it.

``pyoffload up`` runs as a subprocess against the embedded target (its own
process); a second P4Runtime controller, in a role of its own or in the
agent's role with a higher election id, changes the target behind the agent's
back. Drift is repaired to exactly the journal's desired state (read back
without arbitration, compared with the journal compiled independently) and
counted; while another controller is primary the agent says so and a guest's
apply fails with an error. A batch the target refuses in part (its ACL table
filled by another controller, which the agent cannot count) is undone whole,
with the target's per-update error details and without them: gRPC drops
trailing metadata over 16 KiB, and the target sends one ``p4.Error`` per update
of the batch (~36 bytes each, accepted ones included), so any refused batch of
more than ~450 updates (the agent writes 1,000 at a time) comes without them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from finsy.proto import p4r
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError

from guest_shim import offload_pb2 as pb
from pyoffload.agent.config import load_config
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError, UpdateType
from pyoffload.pipeline import names
from pyoffload.render import render_status
from pyoffload.rules import Verdict, load_data, to_proto
from pyoffload.targets import RunningTarget, start_target
from tests.agent.service import (
    VNIC_ID,
    Up,
    acl_entry,
    channel_of,
    describe_difference,
    expected_from_journal,
    poll,
    read_back,
    rules_document,
    schema,
    start_up,
    table_counts,
    vnic_acl,
    write_host_config,
)

ACL_SIZE = 16384
"""``ACL_SIZE`` of p4src/include/sizes.p4 (checked against the P4Info below)."""


def request(bulk: int) -> pb.OffloadRequest:
    return to_proto(load_data(rules_document(bulk)))


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[ExitStack, Path, RunningTarget]]:
    with ExitStack() as stack:
        target = stack.enter_context(start_target("embedded", {},
                                                  output=tmp_path / "target.log"))
        yield stack, tmp_path, target


def _up(stack: ExitStack, tmp: Path, target: RunningTarget, interval: float) -> Up:
    up = start_up(stack, write_host_config(tmp, target, reconcile_interval=interval,
                                           rules_quota=20000))
    print(f"pyoffload up ready in {up.start():.2f} s")
    return up


def _drift(client: P4RuntimeClient) -> int:
    """Delete five of the VNIC's ACL entries, turn a sixth from allow to deny and insert an
    orphan, in one batch; the updates a repair takes."""
    mine = vnic_acl(client)
    assert len(mine) >= 6, len(mine)
    changed = p4r.Entity()
    changed.CopyFrom(mine[5])
    changed.table_entry.action.action.action_id = \
        schema().actions[names.ACL_ACTIONS[Verdict.DENY]].id
    client.write([
        *(p4r.Update(type=UpdateType.DELETE.value, entity=e) for e in mine[:5]),
        p4r.Update(type=UpdateType.MODIFY.value, entity=changed),
        p4r.Update(type=UpdateType.INSERT.value, entity=acl_entry(4242)),
    ])
    return 7


def _repaired(up: Up, target: RunningTarget, expected: frozenset[bytes]
              ) -> dict[str, Any] | None:
    """The status once the target holds ``expected`` (asked only then: see
    ``test_status_and_stats_answer_while_the_target_drifts``)."""
    return up.status() if read_back(target.grpc_address) == expected else None


def test_drift_by_another_role_is_repaired_exactly(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=0.5)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=20)).generation == 1
    expected = expected_from_journal(load_config(up.config)).entities
    assert read_back(target.grpc_address) == expected
    told: list[str] = []  # what the guest's Watch stream says
    watcher = Channel(channel_of(tmp))
    stack.callback(watcher.close)

    def watch() -> None:
        for event in watcher.watch():
            if "repaired" in event.message:
                told.append(event.message)
                return

    threading.Thread(target=watch, daemon=True).start()
    # Another controller in a role of its own: the agent stays primary of its role.
    with P4RuntimeClient(target.grpc_address, election_id=1, role="rogue") as rogue:
        writes = _drift(rogue)
    assert read_back(target.grpc_address) != expected
    status = poll(lambda: _repaired(up, target, expected), 15, "the drift repaired")
    status = poll(lambda: up.status() if up.status()["target"]["drift_repairs"] >= writes
                  else None, 5, "the repair counted")
    print(f"repaired: {status['target']}")
    assert status["target"]["role"] == "primary"
    assert status["target"]["drift_repairs"] == writes
    (vnic,) = status["vnics"]
    assert vnic["drift_repairs"] == writes - 1  # the orphan was nobody's
    assert vnic["generation"] == 1
    poll(lambda: told or None, 10, "the guest told of the repair")
    assert f"{writes - 1} entries were changed" in told[0]
    assert up.terminate() == 0
    assert "Traceback" not in up.output()


def test_drift_found_when_adopting_is_repaired_counted_and_logged(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    """What the target holds when a killed agent's successor adopts it, beyond the state
    file's record (an apply cut short by the kill; here another controller's writes
    while no agent ran), is put back, counted as drift and said in the log."""
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=3600)  # only adopting repairs anything
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=20)).generation == 1
    expected = expected_from_journal(load_config(up.config)).entities
    up.kill()
    with P4RuntimeClient(target.grpc_address, election_id=1, role="rogue") as rogue:
        writes = _drift(rogue)
        # an entry of this VNIC its state does not hold, as an apply cut short leaves
        rogue.write([p4r.Update(type=UpdateType.INSERT.value,
                                entity=acl_entry(4343, vnic=VNIC_ID))])
        writes += 1
    assert read_back(target.grpc_address) != expected
    up.start()
    assert read_back(target.grpc_address) == expected
    status = up.status()
    assert status["target"]["drift_repairs"] == writes
    (vnic,) = status["vnics"]
    assert (vnic["generation"], vnic["drift_repairs"]) == (1, writes - 1)  # 1 orphan
    said = [line for line in up.output().splitlines() if "does not record" in line]
    assert len(said) == 1 and f"{writes} updates put back what the guests were told" \
        in said[0], up.output()[-2000:]
    print(said[0])
    assert up.terminate() == 0


def test_a_restarted_agent_takes_the_role_back_from_a_controller_that_left(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    """A target remembers the highest election id it has seen: once another controller
    has held the primary role and left, an agent arbitrating with its own id is told
    there is no primary. It takes that id, as a running agent does, instead of
    refusing to start (under a service manager it would have failed forever)."""
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=0.5)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=5)).generation == 1
    with P4RuntimeClient(target.grpc_address, election_id=10) as rogue:
        assert rogue.primary
    assert up.terminate() == 0
    up.start()
    assert up.status()["target"]["role"] == "primary"
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=6)).generation == 2
    assert read_back(target.grpc_address) == \
        expected_from_journal(load_config(up.config)).entities
    with pytest.raises(P4RuntimeError, match="election_id 10 is already used"):
        P4RuntimeClient(target.grpc_address, election_id=10).open()  # the agent's id now
    assert up.terminate() == 0


def test_a_second_agent_on_the_same_target_is_told_why_it_cannot_start(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=3600)
    second = subprocess.run(
        [str(Path(sys.executable).parent / "pyoffload"), "up", str(up.config), "--admin",
         f"unix:{tmp}/second.sock"], capture_output=True, text=True, timeout=60,
        cwd=tmp, check=False)
    assert second.returncode == 2, second.stderr
    assert "another controller with this election id is connected to device 1" \
        in second.stderr and "another pyoffload agent for this target?" in second.stderr, \
        second.stderr
    assert up.status()["target"]["role"] == "primary"  # the first one is undisturbed
    assert up.terminate() == 0


def test_a_state_file_without_the_targets_rules_is_refused_not_obeyed(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    """A mistyped state path gives the agent an empty state file: adopting the target
    would have removed every guest's rules (a trial lost 1,010 entries so). It refuses to
    start, naming them, until the right file is given or the removal is asked for."""
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=3600)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=5)).generation == 1
    expected = expected_from_journal(load_config(up.config)).entities
    assert up.terminate() == 0
    typo = yaml.safe_load(up.config.read_text())
    typo["state"]["path"] = str(tmp / "stat.db")
    mistyped = tmp / "typo.yaml"
    mistyped.write_text(yaml.safe_dump(typo))
    command = [str(Path(sys.executable).parent / "pyoffload"), "up", str(mistyped),
               "--admin", f"unix:{tmp}/typo.sock"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp,
                             check=False)
    assert refused.returncode == 2, refused.stderr
    assert re.search(r"the target at \S+ holds rules the state file \S+stat.db has no record "
                     r"of \(VNIC vm-1: \d+ entries\); starting would remove them\. If they "
                     r"are this host's guests' rules, give the state file that recorded them",
                     refused.stderr), refused.stderr
    assert read_back(target.grpc_address) == expected  # nothing was touched
    up.start()  # the right file: everything as it was
    assert read_back(target.grpc_address) == expected
    assert up.status()["vnics"][0]["generation"] == 1
    assert up.terminate() == 0
    forced = Up(mistyped, f"unix:{tmp}/typo.sock")
    stack.callback(forced.close)
    forced.start(extra=["--remove-unrecorded-rules"])  # asked for: removed
    assert forced.status()["vnics"][0]["generation"] == 0
    assert len(read_back(target.grpc_address)) < len(expected)
    assert forced.terminate() == 0


def _role(up: Up, role: str, error: str = "") -> dict[str, Any] | None:
    status = up.status()
    target = status["target"]
    return status if target["role"] == role and error in target["last_error"] else None


def test_another_primary_is_shown_and_guest_applies_fail(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=0.5)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=20)).generation == 1
        before = read_back(target.grpc_address)
        with P4RuntimeClient(target.grpc_address, election_id=10) as rogue:
            assert rogue.primary
            status = poll(lambda: _role(up, "backup", "another P4Runtime controller is "
                                        "primary for the target at"), 10,
                          'the status to say "backup", and why')
            assert "(election id 10)" in status["target"]["last_error"]
            print(f"while another controller is primary: {status['target']}")
            with pytest.raises(GuestShimError) as refused:
                guest.apply(request(bulk=30))
            print(f"the guest's apply: {refused.value.code.name}: {refused.value}")
            assert refused.value.code != grpc.StatusCode.OK
            assert "primary" in str(refused.value)  # names the reason
            assert guest.get().generation == 1
            assert len(guest.get().flows[0].rules) == 1
            assert read_back(target.grpc_address) == before  # nothing of it stayed
    assert up.terminate() == 0


def test_agent_takes_primary_back_and_repairs_after_another_primary_leaves(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=0.5)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=20)).generation == 1
    expected = expected_from_journal(load_config(up.config)).entities
    with P4RuntimeClient(target.grpc_address, election_id=10) as rogue:
        poll(lambda: _role(up, "backup"), 10, 'the status to say "backup"')
        writes = _drift(rogue)
        assert read_back(target.grpc_address) != expected
    status = poll(lambda: _repaired(up, target, expected), 15,
                  "the drift repaired once the other controller left")
    print(f"after the other controller left: {status['target']}")
    assert status["target"]["role"] == "primary"
    assert status["target"]["drift_repairs"] == writes
    assert up.terminate() == 0
    assert "Traceback" not in up.output()


def test_status_and_stats_answer_while_the_target_drifts(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=3600)  # the drift stays until it is repaired
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=20)).generation == 1
        with P4RuntimeClient(target.grpc_address, election_id=1, role="rogue") as rogue:
            _drift(rogue)
        try:
            status = up.status()
            print(f"status while the target drifts: {status['vnics'][0]['error']!r}")
            assert status["vnics"][0]["generation"] == 1
            assert "missing on the target" in status["vnics"][0]["error"]
            stats = guest.stats()
            print(f"the guest's stats while the target drifts: generation {stats.generation}")
            assert stats.generation == 1
        finally:
            assert up.terminate() == 0


def test_status_answers_while_the_target_is_away(
        host: tuple[ExitStack, Path, RunningTarget]) -> None:
    """The operator reads the status exactly when the target is gone: it says so, and
    still shows every VNIC, never an exception."""
    stack, tmp, target = host
    up = _up(stack, tmp, target, interval=3600)
    with Channel(channel_of(tmp)) as guest:
        assert guest.apply(request(bulk=2)).generation == 1
    target.stop()
    try:
        status = up.status()
        print(f"status with the target away: {status['target']}")
        assert not status["target"]["connected"]
        assert status["occupancy"] is None and status["drops"] is None
        assert status["vnics"][0]["generation"] == 1
        assert "occupancy: unknown (the target is not connected)" in render_status(status)
    finally:
        assert up.terminate() == 0


# -- a batch the target refuses in part ---------------------------------------------------


def _fill_acl(client: P4RuntimeClient, free: int, held: int) -> int:
    """Insert orphan ACL entries until only ``free`` places are left; how many."""
    count = ACL_SIZE - held - free
    entries = [acl_entry(port) for port in range(count)]
    for start in range(0, count, 1000):
        client.write_entities(UpdateType.INSERT, entries[start:start + 1000])
    return count


@pytest.mark.parametrize(("free", "bulk", "details"), [
    # The target sends one p4.Error per update of the batch, OK ones included (~36 bytes
    # each): a batch of more than ~450 updates has no details whatever is refused.
    (150, 160, True),     # 10 refusals in a batch of 162: the details come through
    (500, 1500, False),   # ~500 refusals in the first batch: the details are dropped
    (1500, 2000, False),  # the second batch refused in part after a whole one went in
], ids=["details", "no-details-first-batch", "no-details-second-batch"])
def test_batch_refused_in_part_is_undone_whole(
        host: tuple[ExitStack, Path, RunningTarget], free: int, bulk: int,
        details: bool) -> None:
    stack, tmp, target = host
    assert schema().tables[names.ACL].size == ACL_SIZE
    # No periodic reconciliation during the test: it would delete the fillers (orphans).
    up = _up(stack, tmp, target, interval=3600)
    with Channel(channel_of(tmp), timeout=120) as guest:
        assert guest.apply(request(bulk=0)).generation == 1
        shown = guest.get()
        with P4RuntimeClient(target.grpc_address, election_id=1, role="filler") as filler:
            fillers = _fill_acl(filler, free, held=1)
            before = read_back(target.grpc_address)
            print(f"target before: {table_counts(before)} ({fillers} fillers, {free} free)")
            with pytest.raises(GuestShimError) as refused:
                guest.apply(request(bulk=bulk))
            message = str(refused.value)
            print(f"the guest's apply of {bulk} rules: {refused.value.code.name}: "
                  f"{message[:600]}")
            after = read_back(target.grpc_address)
            assert after == before, describe_difference(before, after)
            assert guest.get() == shown
            assert expected_from_journal(load_config(up.config)).generations == {"vm-1": 1}
            status = up.status()
            print(f"status: {status['target']}")
            assert status["vnics"][0]["generation"] == 1
    found = re.search(r"refused (\d+) of the (\d+) updates", message)
    assert found is not None, message
    assert int(found.group(1)) > 0
    assert "everything this apply wrote was undone" in message
    if details:
        assert "at index" in message and "RESOURCE_EXHAUSTED" in message
    else:
        assert "at index" not in message  # no details: the refusals were found by reading
    assert up.terminate() == 0
    assert "Traceback" not in up.output()


def test_repair_lines_name_owners_as_an_operator_reads_them() -> None:
    from pyoffload.agent.session import _per_owner

    assert _per_owner({"": 1, "web-2#ports": 2, "web-1": 6}) == \
        "no VNIC's: 1, web-1: 6, web-2's port map: 2"
