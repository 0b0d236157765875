"""Request dependencies: the database, and the authorisation rule every route must declare.

Fail closed: a route gets an actor only through one of the rule dependencies below, and
`create_app` refuses to build an app with a route that declares no rule (see `rule_of`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from registry import service
from registry.api.settings import ApiSettings
from registry.db import Database
from registry.errors import PermissionDenied, Unauthenticated
from registry.schemas import Actor
from registry.web.session import SESSION_COOKIE, SessionSigner

T = TypeVar("T")

LOCAL_ADMIN = Actor(name="local", team=None, role="admin")
"""Who every request acts as under `mmgov serve --no-auth` (loopback only)."""
ALERTMANAGER = Actor(name="alertmanager", team=None, role="admin")
"""Who the Alertmanager webhook acts as. Admin so alerts link to any team's model; the alerts
token reaches only `POST /alerts`, whose route calls nothing but `record_webhook`."""


class Authz(enum.Enum):
    """The authorisation rules a route can declare."""

    public = "public"
    reader = "reader"
    maintainer = "maintainer"
    admin = "admin"
    alerts = "alerts"
    page = "page"
    """A web page: a person signed in with a session cookie (any role)."""
    page_form = "page_form"
    """A web form post: a signed-in maintainer or admin, with the session's CSRF token."""
    metrics = "metrics"


_RANK = {"reader": 0, "maintainer": 1, "admin": 2}


class TokenCache:
    """Authenticated tokens for a few seconds, so polling clients cost no token query."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Actor]] = {}

    def get(self, key: str) -> Actor | None:
        """Return the cached actor for ``key`` if it has not expired."""
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, actor: Actor) -> None:
        """Remember ``actor`` for ``ttl`` seconds (the cache is cleared when it grows large)."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, actor)


# Dependencies are `async def` where they never block: FastAPI runs a sync dependency in the
# threadpool, one hop (~0.2-0.4 ms here) per dependency per request on the polled paths.
async def get_db(request: Request) -> Database:
    """Return the app's database."""
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> ApiSettings:
    """Return the app's settings."""
    settings: ApiSettings = request.app.state.settings
    return settings


async def run_read(db: Database, read: Callable[..., T], /, *args: Any) -> T:
    """Run a short read on the event loop on SQLite, in the threadpool on PostgreSQL.

    A SQLite read is an in-process call of ~0.1 ms that WAL mode never makes wait for a writer,
    cheaper than the thread hop (~0.1-0.3 ms here) that would carry it off the loop; a
    PostgreSQL read waits on the network, so it must not hold the loop. For the polled paths.

    Returns:
        What ``read`` returns.
    """
    if db.dialect == "sqlite":
        return read(*args)
    return await run_in_threadpool(read, *args)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("missing bearer token: send `Authorization: Bearer <token>`")
    return secret.strip()


async def _authenticate(request: Request) -> Actor:
    settings: ApiSettings = request.app.state.settings
    if settings.no_auth:
        return LOCAL_ADMIN
    secret = _bearer(request)
    cache: TokenCache = request.app.state.token_cache
    key = hashlib.sha256(secret.encode()).hexdigest()
    actor = cache.get(key)
    if actor is None:
        # A cache miss queries the database: off the event loop, like a sync route.
        db: Database = request.app.state.db
        actor = await run_in_threadpool(service.authenticate, db, secret)
        cache.put(key, actor)
    return actor


def _at_least(role: str) -> Callable[[Request], Awaitable[Actor]]:
    async def dependency(request: Request) -> Actor:
        actor = await _authenticate(request)
        if _RANK[actor.role] < _RANK[role]:
            raise PermissionDenied(f"{actor.name} is a {actor.role}; this needs a {role}")
        return actor

    return dependency


async def _public() -> None:
    return None


async def _alerts(request: Request) -> Actor:
    expected = request.app.state.alerts_secret
    if expected is None:
        raise Unauthenticated("the alerts webhook is disabled: set MMGOV_ALERTS_TOKEN")
    given = _bearer(request)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("invalid alerts token")
    return ALERTMANAGER


@dataclass(frozen=True)
class WebUser:
    """Who a page serves, and the CSRF token its forms carry."""

    actor: Actor
    csrf: str

    @property
    def can_write(self) -> bool:
        """Whether the person may change anything (readers see no write controls)."""
        return _RANK[self.actor.role] >= _RANK["maintainer"]


