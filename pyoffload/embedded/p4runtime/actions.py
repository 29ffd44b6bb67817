"""Action specifications: P4Runtime `Action` <-> (action, argument ints)."""

from __future__ import annotations

from finsy.proto import p4r

from .codec import decode_uint, encode_uint
from .errors import invalid
from .p4info import ActionInfo, P4InfoIndex


class ActionCodec:
    """Decodes and encodes action calls against one P4Info."""

    __slots__ = ("_index",)

    def __init__(self, index: P4InfoIndex) -> None:
        self._index = index

    def decode(self, msg: p4r.Action, allowed: frozenset[int], where: str
               ) -> tuple[ActionInfo, list[int]]:
        """Check the action is allowed here and every parameter is given once and fits."""
        action = self._index.actions.get(msg.action_id)
        if action is None:
            raise invalid(f"{where}: unknown action id {msg.action_id}")
        if msg.action_id not in allowed:
            raise invalid(f"{where}: action {action.name!r} is not allowed here")
        params = action.params
        if len(msg.params) != len(params):
            raise invalid(
                f"{where}: action {action.name!r} takes {len(params)} parameters, "
                f"got {len(msg.params)}"
            )
        args = [0] * len(params)
        seen = 0
        by_id = action.params_by_id
        for p in msg.params:
            info = by_id.get(p.param_id)
            if info is None:
                raise invalid(f"{where}: action {action.name!r} has no parameter id {p.param_id}")
            bit = 1 << info.position
            if seen & bit:
                raise invalid(f"{where}: parameter {info.name!r} given twice")
            seen |= bit
            args[info.position] = decode_uint(
                p.value, info.bitwidth, f"{where}: {action.name} parameter {info.name!r}"
            )
        return action, args

    def encode(self, out: p4r.Action, action_id: int, args: list[int]) -> None:
        """Fill `out` with a canonical action call."""
        out.action_id = action_id
        for info, value in zip(self._index.actions[action_id].params, args, strict=True):
            out.params.add(param_id=info.id, value=encode_uint(value))
