"""Veth pairs and network namespaces for test hosts.

Everything created here carries a per-run tag in its name so that two runs
never collide, and is removed by ``close()`` (or the ``with`` block) even when
a test fails halfway. Traffic only ever flows on these interfaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from types import TracebackType

import attrs

from pyoffload.errors import PyoffloadError


class TopologyError(PyoffloadError):
    """The topology cannot be built here (not root, no iproute2, ...)."""


def require_root(what: str) -> None:
    """Fail with a sentence, not a stack trace, when we may not touch links."""
    if os.geteuid() != 0:
        raise TopologyError(
            f"{what} needs root (CAP_NET_ADMIN) to create veth pairs and network "
            "namespaces; run it as root (for example with sudo)"
        )
    if shutil.which("ip") is None:
        raise TopologyError(f"{what} needs the `ip` command (Debian package iproute2)")


def run_ip(*args: str, netns: str | None = None) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise TopologyError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")
    return result.stdout


def _sysctl(key: str, value: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, "sysctl", "-q", "-w", f"{key}={value}"], capture_output=True)


def _ethtool_tx_off(ifname: str, netns: str | None) -> None:
    if shutil.which("ethtool") is None:
        raise TopologyError("the `ethtool` command is missing (Debian package ethtool)")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    features = ["tx", "off", "rxvlan", "off", "txvlan", "off"]
    subprocess.run([*prefix, "ethtool", "-K", ifname, *features], capture_output=True)


def run_tag() -> str:
    """A short random tag that keeps interface names of parallel runs apart."""
    return secrets.token_hex(2)


@attrs.frozen(kw_only=True)
class VethPair:
    """Two ends of a virtual cable; ``switch_end`` goes to the target."""

    switch_end: str
    test_end: str
    test_netns: str | None = None


@attrs.define
class Topology:
    """Owns the links and namespaces it creates; ``close`` removes them all."""

    tag: str = attrs.field(factory=run_tag)
    pairs: dict[int, VethPair] = attrs.field(factory=dict)
    namespaces: list[str] = attrs.field(factory=list)

    def add_namespace(self, role: str) -> str:
        name = f"pyo{self.tag}{role}"
        run_ip("netns", "add", name)
        self.namespaces.append(name)
        run_ip("link", "set", "lo", "up", netns=name)
        return name

    def add_veth(self, port: int, *, test_netns: str | None = None, mtu: int = 9500) -> VethPair:
        """A veth pair for switch port ``port``; the test end optionally in a namespace."""
        pair = VethPair(
            switch_end=f"pyo{self.tag}s{port}",
            test_end=f"pyo{self.tag}t{port}",
            test_netns=test_netns,
        )
        run_ip("link", "add", pair.switch_end, "type", "veth", "peer", "name", pair.test_end)
        self.pairs[port] = pair
        if test_netns:
            run_ip("link", "set", pair.test_end, "netns", test_netns)
        for end, ns in ((pair.switch_end, None), (pair.test_end, test_netns)):
            # No IPv6 autoconfiguration chatter on the wires under test.
            _sysctl(f"net.ipv6.conf.{end}.disable_ipv6", "1", ns)
            run_ip("link", "set", end, "mtu", str(mtu), "up", netns=ns)
            # A kernel behind a veth leaves TCP/UDP checksums to "hardware"; a
            # target reading raw frames must see them complete.
            _ethtool_tx_off(end, ns)
        return pair

    def add_guest_and_uplink(self, guest_cidr: str, uplink_cidr: str, *, guest_port: int = 1,
                             uplink_port: int = 2) -> tuple[str, str]:
        """Two hosts, a guest and an uplink namespace, each on its own switch port,
        addressed on one subnet so that they talk through the switch; returns both."""
        guest = self.add_namespace("guest")
        uplink = self.add_namespace("uplink")
        for port, ns, cidr in ((guest_port, guest, guest_cidr),
                               (uplink_port, uplink, uplink_cidr)):
            pair = self.add_veth(port, test_netns=ns, mtu=1500)
            run_ip("addr", "add", cidr, "dev", pair.test_end, netns=ns)
        return guest, uplink

    def close(self) -> None:
        for pair in self.pairs.values():
            subprocess.run(["ip", "link", "del", pair.switch_end], capture_output=True)
        self.pairs.clear()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
