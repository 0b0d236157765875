"""Static assets and the API docs, served from the package (offline: no CDN, no web font).

Swagger UI (Apache-2.0) and ReDoc (MIT) come from the `fastapi-offline` package (MIT), which
ships their bundles; the UI's own stylesheet and script are in ``registry/web/static``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, Response

from registry.api.deps import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])
STATIC = "/static"
_MEDIA = {".css": "text/css", ".js": "text/javascript", ".png": "image/png",
          ".svg": "image/svg+xml"}


def _docs_dir() -> Path:
    import fastapi_offline  # only its files are used

    return Path(fastapi_offline.__file__).parent / "static"


def _files() -> dict[str, Path]:
    """Every file `/static/{name}` may serve: a fixed list, so no path reaches elsewhere."""
    own = Path(str(resources.files("registry.web") / "static"))
    found = {p.name: p for p in own.iterdir() if p.suffix in _MEDIA}
    docs = _docs_dir()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js",
                 "favicon.png"):
        found[name] = docs / name
    return found


_FILES = _files()
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one URL off the server in ReDoc's bundle (its footer logo); served as our favicon."""
_CACHE = {"Cache-Control": "public, max-age=86400"}


@cache
def _redoc_bundle() -> bytes:
    return _FILES["redoc.standalone.js"].read_bytes().replace(REDOC_LOGO, b"/static/favicon.png")


@router.get(STATIC + "/{name}")
def static_file(name: str) -> Response:
    """One packaged asset (cached for a day; the names are fixed)."""
    path = _FILES.get(name)
    if path is None:
        raise HTTPException(404, f"no static file {name!r}")
    if name == "redoc.standalone.js":
        return Response(_redoc_bundle(), media_type=_MEDIA[".js"], headers=_CACHE)
    return FileResponse(path, media_type=_MEDIA[path.suffix], headers=_CACHE)


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    """Swagger UI of the admin API, from packaged assets."""
    return get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url), title="mmgov admin API — Swagger UI",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> Response:
    """ReDoc of the admin API, from packaged assets (no Google fonts)."""
    return get_redoc_html(
        openapi_url=str(request.app.openapi_url), title="mmgov admin API — ReDoc",
        redoc_js_url=f"{STATIC}/redoc.standalone.js", redoc_favicon_url=f"{STATIC}/favicon.png",
        with_google_fonts=False,
    )


__all__ = ["STATIC", "router"]
