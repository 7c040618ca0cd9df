"""The REST API's door: who is calling, and how much they may send, decided before a byte of
the request body is read.

FastAPI reads and parses a request's body before it resolves the route's dependencies, so a
token checked in a dependency comes too late: an unauthenticated client could make the edge
read, buffer and parse a body of any size. ``RestGuard`` sits in front of the routes and

- refuses a body larger than ``HTTP_MAX_BODY_BYTES`` with 413: at once when its
  ``Content-Length`` says so, and as soon as a streamed (chunked) body passes the limit;
- verifies the token of every call to the REST API (``/api/...`` and the ``/ws/...`` admin
  endpoints) and refuses a missing or invalid one with 401, with the body unread. The
  principal it verified is what the routes' dependencies authorise (``routes_api.caller``).

The health probes and, when enabled, the API docs need no token.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socket_edge.auth import AuthError, token_from
from socket_edge.http_errors import error_body, error_response

PRINCIPAL_KEY = "principal"
AUTHENTICATED_PREFIXES = ("/api/", "/ws/")


class BodyTooLarge(HTTPException):
    """Raised from the body stream when it passes the limit: the route's body parsing lets an
    HTTPException through, and the error handlers answer it in the usual shape."""

    def __init__(self, limit: int) -> None:
        message = f"the request body is larger than {limit} bytes"
        super().__init__(413, error_body("body_too_large", message), {"Connection": "close"})


class RestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        edge: Any = scope["app"].state.edge
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            await error_response(400, "bad_request", "Content-Length is not a number")(
                scope, receive, send
            )
            return
        if declared is not None and int(declared) > self.max_body_bytes:
            edge.refuse("body_too_large")
            await self._too_large(scope, receive, send)
            return
        if scope["path"].startswith(AUTHENTICATED_PREFIXES) and scope["method"] != "OPTIONS":
            token, _ = token_from(QueryParams(scope["query_string"]), headers)
            try:
                principal = edge.auth.verify(token)
            except AuthError as refusal:
                edge.refuse(refusal.code)
                response = error_response(
                    refusal.status, refusal.code, refusal.reason, {"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        await self._with_capped_body(scope, receive, send, edge)

    async def _with_capped_body(
        self, scope: Scope, receive: Receive, send: Send, edge: Any
    ) -> None:
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    edge.refuse("body_too_large")
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:  # read outside the routes' own error handling
            if not started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
            {"Connection": "close"},
        )
        await response(scope, receive, send)
