"""The web UI's pages and forms: thin callers of the service, like the API routes.

Every page declares an authorisation rule (`Authz.page`, or `Authz.page_form` for a form post:
CSRF token checked, maintainer or above), so `check_routes_declare_rules` covers them too; the
service applies roles and team isolation exactly as for the API.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from registry import service
from registry.api.deps import PUBLIC, DbDep, PageDep, PageFormDep, SettingsDep, read_form
from registry.api.routers._params import MAX_INT, SLUG, AliasName, ModelName, VersionNumber
from registry.errors import InvalidInput, NotFound, RegistryError
from registry.schemas import UNSET, Unset
from registry.web.prometheus import model_charts
from registry.web.render import render, render_error
from registry.web.session import PRESESSION_COOKIE, SESSION_COOKIE, SessionSigner, new_key

router = APIRouter(include_in_schema=False, tags=["web"])
forms = APIRouter(include_in_schema=False, tags=["web"])
PAGE_SIZE = 50
HISTORY_SIZE = 10
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")]
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_INT)]
NameCursor = Annotated[str | None, Query(pattern=SLUG)]
ModelQuery = Annotated[str | None, Query(pattern=r"^(|" + SLUG[1:-1] + r")$")]
"""A model filter; empty (a filter form left blank) means none."""
IncidentId = Annotated[int, Path(ge=1, le=MAX_INT)]


def _redirect(path: str, **params: str) -> RedirectResponse:
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(path + query, status_code=303)


def _model_url(name: str) -> str:
    return f"/models/{quote(name)}"


def _int_field(form: dict[str, str], key: str, *, required: bool = True) -> int | None:
    raw = form.get(key, "").strip()
    if not raw:
        if required:
            raise InvalidInput(f"{key}: a version number is required")
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_INT:
        raise InvalidInput(f"{key}: {raw[:40]!r} is not a version number")
    return int(raw)


def _expected(form: dict[str, str]) -> int | Unset | None:
    """The alias's version the form was rendered with ("none": the alias did not exist)."""
    raw = form.get("expected", "").strip()
    if raw == "":
        return UNSET
    if raw == "none":
        return None
    return _int_field(form, "expected")


def _safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


# --- sign in / out ---------------------------------------------------------------------------


