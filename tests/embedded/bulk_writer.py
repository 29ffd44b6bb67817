"""A controller in a process of its own that becomes primary and sends one large Write.

``python tests/embedded/bulk_writer.py ADDRESS SPEC.json``: SPEC names the ids
(device, table, fields, action), the kind of batch and its size; prints one
JSON line {"seconds": ..., "code": ...}. Used by test_forwarding_during_writes
so the client's own work (building and serializing 100,000 updates) is not
counted against the target's forwarding.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from finsy.proto import p4r, p4r_grpc


def uint(value: int, width_bytes: int) -> bytes:
    return value.to_bytes(width_bytes, "big").lstrip(b"\x00") or b"\x00"


def updates(spec: dict[str, int | str]) -> list[p4r.Update]:
    out = []
    count = int(spec["count"])
    if spec["kind"] == "acl":
        act = p4r.TableAction(action=p4r.Action(action_id=int(spec["action"])))
        for i in range(count):
            entry = p4r.TableEntry(table_id=int(spec["table"]), priority=10, action=act, match=[
                p4r.FieldMatch(field_id=int(spec["field"]), ternary=p4r.FieldMatch.Ternary(
                    value=uint(0x020000000000 + i, 6), mask=b"\xff" * 6)),
                p4r.FieldMatch(field_id=int(spec["field2"]), range=p4r.FieldMatch.Range(
                    low=uint(0x9000, 2), high=uint(0x90FF, 2)))])
            out.append(p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(table_entry=entry)))
    else:
        for i in range(count):
            act = p4r.TableAction(action=p4r.Action(action_id=int(spec["action"]), params=[
                p4r.Action.Param(param_id=1, value=b"\x03")]))
            entry = p4r.TableEntry(table_id=int(spec["table"]), action=act, match=[
                p4r.FieldMatch(field_id=int(spec["field"]), exact=p4r.FieldMatch.Exact(
                    value=uint(0x0C0000000000 + i, 6)))])
            out.append(p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(table_entry=entry)))
    return out


def main(address: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    device = int(spec["device"])
    election = p4r.Uint128(high=1)
    batch = updates(spec)
    request = p4r.WriteRequest(device_id=device, election_id=election, updates=batch)
    request.atomicity = int(spec["atomicity"])  # type: ignore[assignment]
    payload = request.SerializeToString()
    with grpc.insecure_channel(address, options=[("grpc.max_metadata_size", 64 << 20)]) as ch:
        stub = p4r_grpc.P4RuntimeStub(ch)
        arbitration = p4r.StreamMessageRequest(arbitration=p4r.MasterArbitrationUpdate(
            device_id=device, election_id=election))
        done = threading.Event()

        def requests() -> Iterator[p4r.StreamMessageRequest]:
            yield arbitration
            done.wait()  # keep the stream open: a Write needs the primary's stream

        stream = stub.StreamChannel(requests())
        first = next(iter(stream))
        assert first.arbitration.status.code == 0, first
        write = ch.unary_unary("/p4.v1.P4Runtime/Write", None, None)  # bytes as they are
        start = time.monotonic()
        code = "OK"
        try:
            write(payload, timeout=300)
        except grpc.RpcError as exc:
            code = exc.code().name  # type: ignore[attr-defined,unused-ignore]
        seconds = time.monotonic() - start
        done.set()
        stream.cancel()  # type: ignore[no-untyped-call]
    print(json.dumps({"seconds": seconds, "code": code}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
