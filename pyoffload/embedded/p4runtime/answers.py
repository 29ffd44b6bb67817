"""What a Read returns for a table entry, assembled from serialized pieces.

A Read answers each entry with a TableEntry: table id, match fields, action,
priority and metadata. Built field by field from Python that costs ~5 µs an
entry, most of the time a client spends reading back a large table. Yet the
pieces repeat from entry to entry (a VNIC id, an action, a port), and
protobuf defines parsing so that concatenated serialized messages merge
into one (repeated fields append, in order). So each distinct piece is
serialized once, by protobuf itself, as a TableEntry holding only that
field; an answer is the join of its pieces in field-number order, which is
byte for byte the whole message's serialization (tested), parsed in one
call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from finsy.proto import p4r

from .actions import ActionCodec

CACHE_LIMIT = 200_000
"""Pieces kept before the cache starts again (bounds the memory of a long run)."""

AddMatch = Callable[..., p4r.FieldMatch]
"""The bound ``match.add`` of the TableEntry being filled."""
FieldEncoder = Callable[[AddMatch, Any], None]
"""Appends the canonical FieldMatch of a store value (see tables.FieldCodec.encode)."""


class AnswerPieces:
    """Serialized pieces of read answers, each made once."""

    def __init__(self, actions: ActionCodec) -> None:
        self._actions = actions
        self._pieces: dict[Hashable, bytes] = {}

    def table_entry(self, table_id: int, fields: tuple[FieldEncoder, ...], key: tuple[Any, ...],
                    action: tuple[int, tuple[int, ...], int, int],
                    extra: tuple[int, bytes, int]) -> bytes:
        """The serialized TableEntry of an entry.

        ``key`` is the store key (match values, None for a don't care, then the
        priority), ``action`` (action id, args, member id, group id), ``extra``
        (controller_metadata, metadata, idle_timeout_ns).
        """
        pieces = self._pieces
        if len(pieces) >= CACHE_LIMIT:
            pieces.clear()
        parts: list[bytes] = []
        piece = pieces.get(table_id)
        if piece is None:
            piece = pieces[table_id] = p4r.TableEntry(table_id=table_id).SerializeToString()
        parts.append(piece)
        ident: Hashable
        for position, value in enumerate(key[:-1]):
            if value is None:
                continue
            ident = (table_id, position, value)
            piece = pieces.get(ident)
            if piece is None:
                te = p4r.TableEntry()
                fields[position](te.match.add, value)
                piece = pieces[ident] = te.SerializeToString()
            parts.append(piece)
        piece = pieces.get(action)
        if piece is None:
            piece = pieces[action] = self._action(*action)
        parts.append(piece)
        priority = key[-1]
        if priority:
            ident = ("priority", priority)
            piece = pieces.get(ident)
            if piece is None:
                piece = pieces[ident] = p4r.TableEntry(priority=priority).SerializeToString()
            parts.append(piece)
        if extra[0] or extra[1] or extra[2]:
            parts.append(p4r.TableEntry(controller_metadata=extra[0], metadata=extra[1],
                                        idle_timeout_ns=extra[2]).SerializeToString())
        return b"".join(parts)

    def _action(self, action_id: int, args: tuple[int, ...], member_id: int,
                group_id: int) -> bytes:
        te = p4r.TableEntry()
        if member_id:
            te.action.action_profile_member_id = member_id
        elif group_id:
            te.action.action_profile_group_id = group_id
        else:
            self._actions.encode(te.action.action, action_id, list(args))
        return te.SerializeToString()
