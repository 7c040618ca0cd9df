"""LOG_FORMAT=json on every process (docs/metrics.md, "Logs"): each line one JSON object, one
notification followed producer -> dispatcher -> edge by its event_id, and never a token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from producers.settings import Settings
from tests.support.cli import run_notify
from tests.support.client import ws_client
from tests.support.processes import start_dispatcher, start_edge
from tests.support.services import create_database, drop_database, own_vhost
from tests.support.tokens import token_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


def parsed(lines: list[str]) -> list[dict[str, object]]:
    """Every line as a JSON object with the four fields every line has."""
    records = []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    return records


async def test_json_logs_follow_one_notification_and_never_show_a_token(
    settings: Settings, vhost: str, process_env: dict[str, str], user_id: str
) -> None:
    database = await create_database(settings.database_url)
    env = {
        **process_env,
        "DATABASE_URL": database,
        "AMQP_URL": vhost,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "debug",
    }
    dispatcher = await start_dispatcher(env)
    edge, port = await start_edge(env)
    token = token_for(user_id)
    expired = token_for(user_id, ttl=-600)
    foreign = token_for("someone-else")
    try:
        for refused in (expired, foreign, "eyJnot.a.token"):
            with pytest.raises(InvalidStatus):
                async with ws_client(f"ws://127.0.0.1:{port}", user_id, token=refused):
                    pass
        async with ws_client(f"ws://127.0.0.1:{port}", user_id, token=token) as client:
            code, out, err = await run_notify(
                "send", "--user", user_id, "--type", "booking_confirmed",
                "-d", "booking_id=b1", "-d", "tour_name=Jerusalem",
                env=env,
            )  # fmt: skip
            assert code == 0, err
            event_id = out.strip()
            assert (await client.notification())["id"] == event_id
            await edge.wait_for_line(event_id)
        await dispatcher.wait_for_line(event_id)
    finally:
        await edge.stop()
        await dispatcher.stop()
        await drop_database(database)

    producer_lines = parsed(err.splitlines())
    dispatcher_lines = parsed(dispatcher.lines)
    edge_lines = parsed(edge.lines)

    def about(records: list[dict[str, object]]) -> list[dict[str, object]]:
        return [r for r in records if r.get("event_id") == event_id]

    published, stored, delivered = about(producer_lines), about(dispatcher_lines), about(edge_lines)
    assert published and stored and delivered, (published, stored, delivered)
    seq = stored[0]["seq"]
    assert isinstance(seq, int)
    assert delivered[0]["seq"] == seq
    assert {r["level"] for r in published + stored + delivered} == {"debug"}
    assert any(r["logger"] == "uvicorn.error" for r in edge_lines)

    everything = "\n".join([err, *dispatcher.lines, *edge.lines])
    for secret in (token, expired, foreign, "eyJnot.a.token"):
        assert secret not in everything
    assert "eyJ" not in everything
