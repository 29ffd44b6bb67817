"""``pyoffload up``: the target, the agent, the guest channels and the admin
endpoint, from a host configuration, until interrupted.

Without a configuration it builds a playground: one VNIC between two network
namespaces (a guest at 10.77.0.1 and an uplink at 10.77.0.2) on the embedded
target, its channel on a Unix socket, so ``ip netns exec <guest ns> guest-shim
apply FILE`` works at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from pyoffload.agent import Agent
from pyoffload.agent.admin import DEFAULT_ADMIN, serve_admin
from pyoffload.agent.channel import serve_all
from pyoffload.agent.config import HostConfig, load_config, parse_config
from pyoffload.agent.journal import Journal
from pyoffload.errors import PyoffloadError
from pyoffload.examples import example_path
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.playground.topology import Topology, require_root
from pyoffload.targets import RunningTarget, serves_p4runtime, start_target

_log = logging.getLogger(__name__)

PLAYGROUND_CHANNEL = "unix:/run/pyoffload/vnic-1.sock"


def playground(stack: ExitStack, say: TextIO) -> HostConfig:
    """One VNIC between a guest and an uplink namespace (removed on exit)."""
    require_root("pyoffload up (playground)")
    topo = stack.enter_context(Topology())
    guest, uplink = topo.add_guest_and_uplink("10.77.0.1/24", "10.77.0.2/24")
    print(f"playground: guest namespace {guest} (10.77.0.1), uplink namespace {uplink} "
          "(10.77.0.2)", file=say)
    print(f"  try: ip netns exec {guest} guest-shim --channel {PLAYGROUND_CHANNEL} "
          f"apply {example_path('demo.yaml')}", file=say)
    return parse_config({
        "target": {"kind": "embedded",
                   "ports": {p: pair.switch_end for p, pair in topo.pairs.items()}},
        "vnics": [{"name": "vnic-1", "id": 1, "guest_port": 1, "uplink_port": 2,
                   "default_policy": "deny", "channel": PLAYGROUND_CHANNEL}],
    })


class KeptTarget:
    """The target ``pyoffload up`` started, started again whenever it dies, at the same
    address and on the same ports: the agent reconnects to it and puts back the rules
    and the checkpointed connections (a target it adopted is not its child: run that one
    under a service manager). Failed starts are retried with backoff, up to
    ``RESTART_BACKOFF_S[1]`` apart."""

    RESTART_BACKOFF_S = (0.5, 30.0)

    def __init__(self, kind: str, ports: Mapping[int, str], *, log_dir: Path,
                 device_id: int, address: str | None) -> None:
        self._kind, self._ports, self._log_dir, self._device_id = kind, ports, log_dir, device_id
        self.current: RunningTarget = start_target(kind, ports, output=log_dir / "target.log",
                                                   device_id=device_id, grpc_address=address)
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._keep, daemon=True,
                                        name="pyoffload-target-keeper")
        self._thread.start()

    def _keep(self) -> None:
        while True:
            dead = self.current
            code = dead.process.wait()
            if self._stopping.is_set():
                return
            _log.warning("the target (pid %d) exited with status %s; starting it again on %s "
                         "(its last output: %s)", dead.process.pid, code, dead.grpc_address,
                         dead.output)
            delay = self.RESTART_BACKOFF_S[0]
            while not self._stopping.is_set():
                self.restarts += 1
                output = self._log_dir / f"target-{self.restarts}.log"
                try:
                    started = start_target(self._kind, self._ports, output=output,
                                           device_id=self._device_id,
                                           grpc_address=dead.grpc_address)
                except (PyoffloadError, OSError) as exc:
                    _log.warning("starting the target again failed (retrying in %.1f s): %s",
                                 delay, str(exc).splitlines()[0])
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self.RESTART_BACKOFF_S[1])
                    continue
                with self._lock:
                    if self._stopping.is_set():
                        started.stop()
                        return
                    self.current = started
                _log.warning("the target serves again on %s (pid %d, log %s)",
                             started.grpc_address, started.process.pid, output)
                break

    def stop(self) -> None:
        """Stop keeping it, and stop it."""
        self._stopping.set()
        with self._lock:
            self.current.stop()
        # a start in progress waits up to 30 s for the new target to serve, then stops it
        self._thread.join(timeout=45)


def log_dir_for(stack: ExitStack) -> Path:
    """A scratch directory removed with ``stack`` (the playground keeps no state)."""
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyoffload-state-")))


def _check_admin_address(admin: str, config: HostConfig) -> None:
    """The admin endpoint may not be a guest channel's socket (it would replace it)."""
    path = os.path.abspath(admin.removeprefix("unix:"))
    for vnic in config.vnics:
        channel = vnic.channel
        if channel is not None and channel.kind == "unix" and \
                os.path.abspath(channel.path) == path:
            raise PyoffloadError(f"--admin {admin} is the socket of VNIC {vnic.name}'s guest "
                                 "channel; give the admin endpoint a path of its own")


