"""Each process with its own settings and commands: the SDK (``producers``) imports neither
server package, and each ``notify`` command reads and checks the settings of its own process.

Every check runs in a fresh interpreter, so that what an earlier test imported or read from
the environment (the settings are read once per process) cannot hide anything.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.tokens import SECRET

SDK_MODULES = (
    "producers",
    "producers.settings",
    "producers.envelope",
    "producers.catalog",
    "producers.service",
    "producers.cli",
)
CONTRACT_MODULES = ("producers.settings", "producers.envelope", "producers.catalog")
SERVER_PACKAGES = ("socket_edge", "dispatcher")
WEAK_SECRET = "a" * 40
# Neither service exists: a command that got past its settings would fail otherwise.
NO_SERVICES = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/notifications",
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
}


def _loaded_after(modules: tuple[str, ...], prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` (a package or its submodules) that
    importing ``modules`` in a fresh interpreter leaves in ``sys.modules``."""
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"prefixes = {prefixes!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules\n"
        "    if any(m == p or m.startswith(p + '.') for p in prefixes))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _notify(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producers.cli", *args],
        env={**os.environ, **NO_SERVICES, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_sdk_imports_no_server_package() -> None:
    assert _loaded_after(SDK_MODULES, SERVER_PACKAGES) == []


def test_the_contract_imports_no_broker_client() -> None:
    assert _loaded_after(CONTRACT_MODULES, ("aio_pika",)) == []


def test_the_help_lists_the_commands_of_every_process() -> None:
    done = _notify("--help")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.partition("Commands:")[2].split()
    for command in ("up", "send", "schema", "outbox-relay"):  # the SDK's own
        assert command in listed
    for command in ("migrate", "dispatcher", "rebuild", "prune", "dead-letters"):
        assert command in listed
    for command in ("edge", "listen", "token"):
        assert command in listed


EDGE = {"AUTH_JWT_SECRET": SECRET}
SEND = ("send", "--user", "alice", "--type", "system_alert")


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        (("edge",), {"AUTH_JWT_SECRET": WEAK_SECRET}, "auth_jwt_secret"),
        (("token", "--user", "alice"), {"AUTH_JWT_SECRET": WEAK_SECRET}, "auth_jwt_secret"),
        (("up",), {"AUTH_JWT_SECRET": WEAK_SECRET}, "auth_jwt_secret"),
        (("up",), {**EDGE, "DISPATCHER_BATCH_SIZE": "0"}, "dispatcher_batch_size"),
        (("dispatcher",), {"DISPATCHER_BATCH_WAIT_MS": "soon"}, "dispatcher_batch_wait_ms"),
        (SEND, {"PUBLISH_TIMEOUT": "0"}, "publish_timeout"),
        (("dispatcher",), {"AMQP_URL": "amqp://g:g@h1/,amqp://g:other@h2/"}, "amqp_url"),
        (("edge",), {**EDGE, "AMQP_URL": "amqp://g:g@h1/,,amqp://g:g@h2/"}, "amqp_url"),
        (SEND, {"AMQP_URL": "http://h1/"}, "amqp_url"),
    ],
)
def test_a_command_refuses_invalid_settings_of_its_process_in_one_line(
    args: tuple[str, ...], env: dict[str, str], variable: str
) -> None:
    done = _notify(*args, **env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: invalid configuration: {variable}: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_command_ignores_the_settings_of_the_other_process() -> None:
    """The edge's token command does not read the dispatcher's variables, and a dispatcher's
    command does not read the edge's: a bad value of one is no concern of the other."""
    minted = _notify("token", "--user", "alice", AUTH_JWT_SECRET=SECRET, DISPATCHER_BATCH_SIZE="0")
    assert minted.returncode == 0, minted.stderr
    assert minted.stdout.count(".") == 2  # a JWT: header.payload.signature
    listed = _notify("dead-letters", "list", AUTH_JWT_SECRET=WEAK_SECRET)
    assert "invalid configuration" not in listed.stderr
    assert "127.0.0.1:1" in listed.stderr  # it got as far as the (absent) broker
