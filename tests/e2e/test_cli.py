"""The ``notify`` command as an operator uses it."""

from __future__ import annotations

import signal
import uuid

import pytest
from sqlalchemy.engine import make_url

from dispatcher.database import connect_to_server
from socket_edge.auth import Authenticator
from socket_edge.settings import EdgeSettings
from tests.support.cli import run_notify
from tests.support.processes import NotifyProcess, free_port

pytestmark = pytest.mark.e2e


async def test_send_prints_the_event_id_and_listen_prints_the_frame(
    process_env: dict[str, str], edge_url: str, user_id: str
) -> None:
    code, out, err = await run_notify(
        "send", "--user", user_id, "--type", "booking_confirmed",
        "-d", "booking_id=b1", "-d", "tour_name=Jerusalem Day Tour",
        env=process_env,
    )  # fmt: skip
    assert code == 0, err
    event_id = uuid.UUID(out.strip())

    code, out, err = await run_notify(
        "listen", "--user", user_id, "--url", edge_url, "--count", "1", env=process_env
    )
    assert code == 0, err
    lines = out.splitlines()
    assert '"type":"connection_established"' in lines[0]
    (frame,) = [line for line in lines if f'"id":"{event_id}"' in line]
    assert '"replayed":true' in frame


@pytest.mark.parametrize(
    ("command", "variable", "value", "expected"),
    [
        (
            ["send", "--user", "u1", "--type", "tour_started", "-d", "booking_id=b", "-d",
             "tour_name=T"],
            "AMQP_URL", "amqp://guest:secret@127.0.0.1:1/",
            "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/",
        ),
        (
            ["dispatcher"], "DATABASE_URL", "postgresql://postgres@127.0.0.1:1/notifications",
            "cannot reach PostgreSQL at postgresql+asyncpg://postgres@127.0.0.1:1/notifications",
        ),
        (
            ["edge", "--port", "0"], "AMQP_URL", "amqp://guest:guest@127.0.0.1:1/",
            "is it running",
        ),
        (
            ["send", "--user", "u1", "--type", "booking_created", "-d", "booking_id=b1"],
            "LOG_LEVEL", "info",
            "invalid event: data.tour_name: Field required",
        ),
    ],
)  # fmt: skip
async def test_errors_say_what_is_wrong_without_a_traceback(
    process_env: dict[str, str], command: list[str], variable: str, value: str, expected: str
) -> None:
    code, _, err = await run_notify(*command, env={**process_env, variable: value})
    assert code == 1
    assert expected in err
    assert "Traceback" not in err


async def test_up_runs_the_pipeline_and_stops_on_ctrl_c(
    process_env: dict[str, str], user_id: str
) -> None:
    from tests.support.client import ws_client

    port = free_port()
    up = NotifyProcess("notify up", ["up", "--port", str(port)], process_env)
    await up.start("Uvicorn running on")
    await up.wait_for_line("dispatcher consuming")
    async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
        assert client.replay_complete["type"] == "replay_complete"
    assert await up.stop(signal.SIGINT) == 0
    assert not any("Traceback" in line for line in up.lines)


async def test_the_edge_refuses_to_start_without_a_signing_key(
    process_env: dict[str, str],
) -> None:
    env = {k: v for k, v in process_env.items() if k != "AUTH_JWT_SECRET"}
    code, _, err = await run_notify("edge", "--port", "0", env=env, drop=("AUTH_JWT_SECRET",))
    assert code == 1
    assert "no AUTH_JWT_SECRET" in err and "notify up --dev" in err
    assert "Traceback" not in err


async def test_token_mints_what_the_edge_accepts(process_env: dict[str, str]) -> None:
    code, out, err = await run_notify(
        "token", "--user", "alice", "--rooms", "tour_*,agency_1", "--admin", env=process_env
    )
    assert code == 0, err
    principal = Authenticator(EdgeSettings(auth_jwt_secret=process_env["AUTH_JWT_SECRET"])).verify(
        out.strip()
    )
    assert principal.user_id == "alice" and principal.admin
    assert principal.rooms == ("tour_*", "agency_1")


@pytest.mark.parametrize("command", [["dispatcher"], ["edge", "--port", "0"]])
async def test_a_database_that_is_not_migrated_is_refused_at_start(
    process_env: dict[str, str], command: list[str]
) -> None:
    name = f"notify_test_bare_{uuid.uuid4().hex[:8]}"
    url = make_url(process_env["DATABASE_URL"]).set(database=name)
    server = await connect_to_server(process_env["DATABASE_URL"])
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        env = {**process_env, "DATABASE_URL": url.render_as_string(hide_password=False)}
        code, _, err = await run_notify(*command, env=env)
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()
    assert code == 1
    assert "schema revision none" in err and "run `notify migrate` first" in err
    assert "Traceback" not in err