def run_up(config_path: Path | None, admin: str = DEFAULT_ADMIN,
           out: TextIO | None = None, stop: threading.Event | None = None, *,
           remove_unrecorded: bool = False) -> int:
    """Run until SIGINT/SIGTERM (or ``stop``); everything started is stopped."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    with ExitStack() as stack:
        config = load_config(config_path) if config_path else playground(stack, out)
        _check_admin_address(admin, config)
        target = config.target
        variant = "" if target.pipeline == "default" else target.pipeline
        artifacts = Artifacts.packaged(variant)
        thrift = target.thrift_address
        kept: KeptTarget | None = None
        if target.kind == "remote":
            assert target.address is not None
            address, device_id = target.address, target.device_id
        elif target.address and target.address.startswith("unix:") and \
                serves_p4runtime(target.address):
            # the target a previous agent started (and outlived it, forwarding): adopted
            address, device_id = target.address, target.device_id
            print(f"target: one already serves on {address} (a previous agent's): adopted, "
                  "not started again", file=out)
            _log.info("a target already serves on %s (a previous agent's): adopted, not "
                      "started again (if it dies, this agent does not start it)", address)
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyoffload-")))
            kept = KeptTarget(target.kind, target.ports, log_dir=log_dir,
                              device_id=target.device_id, address=target.address)
            stack.callback(kept.stop)
            running = kept.current
            address, device_id = running.grpc_address, running.device_id
            thrift = running.thrift_address
            print(f"target: {running.kind} on {address} (log {running.output}; started "
                  "again if it dies)", file=out)
        journal = stack.enter_context(Journal.open(
            config.state.path if config_path else log_dir_for(stack) / "state.db"))
        print(f"agent: desired state in {journal.path}", file=out)
        agent = Agent(config, address, device_id=device_id, thrift_address=thrift,
                      artifacts=artifacts, journal=journal,
                      remove_unrecorded=remove_unrecorded).start()
        stack.callback(agent.stop)
        for vnic, server in serve_all(agent).items():
            stack.callback(server.stop, None)
            print(f"VNIC {vnic}: guest channel on {config.vnic(vnic).channel}", file=out)
        admin_server = serve_admin(agent, admin)
        stack.callback(admin_server.stop, None)
        print(f"agent: admin endpoint on {admin}; `pyoffload status` shows the state", file=out,
              flush=True)
        stopped_by: list[str] = []

        def on_signal(number: int, _frame: object) -> None:
            stopped_by.append(signal.Signals(number).name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # (HUP: its terminal went)
            signal.signal(sig, on_signal)
        stop.wait()
        print("pyoffload up: stopping", file=out, flush=True)
        _log.info("stopping (%s): the channels, the admin endpoint and the agent; the target "
                  "%s", stopped_by[0] if stopped_by else "asked to",
                  "keeps what it holds" if kept is None else "this agent started stops too")
    return 0
