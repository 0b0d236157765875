"""Routes for protected aliases: policies per alias and free aliases (admins), approvals."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from registry import service
from registry.api.deps import ActorDep, AdminDep, DbDep, MaintainerDep
from registry.api.routers._params import (
    AliasName,
    Cursor,
    Limit,
    ModelName,
    NameCursor,
    VersionNumber,
    cursor_text,
    link_next,
)
from registry.api.schemas import (
    ApprovalIn,
    ApprovalPublic,
    FreeAliasesPublic,
    FreeAliasesSet,
    PolicyPublic,
    PolicySet,
)
from registry.schemas import PolicyRules, SoakRule

router = APIRouter(prefix="/models/{name}", tags=["policies"])


@router.get("/policies", response_model=list[PolicyPublic])
def list_policies(
    request: Request,
    response: Response,
    name: ModelName,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 100,
    cursor: NameCursor = None,
) -> list[PolicyPublic]:
    """List the declared aliases and the rules in force for each, by alias; `Link: rel="next"`
    names the next page."""
    page = service.list_policies(db, actor, name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [PolicyPublic.model_validate(p.model_dump()) for p in page.items]


@router.put("/policies/{alias}", response_model=PolicyPublic)
def set_policy(
    name: ModelName, alias: AliasName, body: PolicySet, db: DbDep, actor: AdminDep
) -> PolicyPublic:
    """Declare the alias with these rules (a new policy version, audited)."""
    soak = None
    if body.soak is not None:
        seconds = service.parse_duration(body.soak.duration)
        soak = SoakRule(alias=body.soak.alias, seconds=seconds)
    rules = PolicyRules(
        min_role=body.min_role,
        require_reference=body.require_reference,
        no_open_incident=body.no_open_incident,
        soak=soak,
        approvals=body.approvals,
    )
    info = service.set_policy(db, actor, model=name, alias=alias, rules=rules, note=body.note)
    return PolicyPublic.model_validate(info.model_dump())


@router.delete("/policies/{alias}", response_model=PolicyPublic)
def remove_policy(name: ModelName, alias: AliasName, db: DbDep, actor: AdminDep) -> PolicyPublic:
    """Stop declaring the alias (recorded as a policy version without rules)."""
    info = service.remove_policy(db, actor, model=name, alias=alias)
    return PolicyPublic.model_validate(info.model_dump())


@router.put("/free-aliases", response_model=FreeAliasesPublic)
def set_free_aliases(
    name: ModelName, body: FreeAliasesSet, db: DbDep, actor: AdminDep
) -> FreeAliasesPublic:
    """Allow (true) or refuse (false) new aliases the model does not declare (audited)."""
    info = service.set_free_aliases(db, actor, model=name, free=body.free_aliases,
                                    note=body.note)
    return FreeAliasesPublic.model_validate(info.model_dump())


@router.get("/versions/{version}/approvals", response_model=list[ApprovalPublic])
def list_approvals(
    request: Request,
    response: Response,
    name: ModelName,
    version: VersionNumber,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[ApprovalPublic]:
    """List the version's approvals, withdrawn ones included, oldest first; `Link: rel="next"`
    names the next page."""
    page = service.list_approvals(db, actor, model=name, version=version, limit=limit,
                                  cursor=cursor_text(cursor))
    link_next(request, response, page.next_cursor)
    return [ApprovalPublic.model_validate(a.model_dump()) for a in page.items]


@router.post(
    "/versions/{version}/approvals",
    response_model=ApprovalPublic,
    status_code=status.HTTP_201_CREATED,
)
def approve(
    name: ModelName, version: VersionNumber, body: ApprovalIn, db: DbDep, actor: MaintainerDep
) -> ApprovalPublic:
    """Approve the version for an alias (403 for the version's own registrant)."""
    info = service.approve(db, actor, model=name, version=version, alias=body.alias,
                           note=body.note)
    return ApprovalPublic.model_validate(info.model_dump())


@router.delete("/versions/{version}/approvals/{alias}", response_model=ApprovalPublic)
def withdraw_approval(
    name: ModelName, version: VersionNumber, alias: AliasName, db: DbDep, actor: MaintainerDep
) -> ApprovalPublic:
    """Withdraw your approval of the version for the alias."""
    info = service.withdraw_approval(db, actor, model=name, version=version, alias=alias)
    return ApprovalPublic.model_validate(info.model_dump())


__all__ = ["router"]
