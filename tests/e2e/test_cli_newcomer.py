"""The ``notify`` command never leaves a newcomer stuck: a second ``notify up --dev``, a busy
port, a refused or expiring token, an unreachable edge and an unactivated venv each end in one
line that says what to do, or are handled without the user noticing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from socket_edge.auth import Authenticator, new_secret
from socket_edge.listen import BACKOFF_FIRST, BACKOFF_MAX
from socket_edge.settings import EdgeSettings
from tests.support.cli import run_notify
from tests.support.client import ws_client
from tests.support.processes import NOTIFY, NotifyProcess, free_port, start_edge
from tests.support.tokens import token_for

pytestmark = pytest.mark.e2e

# Variables a development session must not inherit from the environment of the tests.
NO_SECRET = ("AUTH_JWT_SECRET",)
EXIT_WAIT = 30.0
SCRIPT = Path(NOTIFY).absolute()


@pytest.fixture
def dev_env(process_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment of a ``notify up --dev`` session with a cache directory of its own."""
    env = {k: v for k, v in process_env.items() if k not in NO_SECRET}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def dev_files(env: dict[str, str]) -> tuple[Path, Path]:
    """The secret file and the lock file of the development session of ``env``."""
    folder = Path(env["XDG_CACHE_HOME"]) / "tour-notify"
    return folder / "dev-secret", folder / "dev.lock"


async def start_up(
    args: list[str],
    env: dict[str, str],
    *,
    drop: tuple[str, ...] = NO_SECRET,
    cwd: str | None = None,
) -> NotifyProcess:
    """``notify up ARGS`` with both of its processes ready; stopped by the caller."""
    up = NotifyProcess(f"notify up {' '.join(args)}", ["up", *args], env, drop=drop, cwd=cwd)
    try:
        await up.start("Uvicorn running on")
        await up.wait_for_line("dispatcher consuming")
    except BaseException:
        await up.stop()
        raise
    return up


@pytest.fixture
async def dev_pipeline(dev_env: dict[str, str]) -> AsyncIterator[tuple[NotifyProcess, int]]:
    port = free_port()
    up = await start_up(["--dev", "--port", str(port)], dev_env)
    try:
        yield up, port
    finally:
        assert await up.stop(signal.SIGINT) == 0


async def run_until_exit(proc: NotifyProcess, timeout: float = EXIT_WAIT) -> int:
    """Start a command that should end by itself; stop it (by its PID) if it does not."""
    await proc.start(None)
    try:
        return await proc.exited(timeout)
    finally:
        await proc.stop()