async def _page(request: Request) -> WebUser:
    settings: ApiSettings = request.app.state.settings
    signer: SessionSigner = request.app.state.session_signer
    if settings.no_auth:
        return WebUser(LOCAL_ADMIN, signer.csrf_token(request.app.state.no_auth_nonce))
    session = signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise Unauthenticated("sign in with an API token to see this page")
    cache: TokenCache = request.app.state.token_cache
    actor = cache.get(session.token_sha256)
    if actor is None:
        db: Database = request.app.state.db
        actor = await run_in_threadpool(service.authenticate_digest, db, session.token_sha256)
        cache.put(session.token_sha256, actor)
    return WebUser(actor, signer.csrf_token(session.nonce))


async def read_form(request: Request) -> dict[str, str]:
    """Return the request's url-encoded form fields (the last value of a repeated field)."""
    form: dict[str, str] | None = getattr(request.state, "form", None)
    if form is None:
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True, max_num_fields=64))
        request.state.form = form
    return form


async def _page_form(request: Request) -> WebUser:
    user = await _page(request)
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", ""), user.csrf):
        raise PermissionDenied("the form's CSRF token is missing or stale: reload the page")
    if not user.can_write:
        raise PermissionDenied(f"{user.actor.name} is a {user.actor.role}; this needs a maintainer")
    return user


async def _metrics(request: Request) -> None:
    # The registry gauges name every team's models: the scrape token, or an admin's token.
    settings: ApiSettings = request.app.state.settings
    if settings.no_auth:
        return
    expected = request.app.state.metrics_secret
    given = _bearer(request)
    if expected is not None and hmac.compare_digest(given.encode(), expected.encode()):
        return
    actor = await _authenticate(request)
    if actor.role != "admin":
        raise PermissionDenied(f"{actor.name} is a {actor.role}; /metrics needs the scrape token")


_RULES: dict[Authz, Callable[..., Any]] = {
    Authz.public: _public,
    Authz.reader: _at_least("reader"),
    Authz.maintainer: _at_least("maintainer"),
    Authz.admin: _at_least("admin"),
    Authz.alerts: _alerts,
    Authz.page: _page,
    Authz.page_form: _page_form,
    Authz.metrics: _metrics,
}
_BY_CALLABLE = {fn: rule for rule, fn in _RULES.items()}


def rule_of(route: APIRoute) -> Authz | None:
    """Return the authorisation rule ``route`` declares, or None if it declares none.

    Raises:
        ValueError: if the route declares more than one rule (ambiguous, so refused).
    """
    found: set[Authz] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        rule = _BY_CALLABLE.get(dep.call) if dep.call is not None else None
        if rule is not None:
            found.add(rule)
        stack.extend(dep.dependencies)
    if len(found) > 1:
        names = sorted(r.value for r in found)
        raise ValueError(f"route {route.path} declares several rules: {names}")
    return found.pop() if found else None


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ActorDep = Annotated[Actor, Depends(_RULES[Authz.reader])]
"""Any authenticated caller (reader or above); the service applies team isolation."""
MaintainerDep = Annotated[Actor, Depends(_RULES[Authz.maintainer])]
AdminDep = Annotated[Actor, Depends(_RULES[Authz.admin])]
AlertsDep = Annotated[Actor, Depends(_RULES[Authz.alerts])]
PageDep = Annotated[WebUser, Depends(_RULES[Authz.page])]
"""A signed-in person on a web page; the service applies roles and team isolation."""
PageFormDep = Annotated[WebUser, Depends(_RULES[Authz.page_form])]
"""A web form post: CSRF checked, maintainer or admin."""
PUBLIC = Depends(_RULES[Authz.public])
"""Put in a public route's ``dependencies=[PUBLIC]`` to say so explicitly."""
SCRAPER = Depends(_RULES[Authz.metrics])
"""`/metrics`: the scrape token (``MMGOV_METRICS_TOKEN``) or an admin token."""

__all__ = [
    "ALERTMANAGER",
    "LOCAL_ADMIN",
    "PUBLIC",
    "SCRAPER",
    "ActorDep",
    "AdminDep",
    "AlertsDep",
    "Authz",
    "DbDep",
    "MaintainerDep",
    "PageDep",
    "PageFormDep",
    "SettingsDep",
    "TokenCache",
    "WebUser",
    "get_db",
    "get_settings",
    "read_form",
    "rule_of",
    "run_read",
]
