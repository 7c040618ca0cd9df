"""Test hosts as Linux network namespaces, joined by bridges, made and removed by the tests.

Two networks, each a bridge of the root namespace on a private /24 of 10.x:

- ``core``: the broker nodes and PostgreSQL (listening on the bridge's own address in the
  root namespace), the edges and the dispatchers;
- ``front``: nginx (on the bridge's address in the root namespace), the edges and the clients.

A host is a namespace with a veth pair per network it is on (one end on the bridge, the other
inside the host with its address), its loopback, and no default route: from inside, only the
networks' addresses and loopback can be reached. Processes run inside a host with
``ip netns exec`` (which execs the program: its PID is the process's own, for signals), and
the harness opens a client's socket inside a host by entering the namespace for the moment of
``socket()`` (a socket stays in the namespace it was made in).

Faults: ``cut`` takes a host's link to a network down at the bridge's end (the cable pulled:
nothing passes either way, the host's sockets stay open and retransmit), ``mend`` brings it
back; ``state`` reads both ends. ``close`` kills whatever still runs inside each namespace
(processes the tests started there), deletes the namespaces (their veths go with them) and the
bridges, whatever happened before.

Needs root and iproute2's ``ip``; ``available()`` says whether both are here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/var/run/netns")
GATEWAY = 1  # the root namespace's address on each network: 10.N.M.1
NETWORKS = ("core", "front")
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass
class Link:
    network: str
    outer: str  # the veth's end on the bridge (root namespace)
    inner: str  # its end inside the host
    address: str


@dataclass
class Host:
    name: str  # its role: edge-0, dispatcher, client
    netns: str
    links: dict[str, Link] = field(default_factory=dict)

    def address(self, network: str) -> str:
        return self.links[network].address

    @property
    def exec_prefix(self) -> list[str]:
        """Put before a command to run it inside this host."""
        return ["ip", "netns", "exec", self.netns]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside this host's namespace for the block (no await in it:
        the loop's other tasks run on the same thread)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / self.netns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def socket(self) -> socket.socket:
        """A TCP socket of this host."""
        with self.entered():
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def cut(self, network: str) -> None:
        ip("link", "set", self.links[network].outer, "down")

    def mend(self, network: str) -> None:
        ip("link", "set", self.links[network].outer, "up")

    def state(self, network: str) -> str:
        """Both ends' states as ``ip -br link`` prints them: ``bridge end DOWN, host end
        DOWN`` while cut (the host's end has lost its carrier), ``UP``/``UP`` otherwise."""
        link = self.links[network]
        outer = ip("-br", "link", "show", "dev", link.outer).split()[1]
        inner = ip("-n", self.netns, "-br", "link", "show", "dev", link.inner).split()[1]
        return f"bridge end {outer}, host end {inner}"

    def established(self, port: int) -> int:
        """TCP connections established to this host's ``port`` (its sockets, from inside)."""
        out = subprocess.run(
            [*self.exec_prefix, "ss", "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        return sum(1 for line in out.splitlines() if line.strip())

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.netns, check=False).split()]


class Hosts:
    """The bridges and the hosts; ``close`` removes them all."""

    def __init__(self, layout: Mapping[str, Sequence[str]], subnet: int | None = None) -> None:
        """``layout``: host name -> the networks it is on."""
        self.layout = layout
        self.tag = secrets.token_hex(2)
        self.subnet = subnet if subnet is not None else _free_subnet()
        self.bridges = {net: f"nt{self.tag}{net[:2]}" for net in NETWORKS}
        self.hosts: dict[str, Host] = {}

    def gateway(self, network: str) -> str:
        """The root namespace's address on ``network`` (where the broker and PostgreSQL, or
        nginx, listen)."""
        return f"10.{self.subnet}.{NETWORKS.index(network) + 1}.{GATEWAY}"

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        for net, bridge in self.bridges.items():
            ip("link", "add", bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway(net)}/24", "dev", bridge)
            ip("link", "set", bridge, "up")
        for index, (name, networks) in enumerate(self.layout.items()):
            host = Host(name, f"notify-{self.tag}-{name}")
            ip("netns", "add", host.netns)
            self.hosts[name] = host
            ip("-n", host.netns, "link", "set", "lo", "up")
            for net in networks:
                link = Link(net, f"nt{self.tag}h{index}{net[:2]}", f"eth-{net}",
                            f"10.{self.subnet}.{NETWORKS.index(net) + 1}.{10 + index}")  # fmt: skip
                ip("link", "add", link.outer, "type", "veth", "peer", "name", link.inner,
                   "netns", host.netns)  # fmt: skip
                ip("link", "set", link.outer, "master", self.bridges[net], "up")
                ip("-n", host.netns, "addr", "add", f"{link.address}/24", "dev", link.inner)
                ip("-n", host.netns, "link", "set", link.inner, "up")
                host.links[net] = link

    def close(self) -> None:
        """Kill what still runs inside each host (by PID), then remove hosts and bridges."""
        for host in self.hosts.values():
            for pid in host.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for host in self.hosts.values():
            # A socket still open in a namespace keeps it, and its veths, alive: the veths go
            # first, by name.
            for link in host.links.values():
                ip("link", "del", link.outer, check=False)
            ip("netns", "del", host.netns, check=False)
        for bridge in self.bridges.values():
            ip("link", "del", bridge, check=False)
        self.hosts.clear()


def _free_subnet() -> int:
    """A second octet whose 10.N.0.0/16 no interface here uses."""
    used = ip("-4", "-br", "addr")
    for _ in range(100):
        subnet = random.randrange(100, 250)
        if f" 10.{subnet}." not in used:
            return subnet
    raise RuntimeError("no free 10.N.0.0/16 for the test hosts")


@contextlib.contextmanager
def hosts(layout: Mapping[str, Sequence[str]]) -> Iterator[Hosts]:
    made = Hosts(layout)
    try:
        made.create()
        yield made
    finally:
        made.close()


# The pipeline's hosts: two edges between the broker and the clients, the dispatchers' host
# on the broker's network, the clients' host on nginx's.
PIPELINE = {
    "edge-0": ("core", "front"),
    "edge-1": ("core", "front"),
    "dispatcher": ("core",),
    "client": ("front",),
}
