"""Run the PTF packet tests against a target: ``python -m ptf_tests.runner``.

It creates one veth pair per switch port, starts the target on the switch
ends (``--target bmv2|embedded|auto``), runs ``ptf`` on the test ends with the
target's P4Runtime address and the compiled pipeline as test parameters, and
removes everything afterwards. When the target is not available it says why
and skips (exit 0); when it may not create veth pairs it says why and fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyoffload.pipeline.artifacts import ArtifactError, Artifacts
from pyoffload.playground.topology import Topology, TopologyError, require_root
from pyoffload.targets import CPU_PORT, TargetUnavailable, resolve_kind, start_target

REPO = Path(__file__).resolve().parent.parent
TEST_DIR = REPO / "ptf_tests"
DEFAULT_PORTS = 4


def ptf_command(
    ports: dict[int, str],
    params: dict[str, str | int],
    test_dir: Path,
    selection: list[str],
) -> list[str]:
    ptf = shutil.which("ptf", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")]))
    if ptf is None:
        raise TargetUnavailable("the `ptf` command is not installed (pip install ptf)")
    param_text = ";".join(
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items()
    )
    argv = [sys.executable, ptf, "--test-dir", str(test_dir), "--pypath", str(REPO)]
    for port, iface in sorted(ports.items()):
        argv += ["--interface", f"{port}@{iface}"]
    argv += ["--test-params", param_text, "--socket-recv-size", "1048576"]
    argv += ["--log-file", str(Path(tempfile.gettempdir()) / "pyoffload-ptf.log")]
    return argv + selection


def run(target: str, nports: int, selection: list[str], keep_output: bool) -> int:
    try:
        kind = resolve_kind(target)
    except TargetUnavailable as exc:
        print(f"PTF tests skipped: {exc}")
        return 0
    try:
        artifacts: Artifacts = Artifacts.packaged()
    except ArtifactError as exc:
        print(f"PTF tests cannot run: {exc}", file=sys.stderr)
        return 2
    try:
        require_root("the PTF runner")
    except TopologyError as exc:
        print(f"PTF tests cannot run: {exc}", file=sys.stderr)
        return 2

    with Topology() as topo, tempfile.TemporaryDirectory(prefix="pyoffload-ptf-") as tmp:
        for port in range(1, nports + 1):
            topo.add_veth(port)
        switch_ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        test_ports = {p: pair.test_end for p, pair in topo.pairs.items()}
        output = Path(tmp) / f"{kind}.log"
        print(f"PTF: starting the {kind} target on ports {sorted(switch_ports)}", flush=True)
        try:
            running = start_target(kind, switch_ports, output=output)
        except TargetUnavailable as exc:
            print(f"PTF tests cannot run: {exc}", file=sys.stderr)
            return 2
        with running:
            params: dict[str, str | int] = {
                "grpc_addr": running.grpc_address,
                "device_id": running.device_id,
                "cpu_port": CPU_PORT,
                "p4info": str(artifacts.p4info),
                "bmv2_json": str(artifacts.bmv2_json),
                "target": kind,
            }
            if running.thrift_address is not None:  # BMv2: registers only over Thrift
                params["thrift_addr"] = running.thrift_address
            argv = ptf_command(test_ports, params, TEST_DIR, selection)
            result = subprocess.run(argv, cwd=REPO)
        if result.returncode != 0 or keep_output:
            print(f"--- {kind} target output (tail) ---\n{running.output_tail(40)}")
    print(f"PTF tests on {kind}: {'passed' if result.returncode == 0 else 'FAILED'}")
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ptf_tests.runner", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("PYOFFLOAD_TARGET", "auto"),
        choices=["auto", "bmv2", "embedded"],
        help="P4 target to test (default: auto = BMv2 if installed, else embedded)",
    )
    parser.add_argument("--ports", type=int, default=DEFAULT_PORTS, help="switch ports")
    parser.add_argument("--show-target-output", action="store_true")
    parser.add_argument("tests", nargs="*", help="PTF test selection (default: all)")
    args = parser.parse_args(argv)
    return run(args.target, args.ports, args.tests, args.show_target_output)


if __name__ == "__main__":
    sys.exit(main())
