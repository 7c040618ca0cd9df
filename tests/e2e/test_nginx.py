"""compose/nginx.conf, for real: Debian's nginx in front of two ``notify edge`` processes.

The committed configuration is rendered for free ports and a temporary directory (its pid
file, logs and temp paths), and nginx runs as a foreground child process (``daemon off``),
stopped by its PID. Through it: sockets and REST work; the edge sees the client's address
only when nginx is one of its TRUSTED_PROXIES; the access log holds no token; and when one
edge is stopped with SIGTERM, its clients reconnect through nginx to the other and get every
notification exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from producers import topology
from producers.service import NotificationService
from tests.support.client import Client, personal, ws_client
from tests.support.deliveries import RoundRobin, watch_deliveries
from tests.support.nginx import render as render_nginx
from tests.support.processes import NotifyProcess, free_port, start_edge
from tests.support.tokens import admin_headers, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

INSTALL_TIMEOUT = 600
# The client's own loopback address, so that it differs from nginx's (127.0.0.1).
CLIENT_ADDRESS = "127.0.0.7"
DRAIN = 2.0


def nginx_binary() -> str:
    """Debian's nginx, installed with apt-get when it is missing; else the test is skipped."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("nginx is not installed, and apt-get (as root) is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"],
        ):
            subprocess.run(
                command, env=env, check=True, capture_output=True, timeout=INSTALL_TIMEOUT
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"nginx is not installed and could not be installed with apt-get: {exc}")
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        pytest.skip("apt-get installed no nginx binary")
    return found


@dataclass
class Stack:
    url: str  # http://127.0.0.1:PORT, nginx
    edges: list[tuple[NotifyProcess, int]]
    node_ids: list[str]
    directory: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def access_log(self) -> str:
        return (self.directory / "access.log").read_text()


async def node_id_of(edge: NotifyProcess) -> str:
    line = await edge.wait_for_line("edge node")
    return line.split("edge node ", 1)[1].split()[0]


