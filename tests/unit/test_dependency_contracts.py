"""Where the edge leans on a dependency's internals, the installed dependency still has what
it leans on: an upgrade that breaks one fails here, naming it, instead of in production."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from producers.runner import version_in
from socket_edge import protocol, sinks
from socket_edge.protocol import DeadlineHttpProtocol


def test_the_installed_uvicorn_is_one_the_edge_was_checked_with() -> None:
    assert version_in("uvicorn", *protocol.UVICORN_CHECKED)
    assert protocol.UVICORN_CHECKED == sinks.UVICORN_CHECKED
    assert sinks._TRANSPORT_PATH, "the transport fast path is off for this uvicorn"


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


def test_the_transport_path_reads_what_the_sans_io_protocol_still_has() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for attribute in ("conn", "writable", "close_sent", "disconnected", "transport"):
        assert f"self.{attribute} " in source or f"self.{attribute}:" in source, (
            f"uvicorn's sans-I/O protocol has no {attribute}: the transport path needs it"
        )
    # The application is called with the protocol's bound ``send``: its ``__self__`` is the
    # protocol the transport path writes through.
    assert "self.app(self.scope, self.receive, self.send)" in source
