"""``pyoffload up``: the target, the agent, the guest channels and the admin
endpoint, from a host configuration, until interrupted.

Without a configuration it builds a playground: one VNIC between two network
namespaces (a guest at 10.77.0.1 and an uplink at 10.77.0.2) on the embedded
target, its channel on a Unix socket, so ``ip netns exec <guest ns> guest-shim
apply FILE`` works at once.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from pyoffload.agent import Agent
from pyoffload.agent.admin import DEFAULT_ADMIN, serve_admin
from pyoffload.agent.channel import serve_all
from pyoffload.agent.config import HostConfig, load_config, parse_config
from pyoffload.agent.journal import Journal
from pyoffload.examples import example_path
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.playground.topology import Topology, require_root
from pyoffload.targets import RunningTarget, serves_p4runtime, start_target

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


def log_dir_for(stack: ExitStack) -> Path:
    """A scratch directory removed with ``stack`` (the playground keeps no state)."""
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyoffload-state-")))


def run_up(config_path: Path | None, admin: str = DEFAULT_ADMIN,
           out: TextIO | None = None, stop: threading.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or ``stop``); everything started is stopped."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    with ExitStack() as stack:
        config = load_config(config_path) if config_path else playground(stack, out)
        target = config.target
        variant = "" if target.pipeline == "default" else target.pipeline
        artifacts = Artifacts.packaged(variant)
        thrift = target.thrift_address
        if target.kind == "remote":
            assert target.address is not None
            address, device_id = target.address, target.device_id
        elif target.address and target.address.startswith("unix:") and \
                serves_p4runtime(target.address):
            # the target a previous agent started (and outlived it, forwarding): adopted
            address, device_id = target.address, target.device_id
            print(f"target: one already serves on {address} (a previous agent's): adopted, "
                  "not started again", file=out)
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyoffload-")))
            running: RunningTarget = stack.enter_context(start_target(
                target.kind, target.ports, output=log_dir / "target.log",
                device_id=target.device_id, grpc_address=target.address))
            address, device_id = running.grpc_address, running.device_id
            thrift = running.thrift_address
            print(f"target: {running.kind} on {address} (log {running.output})", file=out)
        journal = stack.enter_context(Journal.open(
            config.state.path if config_path else log_dir_for(stack) / "state.db"))
        print(f"agent: desired state in {journal.path}", file=out)
        agent = Agent(config, address, device_id=device_id, thrift_address=thrift,
                      artifacts=artifacts, journal=journal).start()
        stack.callback(agent.stop)
        for vnic, server in serve_all(agent).items():
            stack.callback(server.stop, None)
            print(f"VNIC {vnic}: guest channel on {config.vnic(vnic).channel}", file=out)
        admin_server = serve_admin(agent, admin)
        stack.callback(admin_server.stop, None)
        print(f"agent: admin endpoint on {admin}; `pyoffload status` shows the state", file=out,
              flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        print("pyoffload up: stopping", file=out, flush=True)
    return 0
