"""The state file as an operator meets it: a full disk refuses applies with a clear
error and installs nothing (the target keeps the generation in force), and the
agent recovers once there is room again; a restarted agent brings back exactly
the generation the journal holds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import grpc
import pytest
from finsy import P4Schema
from finsy.proto import p4r, p4r_grpc

from pyoffload.agent import Agent
from pyoffload.agent.config import parse_config
from pyoffload.agent.errors import AgentError
from pyoffload.agent.journal import Journal
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.rules import OffloadRequest, load_data
from pyoffload.targets import RunningTarget


def acl_rules(count: int) -> OffloadRequest:
    rules = [{"id": f"r{i}", "match": {"dst_ports": 10_000 + i}, "verdict": "allow"}
             for i in range(count)]
    return load_data({"vnic": "web-1", "flows": [
        {"id": "out", "match": {"direction": "from-guest", "protocol": "tcp"},
         "config": {"default_verdict": "deny"}, "rules": rules}]})


def acl_entries(target: RunningTarget) -> int:
    """ACL entries on the target, read without arbitrating (no controller is disturbed)."""
    schema = P4Schema(Artifacts.packaged().p4info)
    with grpc.insecure_channel(target.grpc_address) as channel:
        stub = p4r_grpc.P4RuntimeStub(channel)
        query = p4r.Entity(table_entry=p4r.TableEntry(table_id=schema.tables[names.ACL].id))
        request = p4r.ReadRequest(device_id=target.device_id, entities=[query])
        return sum(len(reply.entities) for reply in stub.Read(request, timeout=10))


@contextmanager
def small_disk(directory: Path, size: str) -> Iterator[None]:
    directory.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                             str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def agent_for(target: RunningTarget, state: Path) -> tuple[Agent, Journal]:
    config = parse_config({
        "target": {"kind": "remote", "address": target.grpc_address},
        "vnics": [{"name": "web-1", "id": 1, "guest_port": 1, "uplink_port": 2,
                   "quotas": {"rules": 5000}}],
        "state": {"path": str(state), "reconcile_interval": 60},
    })
    journal = Journal.open(state)
    return Agent(config, target.grpc_address, device_id=target.device_id,
                 journal=journal).start(), journal


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small disk")
def test_a_full_disk_refuses_applies_and_installs_nothing(target: RunningTarget,
                                                          tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk, "2m"):
        agent, journal = agent_for(target, disk / "state.db")
        try:
            agent.apply("web-1", acl_rules(10))
            assert acl_entries(target) == 10
            filler = disk / "filler"
            with filler.open("wb") as out:  # take every free byte
                try:
                    while True:
                        out.write(b"\0" * 65536)
                        out.flush()
                except OSError:
                    pass
            with pytest.raises(AgentError) as info:
                agent.apply("web-1", acl_rules(2000))
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert "full" in info.value.message and "nothing was installed" in info.value.message
            assert str(disk / "state.db") in info.value.message
            assert agent.state("web-1").generation == 1
            assert acl_entries(target) == 10  # the refused generation was taken back

            filler.unlink()
            outcome = agent.apply("web-1", acl_rules(20))
            assert outcome.generation == 2
            assert acl_entries(target) == 20
        finally:
            agent.stop()
            journal.close()


def test_a_restarted_agent_brings_back_the_journaled_generation(target: RunningTarget,
                                                                tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    agent, journal = agent_for(target, state)
    try:
        agent.apply("web-1", acl_rules(30))
        agent.apply("web-1", acl_rules(40))
    finally:
        agent.stop()
        journal.close()
    again, journal = agent_for(target, state)
    try:
        assert again.state("web-1").generation == 2
        assert len(again.state("web-1").request.flows[0].rules) == 40
        assert acl_entries(target) == 40
        assert again.reconcile() == 0  # adopted as it was: nothing to repair
        assert again.apply("web-1", acl_rules(5)).generation == 3
        assert acl_entries(target) == 5
    finally:
        again.stop()
        journal.close()


def test_generations_are_bounded_and_any_commit_failure_takes_the_apply_back(
        target: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest's generation of 2**63 made the state file's commit raise OverflowError
    after the target was written: the target kept rules that were never recorded, and
    a VNIC at 2**63 - 1 could never apply again. A generation is now at most 2**32 past
    the installed one (and at most 2**53 - 1), and a commit that fails in any way takes
    the apply back."""
    state = tmp_path / "state.db"
    agent, journal = agent_for(target, state)
    try:
        agent.apply("web-1", acl_rules(10))
        for asked in (2**63, 2**64 - 1, 1 + 2**32 + 1):
            with pytest.raises(AgentError) as info:
                agent.apply("web-1", attrs.evolve(acl_rules(20), generation=asked))
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert f"generation {asked} is more than 4,294,967,296 past the installed one " \
                "(1); send 0 for the next" in info.value.message
        assert agent.apply("web-1", attrs.evolve(acl_rules(20), generation=1 + 2**32)
                           ).generation == 1 + 2**32
        assert acl_entries(target) == 20

        def broken(*_args: object) -> None:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")

        monkeypatch.setattr(journal, "commit", broken)
        with pytest.raises(AgentError) as info:
            agent.apply("web-1", acl_rules(30))
        assert info.value.code == grpc.StatusCode.INTERNAL
        assert "committing generation 4294967298 to the state file failed (OverflowError(" \
            in info.value.message and "nothing was installed" in info.value.message
        assert acl_entries(target) == 20  # taken back
        assert agent.state("web-1").generation == 1 + 2**32
        monkeypatch.undo()
    finally:
        agent.stop()
        journal.close()
    agent, journal = agent_for(target, state)  # what the state file holds is in force
    try:
        assert agent.state("web-1").generation == 1 + 2**32
        assert acl_entries(target) == 20
    finally:
        agent.stop()
        journal.close()
