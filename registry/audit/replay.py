"""Replay the audit log into the state it describes and compare it with the tables.

The chain proves the log was not rewritten; this proves the tables were not changed behind the
service's back (``UPDATE aliases SET version_id = …``, ``INSERT OR REPLACE`` of a version, a
token row inserted by hand). Compared: teams, models and their owners, every version's audited
immutable fields (and its config against its hash), stages, tags, aliases, tokens (team, role,
name, revocation, digest when the event carries it) and reference profiles (bytes against their
sha256). Schemas, policies, approvals and incidents are not compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from registry.config import canonical_json, sha256_hex
from registry.models import (
    Alias,
    ApiToken,
    AuditEvent,
    Model,
    ModelVersion,
    ReferenceProfile,
    Team,
    VersionTag,
)

REPLAY_BATCH = 500

_VERSION_FIELDS = ("config_hash", "semver", "weights_uri", "weights_sha256", "parent_version",
                   "note", "schema_version", "module_grouping")
_UNLOGGED_FORMATS = (None, "safetensors", "remote")
"""Formats a ``version.register`` event leaves out (see ``registration._audited``)."""


@dataclass(frozen=True)
class StateDifference:
    """The first place where the tables disagree with the replayed log."""

    table: str
    detail: str
    seq: int | None
    """The event that set the expected state (None: no event explains the row)."""

    def __str__(self) -> str:
        where = f" (audit seq {self.seq})" if self.seq is not None else " (no audit event)"
        return f"{self.table}: {self.detail}{where}"


@dataclass
class _Expected:
    teams: dict[str, int] = field(default_factory=dict)
    models: dict[str, tuple[str, int]] = field(default_factory=dict)
    versions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    tokens: dict[int, dict[str, Any]] = field(default_factory=dict)
    references: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def _events(session: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq)
            .limit(REPLAY_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def _apply(state: _Expected, e: AuditEvent) -> None:
    p, action = e.payload or {}, e.action
    if action == "team.create":
        state.teams[p["after"]["team"]] = e.seq
    elif action == "model.create" and e.model is not None:
        state.models[e.model] = (p["after"]["team"], e.seq)
    elif action == "version.register" and e.model is not None and e.version is not None:
        state.versions[(e.model, e.version)] = {
            "seq": e.seq, "actor": e.actor, "after": p["after"], "stage": ("active", e.seq),
            "tags": {},
        }
    elif action == "version.stage" and (e.model, e.version) in state.versions:
        state.versions[(e.model, e.version)]["stage"] = (p["after"], e.seq)  # type: ignore[index]
    elif action in ("version.tag", "version.untag") and (e.model, e.version) in state.versions:
        tags = state.versions[(e.model, e.version)]["tags"]  # type: ignore[index]
        for key, value in (p.get("set") or {}).items():
            tags[key] = (value, e.seq)
        for key in p.get("removed") or {}:
            tags.pop(key, None)
    elif action in ("alias.promote", "alias.rollback") and e.model is not None:
        state.aliases[(e.model, p["alias"])] = (int(p["after"]), e.seq)
    elif action == "token.create":
        after = p["after"]
        state.tokens[int(after["token"])] = {**after, "revoked": False, "seq": e.seq}
    elif action == "token.revoke" and int(p["before"]["token"]) in state.tokens:
        token = state.tokens[int(p["before"]["token"])]
        token["revoked"], token["seq"] = True, e.seq
    elif action == "reference.attach" and e.model is not None and e.version is not None:
        state.references[(e.model, e.version)] = {**p["after"], "seq": e.seq}


def _first(rows: dict[Any, Any], expected: dict[Any, Any], table: str, what: str,
           seq_of: Any) -> StateDifference | None:
    for key in sorted(set(rows) | set(expected), key=repr):
        if key not in expected:
            return StateDifference(table, f"{what} {key!r} is in the table; the log never made it",
                                   None)
        if key not in rows:
            return StateDifference(table, f"{what} {key!r} is missing from the table",
                                   seq_of(expected[key]))
    return None


def _check_version(label: str, row: ModelVersion, want: dict[str, Any]) -> StateDifference | None:
    after, seq = want["after"], want["seq"]
    for name in _VERSION_FIELDS:
        if getattr(row, name) != after.get(name):
            return StateDifference(
                "model_versions",
                f"{label} {name} is {getattr(row, name)!r}; the log says {after.get(name)!r}",
                seq,
            )
    fmt = after.get("weights_format")
    if (row.weights_format != fmt) if fmt is not None else (
        row.weights_format not in _UNLOGGED_FORMATS
    ):
        return StateDifference(
            "model_versions", f"{label} weights_format is {row.weights_format!r}", seq
        )
    digest = row.pipeline.get("digest") if isinstance(row.pipeline, dict) else None
    if digest != after.get("pipeline_digest"):
        return StateDifference("model_versions", f"{label} pipeline digest is {digest!r}", seq)
    if row.created_by != want["actor"]:
        return StateDifference(
            "model_versions",
            f"{label} created_by is {row.created_by!r}, the log says {want['actor']!r}", seq,
        )
    if sha256_hex(canonical_json(row.config)) != row.config_hash:
        return StateDifference(
            "model_versions", f"{label} config no longer hashes to its config_hash", seq
        )
    stage, stage_seq = want["stage"]
    if row.stage != stage:
        return StateDifference(
            "model_versions", f"{label} stage is {row.stage!r}; the log says {stage!r}", stage_seq
        )
    return None


def _check_versions(session: Session, state: _Expected) -> StateDifference | None:
    # In batches, like the chain: memory follows the batch (configs can be large), not the table.
    seen: set[tuple[str, int]] = set()
    last_id = 0
    while True:
        rows = session.execute(
            select(Model.name, ModelVersion).join(Model, Model.id == ModelVersion.model_id)
            .where(ModelVersion.id > last_id).order_by(ModelVersion.id).limit(REPLAY_BATCH)
        ).all()
        if not rows:
            break
        for name, row in rows:
            key = (name, row.version)
            if key not in state.versions:
                return StateDifference(
                    "model_versions", f"version {key!r} is in the table; the log never made it",
                    None,
                )
            seen.add(key)
            difference = _check_version(f"{name} v{row.version}", row, state.versions[key])
            if difference is not None:
                return difference
        last_id = rows[-1][1].id
        session.expunge_all()
    for key in sorted(set(state.versions) - seen):
        return StateDifference("model_versions", f"version {key!r} is missing from the table",
                               state.versions[key]["seq"])
    return None


def _check_tags(session: Session, state: _Expected) -> StateDifference | None:
    rows = session.execute(
        select(Model.name, VersionTag.version, VersionTag.key, VersionTag.value)
        .join(Model, Model.id == VersionTag.model_id)
    ).all()
    present = {(m, v, k): value for m, v, k, value in rows}
    expected = {
        (m, v, k): tag for (m, v), want in state.versions.items()
        for k, tag in want["tags"].items()
    }
    missing = _first(present, expected, "version_tags", "tag", lambda x: x[1])
    if missing is not None:
        return missing
    for key, value in present.items():
        if value != expected[key][0]:
            return StateDifference(
                "version_tags", f"tag {key!r} is {value!r}; the log says {expected[key][0]!r}",
                expected[key][1],
            )
    return None


def _check_aliases(session: Session, state: _Expected) -> StateDifference | None:
    target = aliased(ModelVersion)
    rows = session.execute(
        select(Model.name, Alias.name, target.version)
        .join(Model, Model.id == Alias.model_id)
        .join(target, target.id == Alias.version_id)
    ).all()
    present = {(m, a): v for m, a, v in rows}
    missing = _first(present, state.aliases, "aliases", "alias", lambda x: x[1])
    if missing is not None:
        return missing
    owner = session.execute(
        select(Alias.id, Alias.model_id, target.model_id)
        .join(target, target.id == Alias.version_id)
        .where(Alias.model_id != target.model_id)
    ).first()
    if owner is not None:
        return StateDifference("aliases", f"alias id {owner[0]} points at another model's "
                               "version", None)
    for key, version in present.items():
        want, seq = state.aliases[key]
        if version != want:
            return StateDifference(
                "aliases", f"{key[0]}/{key[1]} points at v{version}; the log says v{want}", seq
            )
    return None


def _check_tokens(session: Session, state: _Expected) -> StateDifference | None:
    rows = session.execute(select(ApiToken, Team.name).join(Team, Team.id == ApiToken.team_id))
    present = {token.id: (token, team) for token, team in rows}
    missing = _first(present, state.tokens, "api_tokens", "token", lambda x: x["seq"])
    if missing is not None:
        return missing
    for token_id, (token, team) in present.items():
        want = state.tokens[token_id]
        actual = {"team": team, "role": token.role, "name": token.name,
                  "prefix": token.display_prefix, "sha256": token.token_sha256,
                  "revoked": token.revoked_at is not None}
        for key, value in actual.items():
            if key in want and want[key] != value:
                return StateDifference(
                    "api_tokens", f"token {token_id} {key} is {value!r}; the log says "
                    f"{want[key]!r}", want["seq"],
                )
    return None


def _check_references(session: Session, state: _Expected) -> StateDifference | None:
    rows = session.execute(
        select(Model.name, ModelVersion.version, ReferenceProfile.id)
        .join(ModelVersion, ModelVersion.id == ReferenceProfile.version_id)
        .join(Model, Model.id == ModelVersion.model_id)
    ).all()
    present = {(m, v): rid for m, v, rid in rows}
    missing = _first(present, state.references, "reference_profiles", "profile",
                     lambda x: x["seq"])
    if missing is not None:
        return missing
    for key, rid in present.items():
        want = state.references[key]
        # One blob at a time: memory follows the largest profile, not their sum.
        row = session.get_one(ReferenceProfile, rid)
        actual = {"format": row.format, "sha256": row.sha256, "size_bytes": row.size_bytes,
                  "n_samples": row.n_samples, "modules": list(row.modules)}
        for name, value in actual.items():
            if name in want and want[name] != value:
                return StateDifference(
                    "reference_profiles", f"{key[0]} v{key[1]} {name} is {value!r}; the log "
                    f"says {want[name]!r}", want["seq"],
                )
        if hashlib.sha256(row.blob).hexdigest() != row.sha256:
            return StateDifference(
                "reference_profiles", f"{key[0]} v{key[1]} bytes no longer match their sha256",
                want["seq"],
            )
        session.expunge(row)
    return None


def compare_state(session: Session) -> StateDifference | None:
    """Replay every audit event and compare the state it describes with the tables.

    Returns:
        The first difference (table by table: teams, models, versions, tags, aliases, tokens,
        references), or None when the tables are what the log says.
    """
    state = _Expected()
    for event in _events(session):
        _apply(state, event)
    teams = {name: name for name in session.scalars(select(Team.name))}
    difference = _first(teams, state.teams, "teams", "team", lambda seq: seq)
    if difference is not None:
        return difference
    owners = {
        name: team for name, team in session.execute(
            select(Model.name, Team.name).join(Team, Team.id == Model.team_id, isouter=True)
        )
    }
    difference = _first(owners, state.models, "models", "model", lambda x: x[1])
    if difference is not None:
        return difference
    for name, team in owners.items():
        if team != state.models[name][0]:
            return StateDifference(
                "models", f"{name!r} belongs to {team!r}; the log says {state.models[name][0]!r}",
                state.models[name][1],
            )
    for check in (_check_versions, _check_tags, _check_aliases, _check_tokens, _check_references):
        difference = check(session, state)
        if difference is not None:
            return difference
    return None


__all__ = ["StateDifference", "compare_state"]