@router.get("/sign-in", dependencies=[PUBLIC])
def sign_in_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form (sets the pre-session cookie its CSRF token is tied to)."""
    signer: SessionSigner = request.app.state.session_signer
    nonce = request.cookies.get(PRESESSION_COOKIE) or new_key()
    response = render(request, "sign_in.html", {
        "csrf": signer.csrf_token(nonce), "next": _safe_next(next), "user": None,
    })
    _set_cookie(request, response, PRESESSION_COOKIE, nonce, max_age=3600)
    return response


@router.post("/sign-in", dependencies=[PUBLIC])
async def sign_in(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """Check the token; on success set the session cookie and go where the person was going."""
    signer: SessionSigner = request.app.state.session_signer
    form = await read_form(request)
    target = _safe_next(form.get("next"))
    if not signer.check_csrf(request.cookies.get(PRESESSION_COOKIE), form.get("csrf")):
        return render(request, "sign_in.html", {
            "csrf": "", "next": target, "user": None,
            "error": "The sign-in form expired: reload the page and sign in again.",
        }, status_code=403)
    try:
        await run_in_threadpool(service.authenticate, db, form.get("token", "").strip())
    except RegistryError:
        nonce = request.cookies.get(PRESESSION_COOKIE, "")
        return render(request, "sign_in.html", {
            "csrf": signer.csrf_token(nonce), "next": target, "user": None,
            "error": "That token is unknown or revoked. Ask an admin for one "
                     "(`mmgov token create`).",
        }, status_code=401)
    cookie, _session = signer.issue(form["token"].strip())
    response = _redirect(target)
    _set_cookie(request, response, SESSION_COOKIE, cookie, max_age=settings.session_seconds)
    response.delete_cookie(PRESESSION_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, user: PageDep) -> Response:
    """End the session (any role may; the CSRF token is still required)."""
    form = await read_form(request)
    if form.get("csrf") != user.csrf:
        return render_error(request, 403, "The form's CSRF token is missing or stale: reload "
                            "the page.", user)
    response = _redirect("/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, *,
                max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- pages -----------------------------------------------------------------------------------


@router.get("/")
def models_page(request: Request, db: DbDep, user: PageDep, cursor: NameCursor = None) -> Response:
    """The caller's team's models (keyset pages by name), each with its aliases and latest
    version."""
    page = service.list_models(db, user.actor, limit=PAGE_SIZE, cursor=cursor)
    aliases = {m.name: service.list_aliases(db, user.actor, m.name).items for m in page.items}
    return render(request, "models.html", {
        "user": user, "models": page.items, "aliases": aliases, "cursor": cursor,
        "next_cursor": page.next_cursor,
    })


@router.get("/models/{name}")
def model_page(
    request: Request, name: ModelName, db: DbDep, user: PageDep, cursor: Cursor = None
) -> Response:
    """One model: versions (keyset pages), aliases with their history, policies, incidents."""
    return render(request, "model.html", _model_context(db, user, name, cursor))


def _model_context(db: Any, user: Any, name: str, cursor: str | None) -> dict[str, Any]:
    actor = user.actor
    model = service.get_model(db, actor, name)
    page = service.list_versions(db, actor, name, limit=PAGE_SIZE, cursor=cursor)
    aliases = service.list_aliases(db, actor, name, limit=1000).items
    history = {a.alias: service.alias_history(db, actor, name, a.alias, limit=HISTORY_SIZE)
               for a in aliases}
    policies = service.list_policies(db, actor, name, limit=1000).items
    open_incidents: dict[int | None, int] = defaultdict(int)
    incident_cursor: str | None = None
    while True:  # open incidents are few; every page counts towards the badges
        found = service.list_incidents(
            db, actor, model=name, status="open", limit=500, cursor=incident_cursor
        )
        for incident in found.items:
            open_incidents[incident.version] += 1
        if found.next_cursor is None:
            break
        incident_cursor = found.next_cursor
    return {
        "user": user, "model": model, "versions": page.items, "next_cursor": page.next_cursor,
        "cursor": cursor, "aliases": aliases, "history": history, "policies": policies,
        "open_incidents": open_incidents,
    }


@router.get("/models/{name}/versions/{version}")
def version_page(
    request: Request, name: ModelName, version: VersionNumber, db: DbDep, user: PageDep
) -> Response:
    """One version: identity, config, hashes, modules, weights, schema, reference, incidents."""
    actor = user.actor
    info = service.get_version(db, actor, name, version)
    reference: dict[str, Any] | None = None
    try:
        blob = service.get_reference(db, actor, name, version)
    except NotFound:
        pass
    else:
        reference = {"info": blob.info, "meta": service.read_profile_metadata(blob.blob)}
    incidents = service.list_incidents(db, actor, model=name, version=version, limit=100).items
    approvals = service.list_approvals(db, actor, model=name, version=version, limit=1000).items
    policies = service.list_policies(db, actor, name, limit=1000).items
    instances = service.list_deployments(db, actor, name, version=version)
    return render(request, "version.html", {
        "user": user, "v": info, "reference": reference, "incidents": incidents,
        "approvals": approvals, "policies": policies, "instances": instances,
        "config_json": json.dumps(info.config, indent=2, sort_keys=True),
    })


@router.get("/models/{name}/diff")
def diff_page(
    request: Request, name: ModelName, db: DbDep, user: PageDep,
    a: VersionQuery = None, b: VersionQuery = None,
) -> Response:
    """Two versions side by side: config paths added/removed/changed, modules, weights."""
    model = service.get_model(db, user.actor, name)
    latest = model.latest_version
    if b is None:
        b = latest
    if a is None and b is not None:
        a = max(1, b - 1)
    diff = None
    if a is not None and b is not None:
        diff = service.diff_versions(db, user.actor, name, a, b)
    return render(request, "diff.html", {"user": user, "model": model, "a": a, "b": b,
                                         "diff": diff, "dumps": _short_json})


def _short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


@router.get("/models/{name}/health")
def health_page(
    request: Request, name: ModelName, db: DbDep, settings: SettingsDep, user: PageDep,
    minutes: Annotated[int, Query(ge=5, le=7 * 24 * 60)] = 60,
) -> Response:
    """Drift score over time against its threshold, latency and error rate, from Prometheus."""
    model = service.get_model(db, user.actor, name)
    client: httpx.Client | None = None
    if settings.prometheus_url is not None:
        client = request.app.state.prometheus_client
        if client is None:  # one per app, made on first use (a race makes two: harmless)
            client = request.app.state.prometheus_client = httpx.Client(
                timeout=settings.prometheus_timeout)
    charts = model_charts(settings.prometheus_url, name, client=client, seconds=minutes * 60,
                          timeout=settings.prometheus_timeout)
    return render(request, "health.html", {
        "user": user, "model": model, "charts": charts, "minutes": minutes,
        "prometheus": settings.prometheus_url,
    })


@router.get("/audit")
def audit_page(
    request: Request, db: DbDep, user: PageDep, model: ModelQuery = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z_.]{0,64}$")] = None,
    cursor: Cursor = None,
    verify: bool = False,
) -> Response:
    """The audit trail newest first, filtered by model and by action prefix; with ``verify``
    the chain's check too (it reads every event, so it runs when asked, not on every view)."""
    model = model or None
    page = service.list_audit(
        db, user.actor, model=model, action=action or None, limit=100, cursor=cursor
    )
    events = page.items
    report = service.verify_audit(db, user.actor) if verify else None
    return render(request, "audit.html", {
        "user": user, "events": events, "next_cursor": page.next_cursor, "model": model,
        "action": action or "", "report": report, "cursor": cursor,
    })


