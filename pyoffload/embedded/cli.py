"""`pyoffload-target`: the embedded P4 target, a drop-in for simple_switch_grpc.

Accepts simple_switch_grpc's common options, so scripts written for BMv2 run
unchanged:

    pyoffload-target --no-p4 -i 1@veth1 -i 2@veth3 --device-id 1 \\
        -- --grpc-server-addr unix:/run/pyoffload/p4rt.sock --cpu-port 255

P4Runtime is served on a Unix socket by default (`DEFAULT_GRPC_ADDRESS`, mode
0600: only the target's user, root, may connect; `--grpc-socket-mode`,
`--grpc-socket-owner`, `--grpc-socket-group` open it to more), or on TCP with
simple_switch_grpc's TLS options (`--grpc-server-ssl --grpc-server-cert
--grpc-server-key --grpc-server-cacert --grpc-server-with-client-auth`).
Plain TCP is unauthenticated: accepted on a loopback address with a warning,
elsewhere only with `--grpc-insecure-tcp`.

Options that only make sense for BMv2 (Thrift, nanolog, pcap...) are accepted
and ignored with a notice. Bad options give one line on stderr and exit
status 2; a JSON that cannot be loaded exits with status 1.
"""

from __future__ import annotations

import argparse
import gc
import grp
import logging
import pwd
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pyoffload.errors import PyoffloadError
from pyoffload.memory import fix_mmap_threshold

PROG = "pyoffload-target"
SWITCH_INTERVAL_S = 0.0005
"""The interpreter's switch interval in the target's process (see `_tune_interpreter`)."""
DEFAULT_GRPC_ADDRESS = "unix:/run/pyoffload/p4rt.sock"
_LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": logging.CRITICAL + 10,
}
_IGNORED_WITH_VALUE = ("--thrift-port", "--nanolog", "--notifications-addr", "--use-files",
                       "--packet-in", "--restore-state", "--max-port-count", "--drop-port",
                       "--dp-grpc-server-addr", "--priority-queues")
_IGNORED_FLAGS = ("--debugger", "--log-flush", "--enable-swap", "--dump-packet-data")


class UsageError(PyoffloadError):
    """A bad command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(slots=True)
class Options:
    """The parsed command line."""

    json: Path | None = None
    no_p4: bool = False
    interfaces: list[tuple[int, str]] = field(default_factory=list)
    device_id: int = 0
    cpu_port: int | None = None
    grpc_address: str = DEFAULT_GRPC_ADDRESS
    socket_mode: int = 0o600
    socket_uid: int | None = None
    socket_gid: int | None = None
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_cacert: Path | None = None
    tls_client_auth: bool = False
    insecure_tcp: bool = False
    streams_per_peer: int = 100
    log_console: bool = False
    log_level: int = logging.INFO
    log_file: Path | None = None
    notices: list[str] = field(default_factory=list)


def _interface(text: str) -> tuple[int, str]:
    port, sep, name = text.partition("@")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected PORT@INTERFACE, got {text!r}")
    try:
        number = int(port, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port number {port!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"port number {number} is negative")
    return number, name


def _non_negative(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _mode(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode like 0660") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"mode {text} is not between 0000 and 0777")
    return value


def _uid(text: str) -> int:
    try:
        return int(text) if text.isdigit() else pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user {text!r}") from None


def _gid(text: str) -> int:
    try:
        return int(text) if text.isdigit() else grp.getgrnam(text).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such group {text!r}") from None


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_grpc_options(p: _Parser) -> None:
    """simple_switch_grpc's gRPC options and ours (accepted before or after `--`)."""
    p.add_argument("--grpc-server-addr", default=None,
                   help=f"unix:PATH or HOST:PORT (default {DEFAULT_GRPC_ADDRESS})")
    p.add_argument("--grpc-socket-mode", type=_mode, default=None,
                   help="mode of the Unix socket, octal (default 0600: owner only)")
    p.add_argument("--grpc-socket-owner", type=_uid, default=None,
                   help="owner (user name or uid) of the Unix socket")
    p.add_argument("--grpc-socket-group", type=_gid, default=None,
                   help="group (name or gid) of the Unix socket; with mode 0660 its members "
                        "may connect")
    p.add_argument("--grpc-server-ssl", action="store_true", help="serve TCP over TLS")
    p.add_argument("--grpc-server-cert", type=Path, default=None,
                   help="PEM certificate of the server")
    p.add_argument("--grpc-server-key", type=Path, default=None,
                   help="PEM private key of the server")
    p.add_argument("--grpc-server-cacert", type=Path, default=None,
                   help="PEM CA certificate that signs client certificates")
    p.add_argument("--grpc-server-with-client-auth", action="store_true",
                   help="require a client certificate signed by --grpc-server-cacert")
    p.add_argument("--grpc-insecure-tcp", action="store_true",
                   help="allow UNAUTHENTICATED plain TCP on a non-loopback address")
    p.add_argument("--grpc-max-streams-per-peer", type=_positive, default=None,
                   help="StreamChannels one peer may hold open (default 100)")


