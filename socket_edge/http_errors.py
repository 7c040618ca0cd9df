"""One shape for every refusal the edge answers over HTTP: a refused WebSocket handshake, a
refused REST call, a request the REST API cannot take.

    {"error": "<machine code>", "message": "<one readable sentence>"}

with the HTTP status telling the class (400, 401, 403, 404, 405, 413, 422, 429, 503). A 422
also lists the fields at fault under ``fields``. docs/websocket.md lists the codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from producers.envelope import describe_errors

# The code of a refusal that was raised with a plain message, by its status.
CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status, dict(headers or {}))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail: object = exc.detail
    if isinstance(detail, dict) and {"error", "message"} <= detail.keys():
        code, message = str(detail["error"]), str(detail["message"])
    else:
        code = CODES_BY_STATUS.get(exc.status_code, f"http_{exc.status_code}")
        message = str(detail)
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = describe_errors(exc.errors())
    body = {**error_body("invalid_request", "; ".join(fields)), "fields": fields}
    return JSONResponse(body, 422)


def install(app: FastAPI) -> None:
    """Answer every HTTP error and every invalid request of ``app`` in the one shape."""
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
