"""The checkpointer's budget: every new connection is saved at the next checkpoint,
of the others only the ones read longest ago, up to the budget; connections that
ended leave the checkpoint; what is saved decodes to the exported connections."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyoffload.agent.checkpoint import Checkpointer, decode_rows, encode_row
from pyoffload.agent.connections import Learned
from pyoffload.agent.handover import ExportedConnection, SlotState
from pyoffload.agent.journal import Journal
from pyoffload.pipeline.constants import ConnState, CtInfo


def learned(port: int) -> Learned:
    return Learned(vnic_id=1, flow_id=1, protocol=6, lo_addr=1, hi_addr=2, lo_port=port,
                   hi_port=80, slot=port)


def exported(conn: Learned, remaining_us: int,
             state: int = ConnState.TCP_ESTABLISHED) -> ExportedConnection:
    info = CtInfo(state=state).encode()
    return ExportedConnection(
        flow="out", remaining_us=remaining_us, partner=None,
        slot=SlotState(protocol=conn.protocol, lo_addr=conn.lo_addr, hi_addr=conn.hi_addr,
                       lo_port=conn.lo_port, hi_port=conn.hi_port, info=info,
                       xlate=(0, 0, 0, 0)))


def test_new_connections_always_and_a_budget_of_the_settled_ones(tmp_path: Path) -> None:
    known = [learned(port) for port in range(10)]
    ended: set[int] = set()
    reads: list[list[int]] = []
    remaining = {"us": 60_000_000}

    handshaking = {9}

    def export(vnic: str, chosen: Sequence[Learned]) -> list[ExportedConnection]:
        reads.append(sorted(c.lo_port for c in chosen))
        return [exported(c, remaining["us"], ConnState.TCP_SYN_SENT if c.lo_port in handshaking
                         else ConnState.TCP_ESTABLISHED)
                for c in chosen if c.lo_port not in ended]

    with Journal.open(tmp_path / "state.db") as journal:
        checkpointer = Checkpointer(journal, 1.0, lambda: ["web-1"], lambda vnic: known,
                                    export, budget=3)
        assert checkpointer.take() == 10
        assert reads[-1] == list(range(10))  # all new: all read
        assert checkpointer.take() == 10
        assert reads[-1] == [0, 1, 2, 9]  # the three read longest ago; 9 is handshaking
        handshaking.clear()
        assert checkpointer.take() == 10
        assert reads[-1] == [3, 4, 5, 9]  # 9 was still SYN_SENT when last read
        known.append(learned(42))
        ended.add(6)
        assert checkpointer.take() == 10  # 42 in, 6 out
        assert reads[-1] == [6, 7, 8, 42]
        rows = journal.read_connections("web-1")
        reads_on_file = {read for _key, _row, read in rows}
        assert len(reads_on_file) > 1  # each row keeps the time it was read
        ports = sorted(c.slot.lo_port for c in decode_rows(
            [(row, read) for _key, row, read in rows], max(reads_on_file)))
        assert ports == [0, 1, 2, 3, 4, 5, 7, 8, 9, 42]
        assert checkpointer.status("web-1").connections == 10

        # An agent that restarted carries on from the file: nothing new, the budget only.
        again = Checkpointer(journal, 1.0, lambda: ["web-1"], lambda vnic: known, export,
                             budget=3)
        assert again.take() == 10
        assert reads[-1] == [0, 1, 2, 6]  # the three read longest ago, and 6: not on file

        remaining["us"] = 1  # ended before anything is restored: not restored
        assert checkpointer.take(everything=True) == 10
        rows = journal.read_connections("web-1")
        latest = max(read for _key, _row, read in rows)
        assert decode_rows([(row, read) for _key, row, read in rows], latest + 0.5) == []


def test_time_left_counts_from_when_each_row_was_read() -> None:
    conn = exported(learned(1), 10_000_000)
    row = encode_row(conn)
    (left,) = decode_rows([(row, 100.0)], 104.0)
    assert left.remaining_us == 6_000_000
    assert decode_rows([(row, 100.0)], 111.0) == []
