"""Protected aliases: versioned promotion rules per alias, approvals, and the promotion check.

An alias is declared by a policy (even one without rules). A model accepts a new alias only if
it is declared, unless an admin allowed free aliases on it, which ends the silent typo alias. A
new model starts with the rule-less aliases of `default_aliases` (``staging``, ``production``)
declared, so its first promotion needs no set-up. Rollbacks are not gated: pulling a bad version
back must always be possible.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, distinct, exists, func, insert, select, update
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied, PolicyRefused
from registry.models import (
    Alias,
    AliasMove,
    AliasPolicy,
    Approval,
    Incident,
    Model,
    ModelVersion,
    ReferenceProfile,
    utcnow,
)
from registry.schemas import (
    Actor,
    ApprovalInfo,
    FreeAliasesInfo,
    Page,
    PolicyInfo,
    PolicyRules,
    SoakRule,
)
from registry.service._access import require_admin, require_writer, visible_model
from registry.service._input import check_limit, check_slug, parse_cursor, parse_name_cursor
from registry.service._lookup import version_row

_RANK = {"reader": 0, "maintainer": 1, "admin": 2}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_APPROVALS = 10
DEFAULT_ALIASES_ENV = "MMGOV_DEFAULT_ALIASES"
DEFAULT_ALIASES = ("staging", "production")
"""Declared, rule-less, on every new model unless ``MMGOV_DEFAULT_ALIASES`` names others."""
_NO_RULES = PolicyRules().model_dump(mode="json")


def default_aliases() -> tuple[str, ...]:
    """Return the aliases a new model declares: ``MMGOV_DEFAULT_ALIASES`` (comma-separated;
    empty: none) when set, else `DEFAULT_ALIASES`.

    Raises:
        InvalidInput: the variable names an invalid alias.
    """
    raw = os.environ.get(DEFAULT_ALIASES_ENV)
    if raw is None:
        return DEFAULT_ALIASES
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        check_slug(name, f"alias name in {DEFAULT_ALIASES_ENV}")
    return tuple(dict.fromkeys(names))


_DECLARE = insert(AliasPolicy)


def declare_default_aliases(
    session: Session, actor: Actor, model_id: int, aliases: tuple[str, ...]
) -> None:
    """Declare ``aliases`` without rules on a model being created (in its transaction; the
    model's ``model.create`` event records them)."""
    if not aliases:
        return
    now = utcnow()
    session.connection().execute(
        _DECLARE,
        [
            {
                "model_id": model_id,
                "alias": alias,
                "version": 1,
                "rules": _NO_RULES,
                "note": "declared when the model was created",
                "created_by": actor.name,
                "created_at": now,
            }
            for alias in aliases
        ],
    )


def parse_duration(raw: str) -> int:
    """Return the seconds in a duration such as ``90s``, ``30m``, ``24h``, ``7d`` or ``1h30m``.

    Raises:
        InvalidInput: it does not parse, or is zero or over 365 days.
    """
    match = _DURATION.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None or not raw.strip() or not any(match.groups()):
        raise InvalidInput(f"duration {raw!r} does not parse: write e.g. 90s, 30m, 24h, 7d, 1h30m")
    d, h, m, s = (int(g or 0) for g in match.groups())
    seconds = int(timedelta(days=d, hours=h, minutes=m, seconds=s).total_seconds())
    if not 1 <= seconds <= 365 * 86400:
        raise InvalidInput(f"duration {raw!r} must lie between 1 second and 365 days")
    return seconds


def format_duration(seconds: int) -> str:
    """Return ``seconds`` the way `parse_duration` reads it (``90061`` → ``1d1h1m1s``)."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _current_policies(session: Session, model_id: int) -> dict[str, AliasPolicy]:
    """The newest policy row of each alias of the model (removed ones included)."""
    rows = session.scalars(
        select(AliasPolicy).where(AliasPolicy.model_id == model_id).order_by(AliasPolicy.version)
    )
    current: dict[str, AliasPolicy] = {}
    for row in rows:
        current[row.alias] = row
    return current


def _info(model: str, row: AliasPolicy) -> PolicyInfo:
    return PolicyInfo(
        model=model,
        alias=row.alias,
        version=row.version,
        rules=PolicyRules.model_validate(row.rules) if row.rules is not None else None,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def set_policy(
    db: Database,
    actor: Actor,
    *,
    model: str,
    alias: str,
    rules: PolicyRules,
    note: str = "",
) -> PolicyInfo:
    """Declare ``alias`` with ``rules`` (a new policy version, audited). Admins only.

    Returns:
        The policy in force (unchanged, with no event, when the rules are the same).

    Raises:
        PermissionDenied: not an admin. NotFound: model. InvalidInput: bad alias name, a soak
        rule naming the alias itself or an alias the model neither declares nor has, too many
        approvals.
    """
    require_admin(actor, "set an alias policy")
    check_slug(alias, "alias name")
    if not 0 <= rules.approvals <= MAX_APPROVALS:
        raise InvalidInput(f"approvals must be between 0 and {MAX_APPROVALS}")
    if rules.soak is not None:
        check_slug(rules.soak.alias, "soak alias")
        if rules.soak.alias == alias:
            raise InvalidInput(f"the soak rule of {alias!r} must name another alias")
        if not 1 <= rules.soak.seconds <= 365 * 86400:
            raise InvalidInput("the soak duration must lie between 1 second and 365 days")

    def work(session: Session) -> PolicyInfo:
        owner = visible_model(session, actor, model, lock=True)
        current = _current_policies(session, owner.id)
        if rules.soak is not None:
            declared = {a for a, p in current.items() if p.rules is not None}
            existing = set(session.scalars(select(Alias.name).where(Alias.model_id == owner.id)))
            if rules.soak.alias not in declared | existing:
                raise InvalidInput(
                    f"unknown alias {rules.soak.alias!r} in the soak rule: model {model!r} "
                    f"neither declares nor has it (declared: {', '.join(sorted(declared)) or '-'})"
                )
        before = current.get(alias)
        wanted = rules.model_dump(mode="json")
        if before is not None and before.rules == wanted:
            return _info(model, before)
        row = AliasPolicy(
            model_id=owner.id,
            alias=alias,
            version=(before.version if before else 0) + 1,
            rules=wanted,
            note=note,
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        chain.append(
            session,
            actor=actor.name,
            action="alias.policy",
            model=model,
            payload={"alias": alias, "policy_version": row.version, "rules": wanted, "note": note},
        )
        return _info(model, row)

    return db.write(work)


def remove_policy(
    db: Database, actor: Actor, *, model: str, alias: str, note: str = ""
) -> PolicyInfo:
    """Stop declaring ``alias`` (a policy version without rules, audited). Admins only.

    Returns:
        The removal record.

    Raises:
        PermissionDenied: not an admin. NotFound: model, or the alias is not declared.
    """
    require_admin(actor, "remove an alias policy")
    check_slug(alias, "alias name")

    def work(session: Session) -> PolicyInfo:
        owner = visible_model(session, actor, model, lock=True)
        before = _current_policies(session, owner.id).get(alias)
        if before is None or before.rules is None:
            raise NotFound(f"model {model!r} declares no alias {alias!r}")
        row = AliasPolicy(
            model_id=owner.id,
            alias=alias,
            version=before.version + 1,
            rules=None,
            note=note,
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        chain.append(
            session,
            actor=actor.name,
            action="alias.policy",
            model=model,
            payload={"alias": alias, "policy_version": row.version, "rules": None, "note": note},
        )
        return _info(model, row)

    return db.write(work)


def _declared(session: Session, model_id: int) -> list[str]:
    current = _current_policies(session, model_id)
    return sorted(a for a, p in current.items() if p.rules is not None)


def set_free_aliases(
    db: Database, actor: Actor, *, model: str, free: bool, note: str = ""
) -> FreeAliasesInfo:
    """Allow (``free``) or refuse the creation of undeclared aliases on ``model`` (audited as
    ``model.free_aliases``). Admins only.

    Returns:
        The model's setting and its declared aliases (no event when the setting is unchanged).

    Raises:
        PermissionDenied: not an admin. NotFound: model. InvalidInput: a note over 10,000
        characters.
    """
    require_admin(actor, "change whether a model allows free aliases")
    if len(note) > 10_000 or "\x00" in note:
        raise InvalidInput("a note is at most 10,000 characters, without NUL")

    def work(session: Session) -> FreeAliasesInfo:
        owner = visible_model(session, actor, model, lock=True)
        before = owner.free_aliases
        if before != free:
            session.execute(update(Model).where(Model.id == owner.id).values(free_aliases=free))
            payload: dict[str, Any] = {"before": before, "after": free}
            if note:
                payload["note"] = note
            chain.append(
                session, actor=actor.name, action="model.free_aliases", model=model,
                payload=payload,
            )
        return FreeAliasesInfo(model=model, free_aliases=free,
                               declared=_declared(session, owner.id))

    return db.write(work)


def list_policies(
    db: Database, actor: Actor, model: str, *, limit: int = 100, cursor: str | None = None
) -> Page[PolicyInfo]:
    """Return the policies in force (declared aliases) by alias, ``limit`` at a time (keyset on
    the alias).

    Raises:
        NotFound: model. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_name_cursor(cursor)
    with db.read() as session:
        owner = visible_model(session, actor, model)
        query = select(AliasPolicy).where(AliasPolicy.model_id == owner.id)
        if after is not None:
            query = query.where(AliasPolicy.alias > after)
        current: dict[str, AliasPolicy] = {}
        for row in session.scalars(query.order_by(AliasPolicy.version)):
            current[row.alias] = row  # the newest policy row of each alias
        declared = [_info(model, p) for _, p in sorted(current.items()) if p.rules is not None]
    items = declared[:limit]
    more = len(declared) > limit
    return Page[PolicyInfo](items=items, next_cursor=items[-1].alias if more else None)


def _approval_info(model: str, version: int, row: Approval) -> ApprovalInfo:
    return ApprovalInfo(
        id=row.id,
        model=model,
        version=version,
        alias=row.alias,
        approver=row.approver,
        note=row.note,
        created_at=row.created_at,
        withdrawn_at=row.withdrawn_at,
        withdrawn_by=row.withdrawn_by,
    )


def approve(
    db: Database, actor: Actor, *, model: str, version: int, alias: str, note: str = ""
) -> ApprovalInfo:
    """Approve ``version`` for ``alias`` (audited); counts toward the alias's approvals rule.

    Returns:
        The approval.

    Raises:
        PermissionDenied: reader, or the approver registered the version.
        NotFound: model or version. InvalidInput: the alias is not declared.
        Conflict: the version is archived, or the actor already approved it for the alias.
    """
    require_writer(actor)
    check_slug(alias, "alias name")

    def work(session: Session) -> ApprovalInfo:
        owner = visible_model(session, actor, model, lock=True)
        row = version_row(session, owner, version)
        policy = _current_policies(session, owner.id).get(alias)
        if policy is None or policy.rules is None:
            raise InvalidInput(f"model {model!r} declares no alias {alias!r}: nothing to approve")
        if row.created_by == actor.name:
            raise PermissionDenied(
                f"{actor.name} registered {model} v{version} and cannot approve it"
            )
        if row.stage == "archived":
            raise Conflict(f"{model} v{version} is archived: it can no longer be approved")
        already = session.scalars(
            select(Approval.id).where(
                Approval.version_id == row.id,
                Approval.alias == alias,
                Approval.approver == actor.name,
                Approval.withdrawn_at.is_(None),
            )
        ).first()
        if already is not None:
            raise Conflict(f"{actor.name} already approved {model} v{version} for {alias!r}")
        approval = Approval(
            version_id=row.id, alias=alias, approver=actor.name, note=note, created_at=utcnow()
        )
        session.add(approval)
        session.flush()
        chain.append(
            session,
            actor=actor.name,
            action="approval.grant",
            model=model,
            version=version,
            payload={"alias": alias, "approval": approval.id, "note": note},
        )
        return _approval_info(model, version, approval)

    return db.write(work)


def withdraw_approval(
    db: Database, actor: Actor, *, model: str, version: int, alias: str
) -> ApprovalInfo:
    """Withdraw the actor's approval of ``version`` for ``alias`` (audited).

    Returns:
        The withdrawn approval.

    Raises:
        PermissionDenied: reader. NotFound: model, version, or no approval of the actor's.
    """
    require_writer(actor)
    check_slug(alias, "alias name")

    def work(session: Session) -> ApprovalInfo:
        owner = visible_model(session, actor, model, lock=True)
        row = version_row(session, owner, version)
        approval = session.scalars(
            select(Approval).where(
                Approval.version_id == row.id,
                Approval.alias == alias,
                Approval.approver == actor.name,
                Approval.withdrawn_at.is_(None),
            )
        ).first()
        if approval is None:
            raise NotFound(f"{actor.name} has no approval of {model} v{version} for {alias!r}")
        approval.withdrawn_at, approval.withdrawn_by = utcnow(), actor.name
        session.flush()
        chain.append(
            session,
            actor=actor.name,
            action="approval.withdraw",
            model=model,
            version=version,
            payload={"alias": alias, "approval": approval.id},
        )
        return _approval_info(model, version, approval)

    return db.write(work)


def list_approvals(
    db: Database,
    actor: Actor,
    *,
    model: str,
    version: int,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[ApprovalInfo]:
    """Return the version's approvals (withdrawn ones too), oldest first, ``limit`` at a time
    (keyset on the id).

    Raises:
        NotFound: model or version. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_cursor(cursor)
    with db.read() as session:
        owner = visible_model(session, actor, model)
        row = version_row(session, owner, version)
        query = select(Approval).where(Approval.version_id == row.id)
        if after is not None:
            query = query.where(Approval.id > after)
        found = session.scalars(query.order_by(Approval.id).limit(limit + 1)).all()
        items = [_approval_info(model, version, a) for a in found[:limit]]
    more = len(found) > limit
    return Page[ApprovalInfo](items=items, next_cursor=str(items[-1].id) if more else None)


# --- the promotion check (in the promotion's transaction, under the model's row lock) ---

_POLICIES = (
    select(AliasPolicy.alias, AliasPolicy.rules)
    .where(AliasPolicy.model_id == bindparam("model_id"))
    .order_by(AliasPolicy.version)
)
_EVIDENCE = select(
    ModelVersion.created_by,
    exists().where(ReferenceProfile.version_id == ModelVersion.id).label("has_reference"),
    select(func.count(Incident.id))
    .where(Incident.version_id == ModelVersion.id, Incident.status == "open")
    .scalar_subquery()
    .label("open_incidents"),
    select(func.count(distinct(Approval.approver)))
    .where(
        Approval.version_id == ModelVersion.id,
        Approval.alias == bindparam("alias"),
        Approval.withdrawn_at.is_(None),
        Approval.approver != ModelVersion.created_by,
    )
    .scalar_subquery()
    .label("approvals"),
).where(ModelVersion.id == bindparam("version_id"))
_SOAK_MOVES = (
    select(AliasMove.version_id, AliasMove.at)
    .join(Alias, Alias.id == AliasMove.alias_id)
    .where(Alias.model_id == bindparam("model_id"), Alias.name == bindparam("alias"))
    .order_by(AliasMove.id)
)
_INCIDENT_STARTS = select(Incident.starts_at).where(Incident.version_id == bindparam("version_id"))


def _longest_clean_stretch(
    session: Session, model_id: int, version_id: int, soak: SoakRule, now: datetime
) -> float:
    """Seconds of the longest stretch the version served ``soak.alias`` with no incident."""
    moves = session.execute(_SOAK_MOVES, {"model_id": model_id, "alias": soak.alias}).all()
    starts = sorted(session.execute(_INCIDENT_STARTS, {"version_id": version_id}).scalars())
    best = 0.0
    for i, move in enumerate(moves):
        if move.version_id != version_id:
            continue
        end = moves[i + 1].at if i + 1 < len(moves) else now
        begin = move.at
        for started in starts:
            if begin <= started <= end:
                best = max(best, (started - begin).total_seconds())
                begin = started
        best = max(best, (end - begin).total_seconds())
    return best


def check_promotion(
    session: Session,
    actor: Actor,
    *,
    model: str,
    model_id: int,
    alias: str,
    alias_exists: bool,
    free_aliases: bool,
    version: int,
    version_id: int,
    stage: str,
) -> None:
    """Raise PolicyRefused listing every rule the promotion fails (archived, undeclared, policy).

    Costs one query for an alias without rules, three for a protected alias (four with soak).
    """
    unmet: list[dict[str, str]] = []
    if stage == "archived":
        unmet.append({
            "rule": "not_archived",
            "message": f"{model} v{version} is archived: an archived version cannot be promoted",
        })
    current: dict[str, Any] = {}
    for name, rules in session.execute(_POLICIES, {"model_id": model_id}):
        current[name] = rules
    declared = {a for a, r in current.items() if r is not None}
    rules_raw = current.get(alias)
    if not free_aliases and not alias_exists and alias not in declared:
        unmet.append({
            "rule": "declared",
            "message": f"alias {alias!r} is not declared for model {model!r} "
            f"(declared: {', '.join(sorted(declared)) or 'none'}); an admin either declares it "
            f"(`mmgov policy set {model} {alias}`) or allows free aliases "
            f"(`mmgov aliases free {model} on`)",
        })
    if rules_raw is not None:
        unmet += _policy_unmet(session, actor, PolicyRules.model_validate(rules_raw),
                               model=model, model_id=model_id, alias=alias, version=version,
                               version_id=version_id)
    if unmet:
        lines = "\n".join(f"- {u['rule']}: {u['message']}" for u in unmet)
        n = len(unmet)
        raise PolicyRefused(
            f"promotion of {model} v{version} to {alias!r} refused, {n} rule"
            f"{'s' if n > 1 else ''} unmet:\n{lines}",
            unmet,
        )


def _policy_unmet(
    session: Session,
    actor: Actor,
    rules: PolicyRules,
    *,
    model: str,
    model_id: int,
    alias: str,
    version: int,
    version_id: int,
) -> list[dict[str, str]]:
    unmet: list[dict[str, str]] = []
    if rules.min_role is not None and _RANK[actor.role] < _RANK[rules.min_role]:
        unmet.append({
            "rule": "min_role",
            "message": f"promoting to {alias!r} needs a {rules.min_role}; "
            f"{actor.name} is a {actor.role}",
        })
    needs_evidence = rules.require_reference or rules.no_open_incident or rules.approvals
    if needs_evidence:
        ev = session.execute(_EVIDENCE, {"version_id": version_id, "alias": alias}).one()
        if rules.require_reference and not ev.has_reference:
            unmet.append({
                "rule": "require_reference",
                "message": f"v{version} has no reference profile (`mmgov reference attach`)",
            })
        if rules.no_open_incident and ev.open_incidents:
            unmet.append({
                "rule": "no_open_incident",
                "message": f"v{version} has {ev.open_incidents} open incident"
                f"{'s' if ev.open_incidents > 1 else ''} (`mmgov incident list --model "
                f"{model} --version {version} --status open`)",
            })
        if ev.approvals < rules.approvals:
            unmet.append({
                "rule": "approvals",
                "message": f"v{version} has {ev.approvals} of {rules.approvals} approvals for "
                f"{alias!r} from maintainers other than {ev.created_by} "
                f"(`mmgov approve {model} {version} --alias {alias}`)",
            })
    if rules.soak is not None:
        served = _longest_clean_stretch(session, model_id, version_id, rules.soak, utcnow())
        if served < rules.soak.seconds:
            unmet.append({
                "rule": "soak",
                "message": f"v{version} served {rules.soak.alias!r} for "
                f"{format_duration(int(served)) or '0s'} without an incident; the policy asks "
                f"{format_duration(rules.soak.seconds)}",
            })
    return unmet


__all__ = [
    "DEFAULT_ALIASES",
    "DEFAULT_ALIASES_ENV",
    "MAX_APPROVALS",
    "approve",
    "check_promotion",
    "declare_default_aliases",
    "default_aliases",
    "format_duration",
    "list_approvals",
    "list_policies",
    "parse_duration",
    "remove_policy",
    "set_free_aliases",
    "set_policy",
    "withdraw_approval",
]
