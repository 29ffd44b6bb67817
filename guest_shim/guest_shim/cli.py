"""``guest-shim``: the guest's command line for its VNIC's offload channel.

Errors are one line on stderr, never a traceback. Exit codes: 0 done; 1 the
channel or the agent failed or refused the request; 2 bad usage or bad input
found locally (a rule file, an address); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from guest_shim import __version__
from guest_shim.address import DEFAULT_ADDRESS, ENV_VAR
from guest_shim.client import Channel, default_address
from guest_shim.errors import ChannelAddressError, ChannelTlsError, GuestShimError, RuleFileError
from guest_shim.rulefile import parse_file
from guest_shim.tables import format_apply, format_event, format_request, format_stats
from guest_shim.tls import ENV_CA, ENV_CERT, ENV_KEY, ENV_SERVER_NAME, tls_from

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guest-shim",
        description="Declare flows and their service rules to this guest's VNIC.",
        epilog=(
            f"The channel defaults to ${ENV_VAR}, else {DEFAULT_ADDRESS}. A tcp: channel "
            "is served with mutual TLS: --ca names the CA of the agent's channel "
            "certificate, --cert and --key this guest's certificate, whose name the host "
            f"binds to this VNIC (defaults: ${ENV_CA}, ${ENV_CERT}, ${ENV_KEY}, "
            f"${ENV_SERVER_NAME})."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--channel",
        metavar="ADDR",
        help="unix:PATH, tcp:HOST:PORT (with --ca, --cert, --key) or vsock:CID:PORT",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback tcp: channel without TLS (it is unauthenticated; "
        "with --ca a remote channel is allowed anyway)",
    )
    parser.add_argument("--ca", metavar="PEM", help=f"CA of the channel's certificate (${ENV_CA})")
    parser.add_argument(
        "--cert", metavar="PEM", help=f"this guest's certificate for a TLS channel (${ENV_CERT})"
    )
    parser.add_argument("--key", metavar="PEM", help=f"this guest's private key (${ENV_KEY})")
    parser.add_argument(
        "--server-name",
        metavar="NAME",
        help=f"the name the agent's certificate carries, if not the address (${ENV_SERVER_NAME})",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="per-call timeout (seconds)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    apply = commands.add_parser("apply", help="install the rule set of a YAML/JSON file")
    apply.add_argument("file", metavar="FILE")
    apply.add_argument(
        "--check", action="store_true", help="only validate the file, offline; install nothing"
    )
    withdraw = commands.add_parser("withdraw", help="remove flows by id, or all")
    withdraw.add_argument("flows", nargs="*", metavar="FLOW")
    withdraw.add_argument("--all", action="store_true", help="remove every flow")
    commands.add_parser("show", help="print the installed rule set")
    stats = commands.add_parser("stats", help="print counters, connections and quotas")
    stats.add_argument("flows", nargs="*", metavar="FLOW")
    commands.add_parser("watch", help="print events as they come (Ctrl-C to stop)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (RuleFileError, ChannelAddressError, ChannelTlsError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except GuestShimError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    if args.command == "apply" and args.check:
        request = parse_file(args.file)
        rules = sum(len(flow.rules) for flow in request.flows)
        print(f"{args.file}: valid ({len(request.flows)} flow(s), {rules} rule(s))")
        return 0
    if args.command == "withdraw" and args.all == bool(args.flows):
        return _fail("withdraw: name the flows to withdraw, or --all", EXIT_BAD_INPUT)
    address = args.channel or default_address()
    tls = tls_from(args.ca, args.cert, args.key, args.server_name)
    if tls is not None and not address.startswith("tcp:") and not (args.ca or args.cert):
        tls = None  # TLS files from the environment serve TCP channels only
    with Channel(
        address, timeout=args.timeout, allow_remote=args.allow_remote, tls=tls
    ) as channel:
        if args.command == "apply":
            print(format_apply(channel.apply(parse_file(args.file))))
        elif args.command == "withdraw":
            reply = channel.withdraw(args.flows, all_flows=args.all)
            gone = ", ".join(reply.withdrawn) or "nothing"
            print(f"withdrawn: {gone}; generation {reply.generation}")
        elif args.command == "show":
            print(format_request(channel.get()))
        elif args.command == "stats":
            print(format_stats(channel.stats(args.flows)))
        else:
            for event in channel.watch():
                print(format_event(event), flush=True)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"guest-shim: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
