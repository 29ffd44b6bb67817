"""Primary/backup arbitration, following the spec's rules and notifications."""

from __future__ import annotations

import pytest
from finsy.proto import p4r, rpc_code

from pyoffload.embedded.p4runtime.arbitration import Arbiter, Controller
from pyoffload.embedded.p4runtime.errors import StatusError


class Inbox:
    """Collects what the arbiter sends to one controller."""

    def __init__(self) -> None:
        self.messages: list[p4r.StreamMessageResponse] = []
        self.ctrl = Controller(self.messages.append)

    def codes(self) -> list[int]:
        codes = [m.arbitration.status.code for m in self.messages]
        self.messages.clear()
        return codes


def update(election: int | None, device: int = 1, role: str = "") -> p4r.MasterArbitrationUpdate:
    msg = p4r.MasterArbitrationUpdate(device_id=device)
    if role:
        msg.role.name = role
    if election is not None:
        msg.election_id.high = election >> 64
        msg.election_id.low = election & (2**64 - 1)
    return msg


@pytest.fixture
def arbiter() -> Arbiter:
    return Arbiter(frozenset({1}))


def test_highest_election_id_is_primary_and_everyone_is_told(arbiter: Arbiter) -> None:
    a, b = Inbox(), Inbox()
    arbiter.update(a.ctrl, update(10))
    assert a.codes() == [rpc_code.OK]
    arbiter.update(b.ctrl, update(5))
    assert b.codes() == [rpc_code.ALREADY_EXISTS]
    assert a.codes() == []  # a backup joining concerns only itself
    arbiter.check_primary(1, "", 10)
    with pytest.raises(StatusError) as info:
        arbiter.check_primary(1, "", 5)
    assert info.value.code == rpc_code.PERMISSION_DENIED
    arbiter.update(b.ctrl, update(2**100))
    assert b.codes() == [rpc_code.OK]
    assert a.codes() == [rpc_code.ALREADY_EXISTS]
    assert b.ctrl is arbiter.primaries(1)[0]


def test_primary_leaving_leaves_no_primary(arbiter: Arbiter) -> None:
    a, b = Inbox(), Inbox()
    arbiter.update(a.ctrl, update(10))
    arbiter.update(b.ctrl, update(5))
    a.codes(), b.codes()
    arbiter.remove(a.ctrl)
    msg = b.messages[0].arbitration
    assert msg.status.code == rpc_code.NOT_FOUND
    assert msg.election_id.low == 10  # highest ever seen
    b.codes()
    # 5 < 10: still no primary until someone reaches the highest id seen
    arbiter.update(b.ctrl, update(7))
    assert b.codes() == [rpc_code.NOT_FOUND]
    arbiter.update(b.ctrl, update(10))
    assert b.codes() == [rpc_code.OK]


def test_rejections_terminate_the_stream(arbiter: Arbiter) -> None:
    a, b = Inbox(), Inbox()
    with pytest.raises(StatusError) as info:
        arbiter.update(a.ctrl, update(1, device=9))
    assert info.value.code == rpc_code.NOT_FOUND
    arbiter.update(a.ctrl, update(3))
    with pytest.raises(StatusError) as info:
        arbiter.update(b.ctrl, update(3))
    assert info.value.code == rpc_code.INVALID_ARGUMENT
    with pytest.raises(StatusError) as info:
        arbiter.update(a.ctrl, update(4, role="other"))
    assert info.value.code == rpc_code.FAILED_PRECONDITION


def test_unset_election_id_is_never_primary(arbiter: Arbiter) -> None:
    a = Inbox()
    arbiter.update(a.ctrl, update(None))
    assert a.codes() == [rpc_code.NOT_FOUND]
    with pytest.raises(StatusError):
        arbiter.check_primary(1, "", None)


def test_roles_are_independent(arbiter: Arbiter) -> None:
    a, b = Inbox(), Inbox()
    arbiter.update(a.ctrl, update(1, role="r1"))
    arbiter.update(b.ctrl, update(1, role="r2"))
    assert a.codes() == [rpc_code.OK] and b.codes() == [rpc_code.OK]
    arbiter.check_primary(1, "r1", 1)
    arbiter.check_primary(1, "r2", 1)
    with pytest.raises(StatusError) as info:
        arbiter.check_primary(1, "r3", 1)
    assert info.value.code == rpc_code.NOT_FOUND


def test_downgrade_notifies_everyone(arbiter: Arbiter) -> None:
    a, b = Inbox(), Inbox()
    arbiter.update(a.ctrl, update(10))
    arbiter.update(b.ctrl, update(5))
    a.codes(), b.codes()
    arbiter.update(a.ctrl, update(1))
    assert a.codes() == [rpc_code.NOT_FOUND]
    assert b.codes() == [rpc_code.NOT_FOUND]
