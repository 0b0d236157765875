"""The app factory: settings, database, middleware, problem handlers and routers for one app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from registry.api.api_metrics import ApiMetrics, MetricsMiddleware, RegistryCollector
from registry.api.deps import TokenCache, rule_of
from registry.api.limits import BodySizeLimit, BodyTooLarge
from registry.api.problems import UnexpectedErrors, install_problem_handlers
from registry.api.routers import (
    alerts,
    aliases,
    audit,
    deployments,
    exposition,
    health,
    incidents,
    models,
    policies,
    references,
    schemas,
    tags,
    versions,
)
from registry.api.schemas import PROBLEM_RESPONSES
from registry.api.settings import ApiSettings
from registry.db import Database
from registry.web import assets, pages
from registry.web.session import SessionSigner, new_key

API_PREFIX = "/api/v1"
DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""Routes FastAPI may add itself; public by design (they describe the API, they expose no data).
Our app turns FastAPI's `/docs` and `/redoc` off and serves its own (`registry.web.assets`,
packaged assets, no CDN) as public routes with a rule."""


def check_routes_declare_rules(app: FastAPI) -> None:
    """Fail closed: refuse an app where a route declares no authorisation rule.

    Raises:
        RuntimeError: naming the first route without a rule (or with several).
    """
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        if isinstance(route, APIRoute):
            try:
                rule = rule_of(route)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from exc
            if rule is None:
                methods = sorted(route.methods or ())
                raise RuntimeError(f"route {methods} {path} declares no Authz rule")
        elif not (isinstance(route, Route) and path in DOC_PATHS):
            raise RuntimeError(f"route {path!r} is not an APIRoute with an Authz rule")


def route_templates(app: FastAPI) -> dict[int, str]:
    """Map each route object to its full path template (with the router prefixes)."""
    return {
        id(context.original_route): context.path or "<unknown>"
        for context in iter_route_contexts(app.routes)
    }


def create_app(settings: ApiSettings | None = None, *, db: Database | None = None) -> FastAPI:
    """Build the admin API (uvicorn calls this with no arguments in factory mode).

    Args:
        settings: read from ``MMGOV_*`` environment variables when None.
        db: an open database; opened from ``settings.database_url`` when None (the schema is
            not checked here: `/readyz` reports it and `mmgov serve` refuses to start on it).

    Returns:
        The app.

    Raises:
        OSError: if the alerts or metrics token file cannot be read.
        RuntimeError: if a route declares no authorisation rule.
        ValueError: if ``session_key`` is shorter than 16 characters.
    """
    settings = settings or ApiSettings()
    app = FastAPI(
        title="mmgov admin API",
        version="1",
        description="Model registry: versions, aliases, audit, incidents.",
        responses=PROBLEM_RESPONSES,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)
    app.state.alerts_secret = settings.alerts_secret()
    app.state.metrics_secret = settings.metrics_secret()
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    key = settings.session_key.get_secret_value() if settings.session_key else new_key()
    app.state.session_signer = SessionSigner(key.encode(), max_age=settings.session_seconds)
    app.state.no_auth_nonce = new_key()
    api_metrics = ApiMetrics(CollectorRegistry())
    app.state.metrics = api_metrics
    collector = RegistryCollector(app.state.db)
    api_metrics.registry.register(collector)
    app.state.registry_collector = collector

    install_problem_handlers(app)
    # Routes match in order: the alias routes serving processes poll go first.
    for router in (
        aliases.router,
        models.router,
        versions.router,
        tags.router,
        policies.router,
        schemas.router,
        references.router,
        audit.router,
        alerts.router,
        incidents.router,
        deployments.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(exposition.router)
    app.include_router(assets.router)
    pages.install(app)  # after the problem handlers: it wraps them for page routes
    check_routes_declare_rules(app)

    # Added last = outermost: sizes are checked before anything reads the body; unexpected
    # errors become a problem inside the metrics, so they are counted as 500s.
    app.add_middleware(UnexpectedErrors, passthrough=(BodyTooLarge,))
    app.add_middleware(MetricsMiddleware, metrics=api_metrics, templates=route_templates(app))
    app.add_middleware(
        BodySizeLimit,
        limit=settings.max_body_bytes,
        overrides=[(references.PATH_PATTERN, settings.max_reference_bytes)],
    )
    return app


__all__ = [
    "API_PREFIX",
    "DOC_PATHS",
    "check_routes_declare_rules",
    "create_app",
    "route_templates",
]
