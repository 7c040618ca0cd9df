"""The test hosts (``tests.support.netns``): who reaches whom, a cut link, and nothing left.

A listener on each bridge's address in the root namespace stands for the broker (``core``)
and nginx (``front``). A host reaches the networks it is on and nothing else (not the other
network, not the root namespace's loopback); a cut link passes nothing until it is mended,
and its state says so at both ends; a process started inside a host is killed by the
teardown, which removes every namespace, veth and bridge even when the test fails.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support import netns

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not netns.available(), reason="network namespaces need root and ip"),
]


def reaches(host: netns.Host, address: str, port: int, timeout: float = 1.0) -> bool:
    sock = host.socket()
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def listen(address: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((address, 0))
    sock.listen(16)
    return sock


def leftovers(tag: str) -> list[str]:
    """Namespaces and links of the hosts tagged ``tag`` still here."""
    names = netns.ip("netns", "list").split() + netns.ip("-br", "link").split()
    return [name for name in names if f"notify-{tag}-" in name or name.startswith(f"nt{tag}")]


def test_hosts_reach_their_networks_only_a_cut_passes_nothing_and_all_goes_at_the_end() -> None:
    made = netns.Hosts(netns.PIPELINE)
    sleeper: subprocess.Popen[bytes] | None = None
    try:
        made.create()
        core = listen(made.gateway("core"))
        front = listen(made.gateway("front"))
        loopback = listen("127.0.0.1")
        with core, front, loopback:
            core_at = (made.gateway("core"), core.getsockname()[1])
            front_at = (made.gateway("front"), front.getsockname()[1])
            edge, dispatcher, client = made["edge-0"], made["dispatcher"], made["client"]

            assert reaches(edge, *core_at) and reaches(edge, *front_at)
            assert reaches(dispatcher, *core_at) and not reaches(dispatcher, *front_at)
            assert reaches(client, *front_at) and not reaches(client, *core_at)
            for host in made.hosts.values():  # the root's loopback is not theirs
                assert not reaches(host, "127.0.0.1", loopback.getsockname()[1])
            # Hosts see each other on a shared network.
            assert client.address("front").startswith(made.gateway("front").rsplit(".", 1)[0])

            edge.cut("core")
            assert edge.state("core") == "bridge end DOWN, host end DOWN"
            assert not reaches(edge, *core_at, timeout=1.0)
            assert reaches(edge, *front_at)  # its other link stays
            edge.mend("core")
            assert edge.state("core") == "bridge end UP, host end UP"
            assert reaches(edge, *core_at, timeout=5.0)

        # A process of a host (ip netns exec execs it: the PID is its own) ends with it.
        sleeper = subprocess.Popen(
            [*dispatcher.exec_prefix, sys.executable, "-c", "import time; time.sleep(600)"]
        )
        for _ in range(50):
            if sleeper.pid in dispatcher.pids():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert sleeper.pid in dispatcher.pids()
    finally:
        made.close()
    assert sleeper is not None and sleeper.wait(timeout=10) == -9
    assert leftovers(made.tag) == []
