"""The per-packet context the generated code works on, beside the PHV list."""

from __future__ import annotations


class Pkt:
    """One packet instance in flight: its bytes, parse position and v1model flags.

    `data[pos:]` is the payload once parsing is done. The flags mirror BMv2's
    packet registers: a clone request, resubmit/recirculate field lists, the
    digest to send and the packet length that add/remove_header maintain.
    """

    __slots__ = (
        "clone_fl",
        "clone_sid",
        "data",
        "digest",
        "exit",
        "f",
        "ingress_length",
        "length",
        "logs",
        "pos",
        "recirc_fl",
        "resubmit_fl",
        "trunc",
    )

    def __init__(self, f: list[int], data: bytes, ingress_length: int, logs: list[str]) -> None:
        self.f = f
        self.data = data
        self.pos = 0
        self.ingress_length = ingress_length
        self.length = ingress_length
        self.clone_sid: int | None = None
        self.clone_fl = 0
        self.resubmit_fl: int | None = None
        self.recirc_fl: int | None = None
        self.digest: int | None = None
        self.trunc: int | None = None
        self.exit = False
        self.logs = logs
