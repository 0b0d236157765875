"""One place that turns errors into RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import InvalidInput, PolicyRefused, RegistryError

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("mmgov.api")


def _slug(title: str) -> str:
    return "-".join(title.lower().replace("'", "").split())


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Return a problem response with ``type``, ``title``, ``status`` and ``detail``."""
    body: dict[str, Any] = {
        "type": f"urn:mmgov:problem:{_slug(title)}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _registry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput | PolicyRefused) and exc.errors:
        extra["errors"] = exc.errors
    return problem_response(exc.status, exc.title, exc.detail, headers=headers, **extra)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) if first["loc"] else "request"
    return problem_response(
        422, "Invalid input", f"{where}: {first['msg']}", errors=errors
    )


def _allowed_methods(request: Request) -> str:
    """Every method any route of the request's path accepts (a path has one route per method)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "HTTP error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(exc.status_code, title, detail, headers=headers or None)


_INTERNAL = json.dumps({
    "type": "urn:mmgov:problem:internal-server-error",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "an unexpected error; the server log has the details",
}).encode()


class UnexpectedErrors:
    """Turn an exception no handler claimed into a problem+json 500, keeping the connection.

    Starlette's outermost error middleware answers text/plain and re-raises, and uvicorn then
    closes a keep-alive connection; this one logs the traceback and does not re-raise.
    ``passthrough`` exceptions (the body-size refusal) go on to the middleware that owns them.
    """

    def __init__(
        self, app: ASGIApp, *, passthrough: tuple[type[BaseException], ...] = ()
    ) -> None:
        self.app = app
        self.passthrough = passthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or isinstance(exc, self.passthrough):
                raise
            _log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            await send({
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(_INTERNAL)).encode()),
                ],
            })
            await send({"type": "http.response.body", "body": _INTERNAL})


def install_problem_handlers(app: FastAPI) -> None:
    """Map RegistryError subclasses, validation errors and HTTP errors to problem responses."""
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "UnexpectedErrors",
    "install_problem_handlers",
    "problem_response",
]
