"""A WriteRequest taken apart without decoding it in one piece.

grpc would decode a Write's request in one protobuf call on the event loop:
for a batch of 100,000 updates that holds the interpreter for ~40 ms (a gap
in forwarding) and keeps every decoded update alive until the call ends. The
service takes the request as bytes instead; `split_write_request` walks its
top-level fields in Python (which lets other threads run), decodes the
small header (device id, election id, role, atomicity) and leaves each update
as its bytes, decoded only when it is applied (`LazyUpdates`). Where each
update lies is kept as plain offsets (not a memoryview per update): 100,000
objects fewer for the garbage collector to walk while the batch is applied.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import overload

from finsy.proto import p4r
from google.protobuf.message import DecodeError

from .errors import StatusError, invalid

UPDATES_FIELD = p4r.WriteRequest.DESCRIPTOR.fields_by_name["updates"].number


def split_write_request(data: bytes) -> tuple[p4r.WriteRequest, LazyUpdates]:
    """The request without its updates, and its updates; INVALID_ARGUMENT if malformed."""
    view = memoryview(data)
    end = len(data)
    head = bytearray()
    bounds = array("q")  # start and end of each update
    pos = 0
    try:
        while pos < end:
            start = pos
            key = data[pos]
            pos += 1
            if key & 0x80:
                key, pos = _varint(data, pos - 1)
            wire = key & 7
            if wire == 2:
                length = data[pos]
                pos += 1
                if length & 0x80:
                    length, pos = _varint(data, pos - 1)
                if pos + length > end:
                    raise invalid("WriteRequest is truncated")
                if key >> 3 == UPDATES_FIELD:
                    bounds.append(pos)
                    pos += length
                    bounds.append(pos)
                    continue
                pos += length
            elif wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                raise invalid(f"WriteRequest cannot be decoded (wire type {wire})")
            if pos > end:
                raise invalid("WriteRequest is truncated")
            head += view[start:pos]
        header = p4r.WriteRequest.FromString(bytes(head))
    except IndexError:
        raise invalid("WriteRequest is truncated") from None
    except DecodeError as exc:
        raise invalid(f"WriteRequest cannot be decoded: {exc}") from None
    return header, LazyUpdates(view, bounds)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise invalid("WriteRequest cannot be decoded (varint too long)")


class LazyUpdates(Sequence[p4r.Update]):
    """Updates decoded one at a time; a malformed one raises INVALID_ARGUMENT."""

    __slots__ = ("_bounds", "_view")

    def __init__(self, view: memoryview, bounds: array[int]) -> None:
        self._view = view
        self._bounds = bounds
        """Start and end offset in `view` of each update, one after the other."""

    def __len__(self) -> int:
        return len(self._bounds) // 2

    @overload
    def __getitem__(self, index: int) -> p4r.Update: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[p4r.Update]: ...

    def __getitem__(self, index: int | slice) -> p4r.Update | Sequence[p4r.Update]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = len(self)
        if not -count <= index < count:
            raise IndexError("update index out of range")
        if index < 0:
            index += count
        bounds = self._bounds
        chunk = self._view[bounds[2 * index]:bounds[2 * index + 1]]
        try:
            return p4r.Update.FromString(chunk)  # type: ignore[arg-type]  # upb reads any buffer
        except DecodeError:
            raise invalid(f"update {index} cannot be decoded") from None


__all__ = ["LazyUpdates", "StatusError", "split_write_request"]