def _level(text: str) -> int:
    try:
        return _LOG_LEVELS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (one of {', '.join(_LOG_LEVELS)})"
        ) from None


def _main_parser() -> _Parser:
    p = _Parser(prog=PROG, add_help=True, allow_abbrev=False,
                description="Embedded P4 (v1model) target with a P4Runtime server.")
    p.add_argument("json_file", nargs="?", type=Path, help="BMv2 JSON to load at start")
    p.add_argument("--json", dest="json_opt", type=Path, help="BMv2 JSON to load at start")
    p.add_argument("--no-p4", action="store_true",
                   help="start without a program; push one over P4Runtime")
    p.add_argument("-i", "--interface", action="append", type=_interface, default=[],
                   metavar="PORT@IFACE", help="attach Linux interface IFACE as port PORT")
    p.add_argument("--device-id", type=_non_negative, default=0)
    p.add_argument("--cpu-port", type=_non_negative, default=None)
    _add_grpc_options(p)
    p.add_argument("--log-console", action="store_true", help="log to stderr")
    p.add_argument("-L", "--log-level", type=_level, default=logging.INFO,
                   help="trace, debug, info, warn, error, off")
    p.add_argument("--log-file", type=Path, default=None)
    p.add_argument("--pcap", nargs="?", const="", default=None)
    for name in _IGNORED_WITH_VALUE:
        p.add_argument(name, default=None)
    for name in _IGNORED_FLAGS:
        p.add_argument(name, action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    return p


def _target_parser() -> _Parser:
    p = _Parser(prog=f"{PROG} ... --", add_help=False, allow_abbrev=False)
    _add_grpc_options(p)
    p.add_argument("--cpu-port", type=_non_negative, default=None)
    for name in _IGNORED_WITH_VALUE:
        p.add_argument(name, default=None)
    for name in _IGNORED_FLAGS:
        p.add_argument(name, action="store_true")
    return p


def parse_args(argv: Sequence[str]) -> Options:
    """Parse a simple_switch_grpc style command line; raise UsageError when bad."""
    argv = list(argv)
    if "--" in argv:
        split = argv.index("--")
        main_args, target_args = argv[:split], argv[split + 1:]
    else:
        main_args, target_args = argv, []
    ns = _main_parser().parse_args(main_args)
    target = _target_parser().parse_args(target_args)
    opts = Options()
    if ns.json_file is not None and ns.json_opt is not None:
        raise UsageError("give the JSON either as an argument or with --json, not both")
    opts.json = ns.json_file or ns.json_opt
    opts.no_p4 = ns.no_p4
    if opts.json is None and not opts.no_p4 and not ns.version:  # --version alone works
        raise UsageError("give a BMv2 JSON file or --no-p4")
    if opts.json is not None and opts.no_p4:
        raise UsageError("--no-p4 and a JSON file exclude each other")
    seen_ports: dict[int, str] = {}
    for number, name in ns.interface:
        if number in seen_ports:
            raise UsageError(f"port {number} given twice ({seen_ports[number]} and {name})")
        seen_ports[number] = name
    opts.interfaces = list(ns.interface)
    opts.device_id = ns.device_id
    opts.cpu_port = target.cpu_port if target.cpu_port is not None else ns.cpu_port
    if opts.cpu_port is not None and opts.cpu_port in seen_ports:
        raise UsageError(f"CPU port {opts.cpu_port} is also given as an interface port")
    def pick(name: str) -> object:
        value = getattr(target, name)
        return value if value not in (None, False) else getattr(ns, name)

    address = str(pick("grpc_server_addr") or DEFAULT_GRPC_ADDRESS)
    if ":" not in address:
        raise UsageError(f"--grpc-server-addr {address!r}: expected HOST:PORT or unix:PATH")
    opts.grpc_address = address
    unix = address.startswith("unix:")
    mode, uid, gid = pick("grpc_socket_mode"), pick("grpc_socket_owner"), pick("grpc_socket_group")
    if not unix and (mode, uid, gid) != (None, None, None):
        raise UsageError("--grpc-socket-mode/-owner/-group apply to a unix:PATH address only")
    opts.socket_mode = 0o600 if mode is None else int(str(mode))
    opts.socket_uid = None if uid is None else int(str(uid))
    opts.socket_gid = None if gid is None else int(str(gid))
    opts.tls = bool(pick("grpc_server_ssl"))
    opts.tls_cert = _path(pick("grpc_server_cert"))
    opts.tls_key = _path(pick("grpc_server_key"))
    opts.tls_cacert = _path(pick("grpc_server_cacert"))
    opts.tls_client_auth = bool(pick("grpc_server_with_client_auth"))
    opts.insecure_tcp = bool(pick("grpc_insecure_tcp"))
    per_peer = pick("grpc_max_streams_per_peer")
    opts.streams_per_peer = 100 if per_peer is None else int(str(per_peer))
    tls_files = (opts.tls_cert, opts.tls_key, opts.tls_cacert)
    if not opts.tls and (any(tls_files) or opts.tls_client_auth):
        raise UsageError("TLS options need --grpc-server-ssl")
    if opts.tls:
        if unix:
            raise UsageError("--grpc-server-ssl is for TCP; a Unix socket is protected by "
                             "its owner and mode")
        if opts.tls_cert is None or opts.tls_key is None:
            raise UsageError("--grpc-server-ssl needs --grpc-server-cert and --grpc-server-key")
        if opts.tls_client_auth and opts.tls_cacert is None:
            raise UsageError("--grpc-server-with-client-auth needs --grpc-server-cacert")
    opts.log_console = ns.log_console
    opts.log_level = ns.log_level
    opts.log_file = ns.log_file
    for space in (ns, target):
        for name in _IGNORED_WITH_VALUE + _IGNORED_FLAGS + ("--pcap",):
            value = getattr(space, name.lstrip("-").replace("-", "_"), None)
            if value not in (None, False):
                opts.notices.append(f"{name} is a BMv2 option this target ignores")
    if ns.version:
        opts.notices.append("version requested")
    return opts


def _path(value: object) -> Path | None:
    return value if isinstance(value, Path) else None


def _configure_logging(opts: Options) -> None:
    handlers: list[logging.Handler] = []
    if opts.log_console:
        handlers.append(logging.StreamHandler(sys.stderr))
    if opts.log_file is not None:
        handlers.append(logging.FileHandler(opts.log_file))
    if not handlers:
        warn = logging.StreamHandler(sys.stderr)
        warn.setLevel(logging.WARNING)
        handlers.append(warn)
    logging.basicConfig(level=opts.log_level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(opts: Options, stop: threading.Event) -> int:
    """Start switch and server, serve until `stop` is set, shut down cleanly."""
    from .p4runtime.device import default_loader
    from .p4runtime.server import (
        P4RuntimeServer,
        ServerError,
        SocketAccess,
        StreamLimits,
        TlsConfig,
    )
    from .ports import PortError, RawSocketPort
    from .switch import Switch

    switch = Switch(cpu_port=opts.cpu_port)
    try:
        for number, name in opts.interfaces:
            switch.add_port(number, RawSocketPort(name))
    except PortError as exc:
        switch.stop()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if opts.json is not None:
        try:
            text = opts.json.read_text()
        except OSError as exc:
            switch.stop()
            print(f"{PROG}: error: cannot read {opts.json}: {exc.strerror}", file=sys.stderr)
            return 1
        try:
            switch.set_pipeline(default_loader(text, time.monotonic_ns))
        except Exception as exc:
            switch.stop()
            print(f"{PROG}: error: cannot load {opts.json}: {exc}", file=sys.stderr)
            return 1
    try:
        tls = None
        if opts.tls:
            assert opts.tls_cert is not None and opts.tls_key is not None
            tls = TlsConfig.from_files(cert=opts.tls_cert, key=opts.tls_key, ca=opts.tls_cacert,
                                       client_auth=opts.tls_client_auth)
        server = P4RuntimeServer(
            switch, device_id=opts.device_id, address=opts.grpc_address, tls=tls,
            socket_access=SocketAccess(mode=opts.socket_mode, uid=opts.socket_uid,
                                       gid=opts.socket_gid),
            insecure_tcp=opts.insecure_tcp,
            stream_limits=StreamLimits(per_peer=opts.streams_per_peer))
    except ServerError as exc:
        switch.stop()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if server.warning is not None:
        print(f"{PROG}: {server.warning}", file=sys.stderr, flush=True)
    switch.start()
    server.start()
    ports = ", ".join(f"{n}@{name}" for n, name in opts.interfaces) or "none"
    print(f"{PROG}: P4Runtime on {server.address}, device_id {opts.device_id}, "
          f"cpu_port {opts.cpu_port}, ports {ports}", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        server.stop(grace=0.5)
        switch.stop()
    print(f"{PROG}: stopped", file=sys.stderr, flush=True)
    return 0


def _tune_interpreter() -> None:
    """Fewer, cheaper collections and a shorter switch interval for a long-running target.

    Tables and registers are many long-lived objects; every packet and every
    written entry allocates short-lived ones. With the default thresholds the
    cyclic collector keeps re-scanning the long-lived heap, which showed up as
    batch writes taking 40 to 130 ms at random. Freezing what exists at start
    removes most of that. Each collection holds the interpreter (and so
    forwarding), and a young or middle collection costs about 0.1 ms per 1,000
    objects it scans: the young generation is kept to 5,000 objects and the
    middle one to four of those, so no collection during a large Write takes
    more than a few ms (with 10,000 and 10, middle collections during a
    65,000-entry batch took 10 to 18 ms, the largest forwarding gaps; with
    50,000 and 50, 190 ms). A full collection scans every installed entry
    (about 5 objects each: 20 to 40 ms with 65,000 entries), so it waits for
    1,000 middle ones (CPython also waits until the survivors since the last
    one grew the heap by a quarter).

    A thread woken by a frame (a port, the sender or receiver of a test) or by
    a small request (the event loop, then a worker) must get the interpreter
    lock from a busy thread (a large Write), which hands it over only at the
    switch interval or when it blocks. At 5 ms the largest forwarding gap during
    a 100,000-update Write was 20-26 ms; at 2 ms, 15-20 ms; at 0.5 ms, 6-10 ms,
    and a guest's single-rule apply (several such hand-overs) while a neighbour
    applies 1,000 rules in a loop went from p99 46-54 ms to 32-38 ms. The large
    Writes themselves took no longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 4, 1_000)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    fix_mmap_threshold()  # large Writes' blocks go back to the system (pyoffload.memory)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if "version requested" in opts.notices:
        from pyoffload import __version__

        print(f"{PROG} {__version__}")
        return 0
    for notice in opts.notices:
        print(f"{PROG}: note: {notice}", file=sys.stderr)
    _configure_logging(opts)
    _tune_interpreter()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(opts, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