@router.get("/incidents")
def incidents_page(
    request: Request, db: DbDep, user: PageDep, model: ModelQuery = None,
    status: Annotated[str, Query(pattern="^(|open|acknowledged|resolved)$")] = "open",
    cursor: Cursor = None,
) -> Response:
    """Incidents newest first (keyset pages), with acknowledge and resolve for maintainers."""
    model = model or None
    found = service.list_incidents(
        db, user.actor, model=model, status=status or None, limit=PAGE_SIZE, cursor=cursor
    )
    return render(request, "incidents.html", {
        "user": user, "incidents": found.items, "model": model, "status": status or "",
        "cursor": cursor, "next_cursor": found.next_cursor,
    })


# --- forms -----------------------------------------------------------------------------------


async def _refused(
    request: Request, db: Any, user: Any, name: str, exc: RegistryError, title: str
) -> Response:
    """Show a refused action on the model page, with why (an unknown model stays a 404)."""
    if isinstance(exc, NotFound):
        raise exc
    context = await run_in_threadpool(_model_context, db, user, name, None)
    context["action_error"] = exc
    context["action_title"] = title
    return render(request, "model.html", context, status_code=exc.status)


@forms.post("/models/{name}/promote")
async def promote(request: Request, name: ModelName, db: DbDep, user: PageFormDep) -> Response:
    """Point an alias at a version (expected-version check; policy refusals listed)."""
    form = await read_form(request)
    alias = form.get("alias", "").strip()
    try:
        version = _int_field(form, "version")
        assert version is not None
        await run_in_threadpool(lambda: service.promote(
            db, user.actor, model=name, version=version, alias=alias,
            expected_version=_expected(form), reason=form.get("reason", "").strip(),
        ))
    except RegistryError as exc:
        title = f"Promotion of v{form.get('version', '?')} to {alias!r}"
        return await _refused(request, db, user, name, exc, title)
    return _redirect(_model_url(name), done=f"{alias} now serves v{version}")


@forms.post("/models/{name}/aliases/{alias}/rollback")
async def rollback(
    request: Request, name: ModelName, alias: AliasName, db: DbDep, user: PageFormDep
) -> Response:
    """Move an alias back to its previous version (or to ``to``)."""
    form = await read_form(request)
    try:
        to = _int_field(form, "to", required=False)
        info = await run_in_threadpool(lambda: service.rollback(
            db, user.actor, model=name, alias=alias, to=to, expected_version=_expected(form),
            reason=form.get("reason", "").strip(),
        ))
    except RegistryError as exc:
        return await _refused(request, db, user, name, exc, f"Rollback of {alias!r}")
    return _redirect(_model_url(name), done=f"{alias} rolled back to v{info.version}")


@forms.post("/models/{name}/versions/{version}/approve")
async def approve(
    request: Request, name: ModelName, version: VersionNumber, db: DbDep, user: PageFormDep
) -> Response:
    """Approve a version for a protected alias."""
    form = await read_form(request)
    alias = form.get("alias", "").strip()
    await run_in_threadpool(lambda: service.approve(
        db, user.actor, model=name, version=version, alias=alias,
        note=form.get("note", "").strip(),
    ))
    return _redirect(f"{_model_url(name)}/versions/{version}",
                     done=f"approved v{version} for {alias}")


@forms.post("/incidents/{incident_id}/acknowledge")
async def acknowledge(
    request: Request, incident_id: IncidentId, db: DbDep, user: PageFormDep
) -> Response:
    """Acknowledge an open incident."""
    form = await read_form(request)
    await run_in_threadpool(lambda: service.acknowledge_incident(
        db, user.actor, incident_id, note=form.get("note", "").strip()))
    return _redirect("/incidents", done=f"incident {incident_id} acknowledged")


@forms.post("/incidents/{incident_id}/resolve")
async def resolve(
    request: Request, incident_id: IncidentId, db: DbDep, user: PageFormDep
) -> Response:
    """Resolve an incident with a note."""
    form = await read_form(request)
    await run_in_threadpool(lambda: service.resolve_incident(
        db, user.actor, incident_id, note=form.get("note", "").strip()))
    return _redirect("/incidents", status="resolved", done=f"incident {incident_id} resolved")


# --- errors ----------------------------------------------------------------------------------


def _is_page(request: Request) -> bool:
    route = request.scope.get("route")
    return "web" in (getattr(route, "tags", None) or [])


def install(app: FastAPI) -> None:
    """Add the pages and forms to ``app``, with HTML error pages for them.

    Errors of page routes render as pages (an unauthenticated page request is sent to sign
    in); every other route keeps its problem responses.
    """
    api_handlers = dict(app.exception_handlers)

    async def registry_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            return await _call(api_handlers[RegistryError], request, exc)
        assert isinstance(exc, RegistryError)
        if exc.status == 401 and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _redirect("/sign-in", next=target)
        return render_error(request, exc.status, exc.detail, None)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            return await _call(api_handlers[RequestValidationError], request, exc)
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return render_error(request, 422, f"{where}: {first.get('msg', 'invalid')}", None)

    app.state.prometheus_client = None
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(router)
    app.include_router(forms)


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if hasattr(result, "__await__"):
        result = await result
    assert isinstance(result, Response)
    return result


__all__ = ["install", "router"]
