"""``pyoffload up`` restarted under live traffic: the data path does not notice.

The embedded target runs as its own process between a guest and an uplink
namespace; ``pyoffload up`` (a subprocess, state file in the test's directory)
drives it; the guest applies a stateful firewall through its channel with the
guest shim, and five TCP connections from the guest to an echo server in the
uplink exchange a message every 50 ms. Then the agent is killed (``kill -9``)
or stopped (SIGTERM) and started again with the same configuration: the
connections keep passing while it is down and after, the guest sees the same
generation and rules, the target holds exactly the entities it held before
(read back without arbitration), and adopting it wrote nothing. A state file
that is damaged or not ours stops ``pyoffload up`` with one line naming it and
leaves the target alone.
"""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyoffload.agent.config import load_config
from tests.agent.service import (
    BIN,
    NETNS,
    VNIC,
    Connections,
    Lab,
    Up,
    expected_from_journal,
    guest_shim,
    open_lab,
    poll,
    read_back,
    rules_document,
    start_up,
    table_counts,
    write_host_config,
)

pytestmark = [*NETNS]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[ExitStack, Lab]]:
    with ExitStack() as stack:
        yield stack, open_lab(stack, tmp_path)


def _serving(stack: ExitStack, lab: Lab) -> tuple[Up, Path]:
    """``pyoffload up`` running with the firewall applied by the guest (generation 1)."""
    config = write_host_config(lab.tmp, lab.target, reconcile_interval=0.5)
    up = start_up(stack, config)
    print(f"pyoffload up ready in {up.start():.2f} s")
    rules = lab.tmp / "firewall.yaml"
    rules.write_text(yaml.safe_dump(rules_document()))
    applied = guest_shim(lab, "apply", str(rules))
    assert applied.returncode == 0, applied.stderr
    assert "generation 1 applied" in applied.stdout
    return up, config


def _reconciled_since(up: Up, when: float) -> dict[str, Any] | None:
    status = up.status()
    last = status["target"]["last_reconcile"]
    return status if last is not None and last > when else None


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_restart_keeps_traffic_rules_and_entries(lab: tuple[ExitStack, Lab], how: str) -> None:
    stack, env = lab
    up, config = _serving(stack, env)
    shown = guest_shim(env, "show")
    assert shown.returncode == 0, shown.stderr
    connections = Connections(env, count=5, period=0.05).start(stack)
    print(f"established: {connections.wait_passing(more=5)}")
    before = read_back(env.target.grpc_address)
    print(f"target holds {table_counts(before)}")
    assert before == expected_from_journal(load_config(config)).entities

    if how == "kill -9":
        up.kill()
    else:
        assert up.terminate() == 0
        assert "Traceback" not in up.output(), up.output()
    down = connections.wait_passing(more=20)  # a second of echoes with the agent down
    print(f"while the agent is down: {down}")

    seconds = up.start()
    print(f"restarted ({how}) and ready in {seconds:.2f} s")
    status = up.status()
    assert status["target"]["role"] == "primary"
    # One periodic reconciliation after the adoption: it finds nothing to repair.
    started = status["target"]["last_reconcile"] or 0.0
    status = poll(lambda: _reconciled_since(up, started), 10, "a periodic reconciliation")
    assert status["target"]["drift_repairs"] == 0, status["target"]
    (vnic,) = status["vnics"]
    assert (vnic["name"], vnic["generation"], vnic["drift_repairs"]) == (VNIC, 1, 0)

    again = guest_shim(env, "show")
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout
    assert "generation 1, 2 flow(s)" in again.stdout
    after = read_back(env.target.grpc_address)
    assert after == before, (f"before {table_counts(before)}, after {table_counts(after)}")
    tally = connections.wait_passing(more=10)
    print(f"after the restart: {tally}")
    assert tally.lost == 0

    assert up.terminate() == 0
    output = up.output()
    assert "Traceback" not in output, output
    # The operator's log, with times, says the restarted agent adopted the target.
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO pyoffload\.agent\.session: "
                     r"agent connected to \S+ \(pipeline already there: adopted\)$",
                     output, re.MULTILINE), output
    print(f"echoes per connection over the test: {tally.replies}; longest gap "
          f"{tally.max_gap_ms} ms")


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(16384))


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO invoices (total) VALUES (12.5)")
    db.close()


@pytest.mark.parametrize("damage", [_random_bytes, _foreign_sqlite],
                         ids=["random-bytes", "foreign-sqlite"])
def test_unusable_state_file_is_one_line_and_target_untouched(
        lab: tuple[ExitStack, Lab], damage: Callable[[Path], None]) -> None:
    stack, env = lab
    up, config = _serving(stack, env)
    before = read_back(env.target.grpc_address)
    assert up.terminate() == 0
    state = Path(load_config(config).state.path)
    for leftover in (state, state.with_name(state.name + "-wal"),
                     state.with_name(state.name + "-shm")):
        leftover.unlink(missing_ok=True)
    damage(state)
    content = state.read_bytes()

    result = run_up_to_end(up)
    lines = (result[1] + result[2]).splitlines()
    print(f"exit {result[0]}: {lines}")
    assert result[0] != 0
    assert len(lines) == 1, lines
    assert str(state) in lines[0]
    assert "Traceback" not in lines[0]
    assert state.read_bytes() == content  # left exactly as it was
    assert read_back(env.target.grpc_address) == before


def run_up_to_end(up: Up) -> tuple[int, str, str]:
    """``pyoffload up`` run to its end (it must refuse to start): exit code and output."""
    result = subprocess.run(
        [str(BIN / "pyoffload"), "up", str(up.config), "--admin", up.admin],
        capture_output=True, text=True, timeout=120, cwd=up.config.parent)
    return result.returncode, result.stdout, result.stderr
