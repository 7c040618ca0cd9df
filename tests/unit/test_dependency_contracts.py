"""Where the edge leans on a dependency's internals, the installed dependency still has what
it leans on: an upgrade that breaks one fails here, naming it, instead of in production."""

from __future__ import annotations

import inspect

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server, ServerState

from producers.runner import version_in
from socket_edge import protocol, ws_protocol
from socket_edge.protocol import DeadlineHttpProtocol
from socket_edge.server import WS_PROTOCOL


def test_the_installed_uvicorn_is_one_the_edge_was_checked_with() -> None:
    assert version_in("uvicorn", *protocol.UVICORN_CHECKED)
    assert protocol.UVICORN_CHECKED == ws_protocol.UVICORN_CHECKED


def test_the_request_deadline_overrides_methods_uvicorn_still_calls() -> None:
    overridden = {
        name
        for name, member in vars(DeadlineHttpProtocol).items()
        if callable(member) and not name.startswith("_")
    }
    assert overridden == {
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_message_complete",
        "handle_websocket_upgrade",
    }
    source = inspect.getsource(HttpToolsProtocol)
    for name in overridden:
        assert callable(getattr(HttpToolsProtocol, name, None)), f"uvicorn lost {name}"
    # What the subclass reads of its base.
    for attribute in ("self.loop", "self.transport", "self.client"):
        assert attribute in source, f"uvicorn's httptools protocol has no {attribute}"
    # The parser calls on_message_begin/on_message_complete for each request, and an upgrade
    # goes through handle_websocket_upgrade.
    assert "self.handle_websocket_upgrade()" in source


def test_uvicorn_still_drives_a_websocket_protocol_the_way_the_edge_expects() -> None:
    """``EdgeWebSocket`` is made and fed by uvicorn's HTTP protocol and shut down by its server:
    the calls and the shared state it relies on are still there."""
    upgrade = inspect.getsource(HttpToolsProtocol.handle_websocket_upgrade)
    for call in (
        "self.ws_protocol_class(",
        "config=self.config",
        "server_state=self.server_state",
        "app_state=self.app_state",
        "protocol.connection_made(self.transport)",
        "self.transport.set_protocol(protocol)",
        "protocol.data_received(",
    ):
        assert call in upgrade, f"uvicorn's upgrade no longer does {call}"
    state = ServerState()
    for attribute in ("connections", "tasks", "default_headers"):
        assert hasattr(state, attribute), f"uvicorn's server state has no {attribute}"
    assert "connection.shutdown()" in inspect.getsource(Server)
    config = Config("socket_edge.app:create_app", ws=WS_PROTOCOL, interface="asgi3")
    for attribute in (
        "ws_max_size",
        "ws_per_message_deflate",
        "ws_ping_interval",
        "ws_ping_timeout",
        "root_path",
        "asgi_version",
        "loaded",
    ):
        assert hasattr(config, attribute), f"uvicorn's config has no {attribute}"
    assert callable(config.load) and config.asgi_version == "3.0"
    # The ``ws`` option names a class by import path, as the edge passes it.
    load = inspect.getsource(Config.load)
    assert "import_from_string(WS_PROTOCOLS.get(self.ws, self.ws))" in load
