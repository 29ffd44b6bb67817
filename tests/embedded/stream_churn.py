"""Idle StreamChannels from a process of their own, opened then closed on demand.

``python tests/embedded/stream_churn.py ADDRESS COUNT [FIRST_ELECTION [one-by-one]]``:
opens COUNT streams over connections of 100 streams each (all at once, or each once
the one before was answered); every one arbitrates (with
election ids from FIRST_ELECTION, 1,000 unless given, up: below the primary's
they are backups, above it each takes the primary role from the one before) and
waits for the target's answer, so that when it prints "open" the target holds
every stream. Nothing reads the streams after that answer. It then
closes them all when a line arrives on stdin, prints "closed" and exits. Used by
test_isolation so that what the target's process holds is measured without the
clients' own memory.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from finsy.proto import p4r, p4r_grpc

DEVICE_ID = 1
PER_CONNECTION = 100
ANSWER_TIMEOUT_S = 60.0


async def _open_one(stub: Any, election: int) -> Any:
    """A stream the target has answered (a backup's arbitration answer)."""
    call = stub.StreamChannel()
    update = p4r.MasterArbitrationUpdate(device_id=DEVICE_ID,
                                         election_id=p4r.Uint128(low=election))
    await call.write(p4r.StreamMessageRequest(arbitration=update))
    answer = await asyncio.wait_for(call.read(), ANSWER_TIMEOUT_S)
    if not isinstance(answer, p4r.StreamMessageResponse) or not answer.HasField("arbitration"):
        raise SystemExit(f"stream {election}: the target answered {answer!r}")
    return call


async def main(address: str, count: int, first_election: int, one_by_one: bool) -> None:
    channels: list[grpc.aio.Channel] = []
    opening = []
    for first in range(0, count, PER_CONNECTION):
        channel = grpc.aio.insecure_channel(address,
                                            options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(channel)
        stub: Any = p4r_grpc.P4RuntimeStub(channel)  # typed for the sync API
        opening += [_open_one(stub, first_election + first + i)
                    for i in range(min(PER_CONNECTION, count - first))]
    if one_by_one:  # each answered before the next opens
        calls = [await one for one in opening]
    else:
        calls = await asyncio.gather(*opening)
    print("open", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close(None)
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]),
                     int(sys.argv[3]) if len(sys.argv) > 3 else 1000,
                     sys.argv[4:] == ["one-by-one"]))