def dead_pid() -> int:
    """The pid of a process that has exited."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# -- one development session at a time ----------------------------------------------------


async def test_a_second_up_dev_fails_at_once_and_leaves_the_first_session_working(
    dev_env: dict[str, str], dev_pipeline: tuple[NotifyProcess, int], user_id: str
) -> None:
    first, port = dev_pipeline
    secret_path, lock_path = dev_files(dev_env)
    secret = secret_path.read_text()
    assert lock_path.read_text().strip() == str(first.pid)

    second = NotifyProcess(
        "second notify up --dev",
        ["up", "--dev", "--port", str(free_port())],
        dev_env,
        drop=NO_SECRET,
    )
    assert await run_until_exit(second) == 1
    (line,) = second.lines
    assert re.fullmatch(
        rf"Error: another `\S*notify up --dev` is running \(pid {first.pid}\): stop it first", line
    ), line
    assert secret_path.read_text() == secret

    # The first session's tokens still work, minted and used the way a newcomer would.
    code, out, err = await run_notify("token", "--user", user_id, env=dev_env, drop=NO_SECRET)
    assert code == 0, err
    async with ws_client(f"ws://127.0.0.1:{port}", user_id, token=out.strip()) as client:
        assert client.replay_complete["type"] == "replay_complete"
    listen = NotifyProcess(
        "notify listen",
        ["listen", "--user", user_id, "--url", f"ws://127.0.0.1:{port}", "--count", "1"],
        dev_env,
        drop=NO_SECRET,
    )
    try:
        await listen.start("replay_complete")
        code, out, err = await run_notify(
            "send", "--user", user_id, "--type", "booking_confirmed",
            "-d", "booking_id=b1", "-d", "tour_name=Masada", env=dev_env, drop=NO_SECRET,
        )  # fmt: skip
        assert code == 0, err
        assert await listen.exited() == 0
    finally:
        await listen.stop()
    assert not any("refused" in line for line in listen.lines)


async def test_only_the_session_holding_the_lock_removes_the_secret_and_a_stale_lock_does_not_block(
    dev_env: dict[str, str],
) -> None:
    secret_path, lock_path = dev_files(dev_env)
    lock_path.parent.mkdir(parents=True)
    # What a session killed with SIGKILL leaves behind: a lock file naming a dead process.
    lock_path.write_text(f"{dead_pid()}\n")
    up = await start_up(["--dev", "--port", str(free_port())], dev_env)
    try:
        assert lock_path.read_text().strip() == str(up.pid)
        assert secret_path.exists()
    finally:
        assert await up.stop(signal.SIGINT) == 0
    assert not secret_path.exists()

    # With AUTH_JWT_SECRET set, --dev generates nothing: a secret it did not write stays.
    secret_path.write_text(new_secret())
    configured = {**dev_env, "AUTH_JWT_SECRET": new_secret()}
    up = await start_up(["--dev", "--port", str(free_port())], configured, drop=())
    assert await up.stop(signal.SIGINT) == 0
    assert secret_path.exists()


# -- notify listen and its tokens ---------------------------------------------------------


async def test_listen_in_dev_mode_renews_its_token_before_it_expires(
    dev_env: dict[str, str], dev_pipeline: tuple[NotifyProcess, int], user_id: str
) -> None:
    _, port = dev_pipeline
    loop = asyncio.get_running_loop()
    listen = NotifyProcess(
        "notify listen",
        ["listen", "--user", user_id, "--url", f"ws://127.0.0.1:{port}", "--token-ttl", "5"],
        dev_env,
        drop=NO_SECRET,
    )
    try:
        await listen.start("replay_complete")
        connected = loop.time()
        await listen.wait_for_line("# token renewed")
        renewed = loop.time()
        await listen.wait_for_lines("replay_complete", 2)
        code, out, err = await run_notify(
            "send", "--user", user_id, "--type", "booking_confirmed",
            "-d", "booking_id=b2", "-d", "tour_name=Masada", env=dev_env, drop=NO_SECRET,
        )  # fmt: skip
        assert code == 0, err
        await listen.wait_for_line(f'"id":"{out.strip()}"')
    finally:
        await listen.stop()
    # Renewed before the edge had to close the socket, and not in a tight loop: the token
    # lives 4-5 s (its exp is a whole second) and is replaced a fifth of that before.
    assert 2.0 <= renewed - connected <= 6.0, renewed - connected
    assert not [line for line in listen.lines if "1008" in line or "refused" in line]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("bad", "handshake refused with HTTP 401 invalid_token (the token is not valid"),
        ("other-user", "handshake refused with HTTP 403 wrong_user (the token belongs to"),
        # Past its exp but within the edge's leeway: accepted, then closed with 1008.
        ("in-leeway", "closed with 1008 (token expired)"),
    ],
)
async def test_listen_stops_with_the_reason_when_a_given_token_is_refused(
    process_env: dict[str, str], edge_url: str, user_id: str, how: str, expected: str
) -> None:
    token = {
        "bad": "not-a-token",
        "other-user": token_for("somebody-else"),
        # exp is now (whole seconds): past it at the handshake, well within the leeway.
        "in-leeway": token_for(user_id, ttl=0),
    }[how]
    listen = NotifyProcess(
        "notify listen",
        ["listen", "--user", user_id, "--url", edge_url],
        {**process_env, "NOTIFY_TOKEN": token},
    )
    assert await run_until_exit(listen) == 1
    (error,) = [line for line in listen.lines if line.startswith("error:")]
    assert error.startswith(f"error: {expected}"), error
    assert "The token given with --token or NOTIFY_TOKEN is refused" in error
    assert f"token --user {user_id}` mints one" in error
    assert len([line for line in listen.lines if "connection_established" in line]) <= 1


async def test_a_minted_token_that_is_refused_is_minted_once_more_then_listen_stops(
    process_env: dict[str, str], edge_url: str, user_id: str
) -> None:
    # A signing secret that is not the edge's.
    env = {**process_env, "AUTH_JWT_SECRET": new_secret()}
    listen = NotifyProcess("notify listen", ["listen", "--user", user_id, "--url", edge_url], env)
    assert await run_until_exit(listen) == 1
    refusals = [line for line in listen.lines if "HTTP 401 invalid_token" in line]
    assert len(refusals) == 2, listen.lines
    assert refusals[0].startswith("# handshake refused with HTTP 401 invalid_token (")
    assert "; minting a new token and reconnecting in " in refusals[0]
    assert refusals[1].startswith("error: handshake refused with HTTP 401 invalid_token (")
    assert ", again with a freshly minted token. The secret it is signed with" in refusals[1]


async def test_listen_stops_at_once_when_the_handshake_is_refused_for_a_bad_parameter(
    process_env: dict[str, str], edge_url: str
) -> None:
    listen = NotifyProcess(
        "notify listen", ["listen", "--user", "not a user id", "--url", edge_url], process_env
    )
    assert await run_until_exit(listen) == 1
    # One line, and no reconnecting: the same request would be refused again.
    (line,) = listen.lines
    assert line.startswith(
        "error: handshake refused with HTTP 400 invalid_parameter (user_id must be"
    ), line


RECONNECTING = re.compile(r"; reconnecting in (\d+\.\d)s$")


async def test_listen_backs_off_exponentially_with_jitter_up_to_the_documented_cap(
    process_env: dict[str, str], user_id: str
) -> None:
    nothing_there = f"ws://127.0.0.1:{free_port()}"
    listen = NotifyProcess(
        "notify listen", ["listen", "--user", user_id, "--url", nothing_there], process_env
    )
    try:
        await listen.start(None)
        # Attempt 5 is the first whose ceiling is the cap (0.5 s doubled five times > 15 s).
        lines = await listen.wait_for_lines("reconnecting in", 6)
    finally:
        await listen.stop()
    for attempt, line in enumerate(lines):
        match = RECONNECTING.search(line)
        assert match is not None and "connection to" in line, line
        ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
        # Printed with one decimal: allow for its rounding.
        assert ceiling / 2 - 0.05 <= float(match[1]) <= ceiling, (attempt, line)


async def test_listen_reconnects_after_the_edge_restarts(
    process_env: dict[str, str], dispatcher_process: NotifyProcess, user_id: str
) -> None:
    edge, port = await start_edge(process_env)
    listen = NotifyProcess(
        "notify listen", ["listen", "--user", user_id, "--url", f"ws://127.0.0.1:{port}"],
        process_env,
    )  # fmt: skip
    try:
        await listen.start("replay_complete")
        assert await edge.stop() == 0  # a graceful stop closes every socket with 1012
        await listen.wait_for_line("# closed with 1012")
        edge, _ = await start_edge(process_env, port)
        await listen.wait_for_lines("replay_complete", 2)
    finally:
        await listen.stop()
        await edge.stop()
    assert not [line for line in listen.lines if line.startswith("error:")]


# -- a busy port --------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", [["up"], ["up", "--dev"], ["edge"]])
async def test_a_busy_port_is_one_line_naming_it_before_anything_starts(
    process_env: dict[str, str], dev_env: dict[str, str], busy_port: int, command: list[str]
) -> None:
    dev = "--dev" in command
    proc = NotifyProcess(
        f"notify {' '.join(command)}",
        [*command, "--port", str(busy_port)],
        dev_env if dev else process_env,
        drop=NO_SECRET if dev else (),
    )
    assert await run_until_exit(proc) == 1
    errors = [line for line in proc.lines if "Error" in line or "error" in line]
    assert errors == [
        f"Error: port {busy_port} on 127.0.0.1 is already in use: stop what is listening "
        "there, or choose another port with --port"
    ], proc.lines
    assert not [line for line in proc.lines if "pipeline up" in line or "Traceback" in line]
    assert not dev_files(dev_env)[0].exists()


# -- notify token -------------------------------------------------------------------------


async def test_token_admin_needs_no_user_and_without_admin_user_is_required(
    process_env: dict[str, str],
) -> None:
    code, out, err = await run_notify("token", "--admin", env=process_env)
    assert code == 0, err
    principal = Authenticator(EdgeSettings(auth_jwt_secret=process_env["AUTH_JWT_SECRET"])).verify(
        out.strip()
    )
    assert principal.user_id == "admin" and principal.admin

    code, out, err = await run_notify("token", "--rooms", "tour_*", env=process_env)
    assert code == 2 and out == ""
    assert "Error: Missing option '--user'." in err


# -- naming the command as the user can run it --------------------------------------------


@pytest.mark.parametrize("where", ["on-path", "venv-not-activated", "far-away"])
async def test_up_names_the_command_as_the_user_can_run_it(
    dev_env: dict[str, str], tmp_path: Path, where: str
) -> None:
    script = SCRIPT
    bin_dir = script.parent
    system_path = "/usr/local/bin:/usr/bin:/bin"
    if where == "on-path":
        cwd, path, expected = str(tmp_path), f"{bin_dir}{os.pathsep}{system_path}", "notify"
    elif where == "venv-not-activated":
        # From the project directory: the venv's script by its relative path.
        cwd, path = str(script.parents[2]), system_path
        expected = os.path.join(*script.parts[-3:])
    else:
        deep = tmp_path / "a" / "b" / "c" / "d" / "e"
        deep.mkdir(parents=True)
        cwd, path, expected = str(deep), system_path, str(script)
    up = await start_up(["--dev", "--port", str(free_port())], {**dev_env, "PATH": path}, cwd=cwd)
    assert await up.stop(signal.SIGINT) == 0
    output = "\n".join(up.lines)
    assert f"Mint a token with: {expected} token --user alice" in output, output
    assert f"Try it: {expected} listen --user alice --url ws://127.0.0.1:" in output, output
    assert f"in another terminal {expected} send --user alice" in output, output


async def test_listen_stopped_with_ctrl_c_says_goodbye_with_1001_not_a_server_error(
    process_env: dict[str, str], user_id: str
) -> None:
    edge, port = await start_edge(process_env)
    try:
        for _ in range(3):
            listen = NotifyProcess(
                "notify listen",
                ["listen", "--user", user_id, "--url", f"ws://127.0.0.1:{port}"],
                {**process_env, "NOTIFY_TOKEN": token_for(user_id)},
            )
            await listen.start("replay_complete")
            await listen.stop(signal.SIGINT)
        # The edge logs a close only when it is not a normal one (1000, 1001, no status); a
        # client gone with 1011 would be "closed by the client with code 1011".
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            await client.send({"action": "ping"})
            await client.expect("pong")  # every earlier close has been handled by now
    finally:
        await edge.stop()
    assert not [line for line in edge.lines if "closed by the client" in line or "lost" in line]
