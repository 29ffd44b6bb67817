"""The ``pyoffload`` command line: ``up``, ``status``, ``flows``, ``migrate``, ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import grpc

from pyoffload import __version__
from pyoffload.agent.admin import DEFAULT_ADMIN, migrate, query, why_unreachable
from pyoffload.errors import PyoffloadError
from pyoffload.render import render_flows, render_status

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}
"""``pyoffload up --log-level`` choices."""

MIGRATE_TIMEOUT = 600.0
"""Seconds an export or import may take (a million connections take tens of seconds)."""


def _migrate(vnic: str, source: str, destination: str) -> int:
    """Export from one agent, import into the other; say what moved and what did not."""
    try:
        exported, result = migrate(vnic, source, destination, timeout=MIGRATE_TIMEOUT)
    except grpc.RpcError as exc:
        said = f"{exc.code().name}: {exc.details()}"
        unreachable = [f"{end}: {why}" for end, why in (
            ("source", why_unreachable(source)), ("destination", why_unreachable(destination)))
            if why is not None]
        if exc.code() == grpc.StatusCode.UNAVAILABLE and unreachable:
            said = "; ".join(unreachable)
        print(f"pyoffload migrate: {said}", file=sys.stderr)
        return 1
    already = f", {result['present']} already there" if result.get("present") else ""
    overflow = (f" ({result['overflow']} in overflow slots: their hash slot was held)"
                if result.get("overflow") else "")
    print(f"pyoffload migrate: {result['imported']} of {exported} "
          f"connection(s) of VNIC {vnic} moved from {source} to {destination}"
          f"{already}{overflow}")
    for reason in result["skipped"]:
        print(f"  not moved: {reason}")
    return 0 if not result["skipped"] else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `pyoffload status | head`: the reader left, nothing wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyoffload",
        description="Offload a guest's stateful network services into its VNIC's P4 pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"pyoffload {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the target, the agent and the guest channels")
    up.add_argument("config", nargs="?", type=Path,
                    help="host configuration (YAML); default: a playground with one VNIC "
                         "between two network namespaces on the embedded target")
    up.add_argument("--admin", default=DEFAULT_ADMIN, help="admin endpoint (unix:PATH)")
    up.add_argument("--remove-unrecorded-rules", action="store_true",
                    help="adopt a target that holds rules of VNICs the state file has no "
                         "record of, removing them (without it, up refuses to start)")
    up.add_argument("--log-level", default="info", choices=list(LOG_LEVELS),
                    help="what the agent logs to stderr (default: info; connections, "
                         "restores, repairs and failures, with times)")
    status = sub.add_parser("status", help="VNICs, flows, rules, counters, table occupancy")
    status.add_argument("--admin", default=DEFAULT_ADMIN, help="admin endpoint (unix:PATH)")
    status.add_argument("--json", action="store_true", help="print the raw status document")
    flows = sub.add_parser("flows", help="tracked connections, like conntrack -L")
    flows.add_argument("--vnic", help="only this VNIC's connections")
    flows.add_argument("--admin", default=DEFAULT_ADMIN, help="admin endpoint (unix:PATH)")
    flows.add_argument("--json", action="store_true", help="print the raw document")
    migrate = sub.add_parser(
        "migrate", help="move a VNIC's tracked connections to another agent's target")
    migrate.add_argument("--vnic", required=True, help="the VNIC whose connections move")
    migrate.add_argument("--from", dest="source", required=True,
                         help="admin endpoint of the source agent (unix:PATH)")
    migrate.add_argument("--to", dest="destination", required=True,
                         help="admin endpoint of the destination agent (unix:PATH); the "
                              "VNIC's rules must already be applied there")
    demo = sub.add_parser(
        "demo", help="guest and uplink namespaces through the VNIC pipeline, real traffic")
    demo.add_argument("--target", default="embedded", choices=["embedded", "bmv2", "auto"],
                      help="P4 target (default: the embedded target; auto: BMv2 if "
                           "installed, else the embedded target)")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            from pyoffload.demo import run_demo

            return run_demo(args.target)
        if args.command == "up":
            from pyoffload.agent.tuning import tune_agent_process
            from pyoffload.up import run_up

            tune_agent_process()  # this process is the host's agent from here on
            logging.basicConfig(level=LOG_LEVELS[args.log_level], stream=sys.stderr,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            return run_up(args.config, args.admin,
                          remove_unrecorded=args.remove_unrecorded_rules)
        if args.command == "migrate":
            return _migrate(args.vnic, args.source, args.destination)
        try:
            if args.command == "flows":
                doc = query("Flows", {"vnic": args.vnic}, address=args.admin)
            else:
                doc = query("Status", address=args.admin)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                why = why_unreachable(args.admin) or f"{args.admin}: {exc.details()}"
                print(f"pyoffload {args.command}: {why}", file=sys.stderr)
            else:
                print(f"pyoffload {args.command}: {exc.details()}",
                      file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(render_flows(doc) if args.command == "flows" else render_status(doc))
        return 0
    except PyoffloadError as exc:
        print(f"pyoffload {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
