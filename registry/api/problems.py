"""One place that turns errors into RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from registry.errors import InvalidInput, PolicyRefused, RegistryError

PROBLEM_MEDIA_TYPE = "application/problem+json"


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


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "HTTP error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(exc.status_code, title, detail, headers=exc.headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Map RegistryError subclasses, validation errors and HTTP errors to problem responses."""
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


__all__ = ["PROBLEM_MEDIA_TYPE", "install_problem_handlers", "problem_response"]
