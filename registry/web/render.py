"""Jinja2 templates of the web UI, their filters, and the headers every page carries."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from html import escape
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from registry.web.charts import render_chart

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Pages load only the package's own assets; no inline script or style (so nothing else runs)."""


def timestamp(value: datetime | None) -> Markup:
    """Render a time as UTC in a ``<time>`` element; the page's script shows it in local time."""
    if value is None:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(  # noqa: S704 — both values are escaped
        f'<time datetime="{escape(utc.isoformat())}" title="{escape(text)}">{escape(text)}</time>'
    )


def short_hash(value: str | None, n: int = 12) -> Markup:
    """Render the first ``n`` characters of a hash, the whole hash on hover."""
    if not value:
        return Markup("—")
    return Markup(  # noqa: S704 — escaped
        f'<code title="{escape(value)}">{escape(value[:n])}</code>'
    )


def human_bytes(value: int | None) -> str:
    """Return a size in B/KiB/MiB/GiB (— when unknown)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@cache
def environment() -> Environment:
    """Return the templates' environment (built once: templates compile on first use)."""
    env = Environment(
        loader=PackageLoader("registry.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ts=timestamp, short=short_hash, bytes=human_bytes, chart=render_chart)
    return env


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render ``template`` with ``context`` (plus the request and its flash message)."""
    values = {"request": request, "done": request.query_params.get("done"), **context}
    values.setdefault("user", None)
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers={
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    })


def render_error(request: Request, status: int, detail: str, user: Any) -> HTMLResponse:
    """Render the error page: what went wrong and where to go next."""
    return render(request, "error.html", {"status": status, "detail": detail, "user": user},
                  status_code=status)


__all__ = ["CSP", "environment", "human_bytes", "render", "render_error", "short_hash",
           "timestamp"]
