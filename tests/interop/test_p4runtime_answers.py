"""P4Runtime answers BMv2 gives and the embedded target must give too (issue 13,
classes 3 and 6): a P4Info that names a table p4c left out of the JSON
(nested_switch.p4), and the packet replication engine's limits.

Each case is a request and the status code BMv2's server answers
1.15 / PI: see API.md). The embedded target is checked against these codes
always; BMv2 itself where it is installed, so the table stays BMv2's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from finsy.proto import p4r

from pyoffload.embedded.p4runtime.testing import (
    Client,
    Names,
    action,
    batch_details,
    delete,
    insert,
    load_program,
    modify,
)
from pyoffload.targets import bmv2_path, start_target

PROGRAMS = Path(__file__).parent.parent / "embedded" / "programs"
OK, UNKNOWN, INVALID, NOT_FOUND, EXISTS, UNIMPLEMENTED, OUT_OF_RANGE = 0, 2, 3, 5, 6, 12, 11


@dataclass(frozen=True)
class Ask:
    """One request: a batch of one update (its per-update code counts) or a read."""

    name: str
    code: int
    write: p4r.Update | None = None
    read: p4r.Entity | None = None


def code_of(client: Client, ask: Ask) -> int:
    """The code of the update, or of the Read (the one detail ours carries, else BMv2's
    top-level code: API.md, "Read errors")."""
    try:
        if ask.write is not None:
            client.write(ask.write)
        else:
            assert ask.read is not None
            client.read(ask.read)
    except grpc.RpcError as exc:
        call: grpc.Call = exc  # type: ignore[assignment]
        if call.code() == grpc.StatusCode.UNKNOWN:
            details = batch_details(exc)
            if details:
                return int(details[0].canonical_code)
        return int(call.code().value[0])
    return OK


def mc(gid: int, *replicas: p4r.Replica) -> p4r.Entity:
    entity = p4r.Entity()
    entity.packet_replication_engine_entry.multicast_group_entry.CopyFrom(
        p4r.MulticastGroupEntry(multicast_group_id=gid, replicas=replicas))
    return entity


def cs(sid: int, *replicas: p4r.Replica, cos: int = 0, length: int = 0) -> p4r.Entity:
    entity = p4r.Entity()
    entity.packet_replication_engine_entry.clone_session_entry.CopyFrom(
        p4r.CloneSessionEntry(session_id=sid, replicas=replicas, class_of_service=cos,
                              packet_length_bytes=length))
    return entity


def port(p: int, instance: int = 0) -> p4r.Replica:
    return p4r.Replica(egress_port=p, instance=instance)


def pre_asks() -> list[Ask]:
    """In order: later cases see what earlier ones wrote."""
    backup = p4r.Replica(egress_port=1, backup_replicas=[p4r.BackupReplica(port=b"\x02")])
    return [
        Ask("group 1", OK, insert(mc(1, port(1)))),
        Ask("group 32767", OK, insert(mc(32767, port(1)))),
        Ask("group 32768 (PI: clone sessions' range)", OUT_OF_RANGE, insert(mc(32768, port(1)))),
        Ask("group 65535", OUT_OF_RANGE, insert(mc(65535, port(1)))),
        Ask("group 65536", OUT_OF_RANGE, insert(mc(65536, port(1)))),
        Ask("modify group 40000", OUT_OF_RANGE, modify(mc(40000, port(1)))),
        Ask("delete group 40000", OUT_OF_RANGE, delete(mc(40000))),
        Ask("read group 40000", OUT_OF_RANGE, read=mc(40000)),
        Ask("read a missing group", NOT_FOUND, read=mc(555)),
        Ask("group 0", INVALID, insert(mc(0, port(1)))),
        Ask("repeated replica", INVALID, insert(mc(2, port(1), port(1)))),
        Ask("replica without a port", INVALID, insert(mc(3, p4r.Replica(instance=1)))),
        Ask("instance beyond 16 bits", OK, insert(mc(4, port(1, 70000)))),
        Ask("port beyond 9 bits", OK, insert(mc(5, port(1000)))),
        Ask("backup replicas", OK, insert(mc(6, backup))),
        Ask("empty group", OK, insert(mc(7))),
        Ask("group again", EXISTS, insert(mc(1, port(2)))),
        Ask("modify a missing group", NOT_FOUND, modify(mc(100, port(1)))),
        Ask("session 1", OK, insert(cs(1, port(1)))),
        Ask("session 32767", OK, insert(cs(32767, port(1)))),
        Ask("session 32768", INVALID, insert(cs(32768, port(1)))),
        Ask("modify session 40000", INVALID, modify(cs(40000, port(1)))),
        Ask("delete session 40000", INVALID, delete(cs(40000))),
        Ask("read session 40000", NOT_FOUND, read=cs(40000)),
        Ask("session 0", INVALID, insert(cs(0, port(1)))),
        Ask("class of service", UNIMPLEMENTED, insert(cs(10, port(1), cos=1))),
        Ask("truncation", UNKNOWN, insert(cs(11, port(1), length=100))),
        Ask("truncation of 65536 (PI casts to 16 bits)", OK,
            insert(cs(12, port(1), length=65536))),
        Ask("session replica without a port", INVALID, insert(cs(13, p4r.Replica(instance=1)))),
        Ask("session repeated replica", INVALID, insert(cs(14, port(1), port(1)))),
        Ask("session with two replicas", OK, insert(cs(15, port(1), port(2, 3)))),
        Ask("session backup replicas", OK, insert(cs(16, backup))),
        Ask("modify session class of service", UNIMPLEMENTED, modify(cs(1, port(2), cos=2))),
        Ask("modify session truncation", UNKNOWN, modify(cs(1, port(5), length=100))),
        Ask("session again", EXISTS, insert(cs(1, port(2)))),
        Ask("delete a missing session", NOT_FOUND, delete(cs(100))),
        Ask("read a missing session", NOT_FOUND, read=cs(555)),
        Ask("read all groups", OK, read=mc(0)),
        Ask("read all sessions", OK, read=cs(0)),
    ]


def nested_switch_asks(names: Names) -> list[Ask]:
    def entry(table: str, key: bytes, act: str, *args: int) -> p4r.Entity:
        return p4r.Entity(table_entry=p4r.TableEntry(
            table_id=names.id(table),
            match=[p4r.FieldMatch(field_id=1, exact=p4r.FieldMatch.Exact(value=key))],
            action=p4r.TableAction(action=action(names.id(act), *args))))

    dead = names.id("dead")
    default = p4r.Entity(table_entry=p4r.TableEntry(
        table_id=dead, is_default_action=True,
        action=p4r.TableAction(action=action(names.id("to_cpu")))))
    return [
        Ask("entry of a table in both", OK, insert(entry("outer", b"\x01", "tag", 5))),
        Ask("entry of the table p4c removed", UNKNOWN,
            insert(entry("dead", b"\x00" * 5 + b"\x01", "to_cpu"))),
        Ask("default action of the table p4c removed", UNKNOWN, modify(default)),
        Ask("read the table p4c removed", UNKNOWN,
            read=p4r.Entity(table_entry=p4r.TableEntry(table_id=dead))),
        Ask("read every table", UNKNOWN, read=p4r.Entity(table_entry=p4r.TableEntry())),
        Ask("read a table in both", OK,
            read=p4r.Entity(table_entry=p4r.TableEntry(table_id=names.id("outer")))),
    ]


KINDS = ["embedded", pytest.param("bmv2", marks=pytest.mark.bmv2)]


@pytest.fixture(params=KINDS)
def nested_switch_target(request: pytest.FixtureRequest, tmp_path: Path
                         ) -> Iterator[tuple[Client, Names]]:
    """``kind`` with nested_switch pushed (which must be accepted) and a primary client."""
    kind: str = request.param
    if kind == "bmv2" and bmv2_path() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed (not on PATH): the embedded "
                    "target is checked against the BMv2 answers written here only")
    info, device_config = load_program(PROGRAMS, "nested_switch")
    with start_target(kind, {}, output=tmp_path / f"{kind}.log", cpu_port=64) as target:
        client = Client(target.grpc_address)
        try:
            assert client.arbitrate().status.code == OK
            client.set_pipeline(info, device_config)  # p4c's pair: both accept it
            yield client, Names(info)
        finally:
            client.close()


def check(client: Client, asks: list[Ask]) -> None:
    got = [(ask.name, code_of(client, ask)) for ask in asks]
    wrong = [f"{name}: {code} (BMv2: {ask.code})" for (name, code), ask in zip(got, asks,
                                                                               strict=True)
             if code != ask.code]
    assert not wrong, "answers that are not BMv2's:\n" + "\n".join(wrong)


def test_pre_limits(nested_switch_target: tuple[Client, Names]) -> None:
    check(nested_switch_target[0], pre_asks())


def test_objects_p4c_removed(nested_switch_target: tuple[Client, Names]) -> None:
    client, names = nested_switch_target
    check(client, nested_switch_asks(names))
