"""The P4Runtime gRPC server of the embedded target."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures

import grpc
from finsy.proto import p4r, p4r_grpc

from pyoffload.errors import PyoffloadError

from ..switch import Switch
from .arbitration import Arbiter
from .device import Device, Loader, default_loader, default_meter_factory
from .meters import MeterFactory
from .service import P4RuntimeService

DEFAULT_ADDRESS = "127.0.0.1:9559"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Large enough for big P4Info/BMv2 JSON pushes and read responses."""


class ServerError(PyoffloadError):
    """The server could not start (address in use, bad address)."""


class P4RuntimeServer:
    """A switch exposed as one P4Runtime device on a gRPC address.

    `address` may end in `:0` to pick a free port; `port` tells which one.
    """

    def __init__(
        self,
        switch: Switch,
        *,
        device_id: int = 0,
        address: str = DEFAULT_ADDRESS,
        max_workers: int = 32,
        loader: Loader = default_loader,
        meter_factory: MeterFactory = default_meter_factory,
        clock: Callable[[], int] = time.monotonic_ns,
        idle_scan_ns: int = 50_000_000,
    ) -> None:
        self.switch = switch
        self._holder: list[P4RuntimeService] = []
        self.device = Device(switch, device_id, self._broadcast, loader=loader,
                             meter_factory=meter_factory, clock=clock, idle_scan_ns=idle_scan_ns)
        self.arbiter = Arbiter(frozenset({device_id}))
        self.service = P4RuntimeService(self.device, self.arbiter)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="p4rt"),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        p4r_grpc.add_P4RuntimeServicer_to_server(self.service, self._server)
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ServerError(f"cannot listen on {address}: {exc}") from None
        if self.port == 0:
            raise ServerError(f"cannot listen on {address} (address in use or invalid)")
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"

    def _broadcast(self, message: p4r.StreamMessageResponse) -> None:
        self.service.broadcast(message)

    def start(self) -> None:
        self._server.start()
        self.device.start()

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving: open streams are cancelled, then background work ends."""
        self._server.stop(grace).wait()
        self.device.stop()
        self.service.close()

    def __enter__(self) -> P4RuntimeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_ADDRESS", "P4RuntimeServer", "ServerError", "default_loader"]
