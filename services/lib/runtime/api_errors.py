"""Errors of a service's HTTP API: `{error, message}` with a stable code, the
same shape the console answers its own clients with, so it can pass them on.

A malformed request is 422 `invalid-request` naming the fields, never echoing
the values sent: they may be personal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.lib.runtime.logging import get_logger

log = get_logger(__name__)

_CODES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "invalid-request",
    415: "invalid-request",
    422: "invalid-request",
}


class ApiError(Exception):
    """An answer for the caller: HTTP status, stable code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def field_problems(errors: Sequence[Any]) -> str:
    """`where: what` for each of pydantic's errors (at most ten), without the input."""
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: "
        f"{str(e.get('msg', 'invalid')).removeprefix('Value error, ')}"
        for e in errors
    ]
    return "; ".join(problems[:10])


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error of `app` as `{error, message}`."""

    async def api_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ApiError):
            raise TypeError(f"api_error got {type(exc).__name__}") from exc
        return error_response(exc.status, exc.code, exc.message)

    async def invalid(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise TypeError(f"invalid got {type(exc).__name__}") from exc
        return error_response(422, "invalid-request", field_problems(exc.errors()))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise TypeError(f"http_error got {type(exc).__name__}") from exc
        code = _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("request failed", path=request.url.path, error=type(exc).__name__)
        return error_response(500, "internal-error", "something went wrong; it is logged")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
