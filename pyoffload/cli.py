"""The ``pyoffload`` command line (operators and the README's main job)."""

from __future__ import annotations

import argparse
import sys

from bmv2_env.targets import TargetUnavailable
from bmv2_env.topology import TopologyError
from pyoffload.p4artifacts import ArtifactError
from pyoffload.p4runtime import P4RuntimeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyoffload",
        description="Offload a guest's stateful network services into its VNIC's P4 pipeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="guest and uplink namespaces joined by the VNIC pipeline, real traffic, counters",
    )
    demo.add_argument(
        "--target", default="auto", choices=["auto", "bmv2", "embedded"],
        help="P4 target (default: BMv2 if installed, else the embedded target)",
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        from pyoffload.demo import run_demo

        try:
            return run_demo(args.target)
        except (TopologyError, TargetUnavailable, ArtifactError, P4RuntimeError) as exc:
            print(f"pyoffload demo: {exc}", file=sys.stderr)
            return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
