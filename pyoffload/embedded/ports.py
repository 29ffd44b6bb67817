"""Switch ports: where frames enter and leave the embedded target.

A port is anything that can `transmit` a frame to the wire and block in
`receive` for the next frame from the wire (None once closed). The switch
runs one receive thread per port, so a port needs no event loop and closing it
is the only way to stop its thread (no polling, no timeouts).

- `MemoryPort`: an in-process link for library use and tests; the far side
  calls `inject` to offer a frame to the switch and `take` to get what the
  switch sent.
- `RawSocketPort`: a Linux interface by name through an AF_PACKET raw socket,
  like BMv2's `-i 1@veth1`. Needs CAP_NET_RAW.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import struct
from typing import Protocol

from pyoffload.errors import PyoffloadError


class Port(Protocol):
    """What the switch needs from a port."""

    @property
    def name(self) -> str: ...

    def transmit(self, frame: bytes) -> None:
        """Send a frame out of the switch on this port."""

    def receive(self) -> bytes | None:
        """Block until a frame arrives from the wire; None once the port is closed."""

    def close(self) -> None:
        """Stop receiving and wake a thread blocked in `receive`."""

    def release(self) -> None:
        """Free the port's resources once no thread uses it."""


class MemoryPort:
    """A port backed by two in-memory queues.

    Thread safe; frames are kept in order. `take` is the far side's blocking
    read of what the switch transmitted, with a timeout so a test that expects
    no frame can say how long it is willing to wait.
    """

    def __init__(self, name: str = "mem") -> None:
        self._name = name
        self._to_switch: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._from_switch: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    @property
    def name(self) -> str:
        return self._name

    # switch side ---------------------------------------------------------
    def transmit(self, frame: bytes) -> None:
        self._from_switch.put(frame)

    def receive(self) -> bytes | None:
        return self._to_switch.get()

    def close(self) -> None:
        self._to_switch.put(None)

    def release(self) -> None:
        """Nothing to free: queues are garbage collected."""

    # far side ------------------------------------------------------------
    def inject(self, frame: bytes) -> None:
        """Offer a frame to the switch as if it arrived on the wire."""
        if not frame:
            raise ValueError("cannot inject an empty frame")
        self._to_switch.put(bytes(frame))

    def take(self, timeout: float = 1.0) -> bytes | None:
        """The next frame the switch transmitted, or None after `timeout` seconds."""
        try:
            return self._from_switch.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[bytes]:
        """Every frame transmitted so far, without waiting."""
        out = []
        while True:
            try:
                out.append(self._from_switch.get_nowait())
            except queue.Empty:
                return out


_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
_PACKET_IGNORE_OUTGOING = 23
_PACKET_AUXDATA = 8
_TP_STATUS_VLAN_VALID = 1 << 4
_TP_STATUS_VLAN_TPID_VALID = 1 << 6
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_ETH_P_8021Q = 0x8100
_MAX_FRAME = 65536 + 64


def _with_vlan_tag(frame: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """The frame as it was on the wire: its 802.1Q tag back after the MACs."""
    for level, kind, data in ancillary:
        if level != _SOL_PACKET or kind != _PACKET_AUXDATA or len(data) < _AUXDATA.size:
            continue
        status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(data)
        if status & _TP_STATUS_VLAN_VALID and len(frame) >= 12:
            if not status & _TP_STATUS_VLAN_TPID_VALID or tpid == 0:
                tpid = _ETH_P_8021Q
            return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame


class PortError(PyoffloadError):
    """A port could not be opened (missing interface, no permission)."""


class RawSocketPort:
    """A Linux network interface, by name, through an AF_PACKET raw socket.

    The socket is put in promiscuous mode (as BMv2's pcap capture is) and
    ignores frames it sent itself. Close wakes the receiving thread through a
    pipe, so `receive` needs no timeout.
    """

    def __init__(self, ifname: str) -> None:
        self._name = ifname
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError:
            raise PortError(f"no network interface named {ifname!r}") from None
        try:
            # Protocol 0 receives nothing until bind() names the interface: a socket
            # opened for all protocols would queue frames of every interface
            # (loopback too) in the moment before it is bound.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PortError(f"a raw socket on {ifname!r} needs CAP_NET_RAW (root)") from None
        try:
            sock.bind((ifname, _ETH_P_ALL))
            mreq = struct.pack("iHH8s", ifindex, _PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)
            with contextlib.suppress(OSError):  # before Linux 4.20: filtered in receive()
                sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            # The kernel strips 802.1Q tags before raw sockets see a frame and
            # reports them in auxiliary data; we put them back, as pcap does.
            sock.setsockopt(_SOL_PACKET, _PACKET_AUXDATA, 1)
        except OSError as exc:
            sock.close()
            raise PortError(f"cannot bind a raw socket to {ifname!r}: {exc}") from exc
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    def transmit(self, frame: bytes) -> None:
        if self._closed:
            return
        # Interface down or frame too large for its MTU: the wire drops it,
        # as a real NIC would; the switch keeps running.
        with contextlib.suppress(OSError):
            self._sock.send(frame)

    def receive(self) -> bytes | None:
        while not self._closed:
            events = self._poll.poll()
            if self._closed or any(fd == self._wake_r for fd, _ in events):
                return None
            try:
                frame, ancillary, _flags, addr = self._sock.recvmsg(
                    _MAX_FRAME, socket.CMSG_SPACE(_AUXDATA.size)
                )
            except BlockingIOError:
                continue
            except OSError:
                return None
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            return _with_vlan_tag(frame, ancillary)
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")

    def release(self) -> None:
        """Free the file descriptors once no thread is in `receive` (idempotent)."""
        self.close()
        if self._sock.fileno() == -1:
            return
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
