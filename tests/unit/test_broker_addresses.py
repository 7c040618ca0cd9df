"""AMQP_URL as a list of cluster nodes: what is accepted, what is refused and why, how it is
shown in logs, and the order in which a connection tries the nodes."""

from __future__ import annotations

import inspect

import pytest
from aio_pika.robust_connection import RobustConnection
from pydantic import ValidationError
from yarl import URL

from producers.broker import ATTEMPT_METHOD, FailoverConnection
from producers.envelope import describe
from producers.settings import Settings, amqp_urls, redact

A = "amqp://app:secret@rabbit-a:5672/notify"
B = "amqp://app:secret@rabbit-b:5672/notify"


def test_one_url_is_one_address() -> None:
    assert amqp_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


def test_a_comma_separated_list_is_every_node_in_order() -> None:
    assert amqp_urls(f"{A}, {B}") == [A, B]
    assert Settings(amqp_url=f"{A},{B}").amqp_url == f"{A},{B}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"{A},,{B}", "an empty address"),
        (f"{A},amqp://app:other@rabbit-b/notify", "differs from the first address"),
        (f"{A},amqp://app:secret@rabbit-b/other", "differs from the first address"),
        (f"{A},http://rabbit-b/notify", "not an amqp:// or amqps:// URL"),
        (f"{A},amqp://app:secret@rabbit-b:port/notify", "invalid port"),
        ("rabbit-a:5672", "not an amqp:// or amqps:// URL"),
    ],
)
def test_an_invalid_list_is_refused_naming_the_address_without_its_password(
    value: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(amqp_url=value)
    message = describe(caught.value)  # the line a process prints (runner.load_settings)
    assert message.startswith("amqp_url: ") and reason in message
    assert "secret" not in message and "other@" not in message


def test_every_password_of_a_list_is_redacted() -> None:
    assert redact(f"{A},{B}") == f"{A.replace('secret', '***')},{B.replace('secret', '***')}"


def test_the_connection_wraps_the_attempt_aio_pikas_reconnection_loop_makes() -> None:
    """aio-pika's robust connection makes each attempt in a private method; the failover
    connection replaces it under that name. An aio-pika without it fails here."""
    assert hasattr(RobustConnection, ATTEMPT_METHOD)
    loop_source = inspect.getsource(RobustConnection)
    assert "await self.__connect_transport()" in loop_source
    assert getattr(FailoverConnection, ATTEMPT_METHOD) is FailoverConnection._failover_attempt


async def test_each_attempt_tries_the_nodes_from_the_one_after_the_last_used() -> None:
    addresses = [URL(f"amqp://g:g@node-{i}:5672/") for i in range(3)]
    connection = FailoverConnection(addresses[0], addresses)
    tried: list[str] = []
    up = {"node-2"}

    async def attempt() -> None:
        tried.append(str(connection.url.host))
        if connection.url.host not in up:
            raise ConnectionError("refused")

    setattr(RobustConnection, ATTEMPT_METHOD + "_saved", getattr(RobustConnection, ATTEMPT_METHOD))
    try:
        setattr(RobustConnection, ATTEMPT_METHOD, lambda self: attempt())
        await connection._failover_attempt()
        assert tried == ["node-0", "node-1", "node-2"]
        up = {"node-0", "node-1"}  # node-2 is lost: the next attempt starts after it
        tried.clear()
        await connection._failover_attempt()
        assert tried == ["node-0"]
        up = set()
        tried.clear()
        with pytest.raises(ConnectionError):
            await connection._failover_attempt()
        assert tried == ["node-1", "node-2", "node-0"]
    finally:
        setattr(
            RobustConnection, ATTEMPT_METHOD, getattr(RobustConnection, ATTEMPT_METHOD + "_saved")
        )
        delattr(RobustConnection, ATTEMPT_METHOD + "_saved")
