"""The handshake parameters of the two WebSocket paths, checked before anything else."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from socket_edge.routes_ws import BadParameter, SessionParams, session_params


def test_connect_takes_its_parameters_from_the_query() -> None:
    query = QueryParams("user_id=u-1&device_type=ios&app_version=2.1&since=40")
    assert session_params("/ws/connect", query) == SessionParams("u-1", "ios", "2.1", 40, True)
    assert session_params("/ws/connect", QueryParams("user_id=u-1")) == SessionParams(
        "u-1", "unknown", None, None, True
    )


def test_the_notifications_path_takes_the_user_from_the_path() -> None:
    params = session_params("/ws/notifications/agent:7", QueryParams("since=0"))
    assert params == SessionParams("agent:7", "unknown", None, 0, False)


@pytest.mark.parametrize(
    ("path", "query", "complaint"),
    [
        ("/ws/connect", "", "user_id is required"),
        ("/ws/connect", "user_id=not%20valid", "user_id must be"),
        ("/ws/connect", "user_id=" + "x" * 129, "user_id must be"),
        ("/ws/connect", "user_id=u&device_type=" + "d" * 33, "device_type must be"),
        ("/ws/connect", "user_id=u&app_version=" + "v" * 33, "app_version must be"),
        ("/ws/connect", "user_id=u&since=-1", "since must be"),
        ("/ws/connect", "user_id=u&since=abc", "since must be"),
        ("/ws/notifications/a%2Fb", "", "user_id must be"),  # a % is no id character
    ],
)
def test_a_bad_parameter_is_named(path: str, query: str, complaint: str) -> None:
    with pytest.raises(BadParameter, match=complaint):
        session_params(path, QueryParams(query))


@pytest.mark.parametrize("path", ["/ws/stats", "/ws/notifications/a/b", "/ws/connect/x", "/"])
def test_other_paths_are_not_socket_sessions(path: str) -> None:
    assert session_params(path, QueryParams("user_id=u")) is None