@contextlib.asynccontextmanager
async def nginx_stack(
    process_env: dict[str, str], tmp_path: Path, trusted: list[str]
) -> AsyncIterator[Stack]:
    """nginx on a free port in front of two edges; ``trusted[i]``: edge i's TRUSTED_PROXIES."""
    binary = nginx_binary()
    edges: list[tuple[NotifyProcess, int]] = []
    nginx: asyncio.subprocess.Process | None = None
    try:
        for proxies in trusted:
            env = {**process_env, "TRUSTED_PROXIES": proxies, "EDGE_DRAIN_SECONDS": str(DRAIN)}
            edges.append(await start_edge(env))
        port = free_port()
        config = render_nginx(
            tmp_path,
            f"127.0.0.1:{port}",
            [f"127.0.0.1:{p}" for _, p in edges],
            worker_connections=1024,
        )
        args = [binary, "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log")]
        check = await asyncio.create_subprocess_exec(
            *args, "-t", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(check.communicate(), 30)
        assert check.returncode == 0, out.decode()
        nginx = await asyncio.create_subprocess_exec(
            *args, "-g", "daemon off;", stdin=asyncio.subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=5) as http:
            for _ in range(100):  # until nginx listens (it says nothing when it does)
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                assert nginx.returncode is None, (tmp_path / "error.log").read_text()
                await asyncio.sleep(0.05)
        node_ids = [await node_id_of(edge) for edge, _ in edges]
        yield Stack(url, edges, node_ids, tmp_path)
    finally:
        if nginx is not None and nginx.returncode is None:
            nginx.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                await asyncio.wait_for(nginx.wait(), 10)
            except TimeoutError:
                nginx.kill()
                await nginx.wait()
        for edge, _ in edges:
            await edge.stop()


@contextlib.asynccontextmanager
async def client_from(address: str, base_url: str, user_id: str) -> AsyncIterator[Client]:
    """A client whose socket comes from ``address`` (a loopback address of its own)."""
    query = urlencode({"user_id": user_id, "token": token_for(user_id)})
    async with connect(
        f"{base_url}/ws/connect?{query}", open_timeout=10, max_queue=None, local_addr=(address, 0)
    ) as ws:
        client = Client(ws)
        await client.handshake()
        yield client


async def test_sockets_and_rest_go_through_nginx_and_its_log_holds_no_token(
    process_env: dict[str, str],
    tmp_path: Path,
    service: NotificationService,
    user_id: str,
) -> None:
    async with nginx_stack(process_env, tmp_path, ["127.0.0.1", "127.0.0.1"]) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["node_id"] in stack.node_ids
            assert (await http.get("/metrics")).status_code == 404  # scraped on each edge
            async with ws_client(stack.ws_url, user_id) as client:  # token in the query string
                event_id = await service.notify(
                    "chat_message",
                    user_id=user_id,
                    data={"conversation_id": "c", "sender_id": "g", "preview": "via nginx"},
                )
                assert (await client.notification(timeout=10))["id"] == str(event_id)
            headers = {"Authorization": f"Bearer {token_for(user_id)}"}
            history = await http.get(f"/api/users/{user_id}/notifications", headers=headers)
            assert history.status_code == 200, history.text
            assert str(event_id) in history.text
            refused = await http.get(f"/api/users/{user_id}/notifications")
            assert refused.status_code == 401
            # The query string (with its token) is read, and never logged.
            token = token_for(user_id)
            query = await http.get(f"/api/users/{user_id}/notifications?token={token}")
            assert query.status_code in (200, 401)
        log = stack.access_log()
    assert 'GET /ws/connect HTTP/1.1" 101' in log, log
    assert f'GET /api/users/{user_id}/notifications HTTP/1.1" 200' in log, log
    assert "token" not in log and "eyJ" not in log, log  # no JWT, no query string


async def test_the_edge_sees_the_clients_address_only_when_nginx_is_trusted(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    # Edge 0 names nginx (127.0.0.1) in TRUSTED_PROXIES; edge 1 names another proxy only.
    async with nginx_stack(process_env, tmp_path, ["127.0.0.1", "10.255.255.1"]) as stack:
        seen: dict[str, str] = {}
        async with contextlib.AsyncExitStack() as clients:
            # least_conn: as the sockets stay open, they land on both edges.
            users = [f"x-{uuid.uuid4().hex[:8]}" for _ in range(4)]
            for user in users:
                await clients.enter_async_context(client_from(CLIENT_ADDRESS, stack.ws_url, user))
            async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
                for user in users:
                    connection = await the_connection(http, user)
                    seen[connection["node_id"]] = connection["remote_address"].rsplit(":", 1)[0]
    trusting, distrusting = stack.node_ids
    assert seen == {trusting: CLIENT_ADDRESS, distrusting: "127.0.0.1"}, seen


class Roamer:
    """A client that reconnects through nginx with ``since`` whenever it is closed, and keeps
    every notification id it gets, in order, and the close codes it saw."""

    def __init__(self, base_url: str, user_id: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self.ids: list[str] = []
        self.cursor: int | None = None
        self.codes: list[int | None] = []
        self.changed = asyncio.Event()

    def take(self, frames: list[dict[str, Any]]) -> None:
        for frame in personal(frames):
            self.ids.append(frame["id"])
            self.cursor = max(self.cursor or 0, frame["seq"])
        self.changed.set()

    async def run(self, first: asyncio.Event) -> None:
        while True:
            async with ws_client(self.base_url, self.user_id, since=self.cursor) as client:
                self.take(client.replayed)
                if self.cursor is None:
                    self.cursor = client.replay_complete["data"]["last_seq"]
                first.set()
                try:
                    while True:
                        self.take([await client.recv(timeout=3600)])
                except ConnectionClosed as closed:
                    self.codes.append(closed.rcvd.code if closed.rcvd is not None else None)

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.ids) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_sigterm_of_one_edge_moves_its_clients_through_nginx_to_the_other(
    process_env: dict[str, str],
    tmp_path: Path,
    service: NotificationService,
    amqp: AbstractRobustConnection,
) -> None:
    users = [f"n-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    async with nginx_stack(process_env, tmp_path, ["127.0.0.1", "127.0.0.1"]) as stack:
        roamers = [Roamer(stack.ws_url, u) for u in users]
        ready = [asyncio.Event() for _ in roamers]
        tasks = [asyncio.create_task(r.run(e)) for r, e in zip(roamers, ready, strict=True)]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)
            (stopping, _), _ = stack.edges
            before = await placement(stack, users)
            on_stopping = {u for u, node in before.items() if node == stack.node_ids[0]}
            assert on_stopping, "least_conn put no socket on the first edge"
            async with watch_deliveries(amqp, *(topology.user_key(u) for u in users)) as seen:
                rounds = RoundRobin(service, users, seen)
                sent = rounds.sent
                await rounds.round(0)
                os.kill(stopping.pid, signal.SIGTERM)
                for i in range(1, 5):  # during the switch
                    await rounds.round(i)
                    await asyncio.sleep(DRAIN / 4)  # rounds spread over the drain window
                assert await stopping.exited(timeout=DRAIN + 15) == 0
                await rounds.round(5)  # after it
            for roamer in roamers:
                await roamer.wait_for(len(sent[roamer.user_id]), timeout=15)
            # Nobody is left on the stopped edge: every socket is on the other one.
            after = await placement(stack, users)
            assert set(after.values()) == {stack.node_ids[1]}, after
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    moved = [r for r in roamers if r.user_id in on_stopping]
    assert all(r.codes == [1012] for r in moved), [(r.user_id, r.codes) for r in moved]
    stayed = [(r.user_id, r.codes) for r in roamers if r.user_id not in on_stopping]
    assert all(codes == [] for _, codes in stayed), stayed
    for roamer in roamers:  # each notification exactly once, in order
        assert roamer.ids == sent[roamer.user_id], roamer.user_id


async def the_connection(http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    """The one socket of ``user``, as the admin endpoint describes it. The endpoint asks
    every edge and takes the answers that come within its wait: under load one may come
    late, so a user not found on exactly one edge is asked about again."""
    for _ in range(10):
        answer = await http.get(f"/ws/users/{user}/connections", headers=admin_headers())
        assert answer.status_code == 200, answer.text
        connections: list[dict[str, Any]] = answer.json()["connections"]
        if len(connections) == 1:
            return connections[0]
    raise AssertionError(f"{user}'s socket was not found on exactly one edge")


async def placement(stack: Stack, users: list[str]) -> dict[str, str]:
    """The edge (node id) of each user's one socket."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        return {user: (await the_connection(http, user))["node_id"] for user in users}
