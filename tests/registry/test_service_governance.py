"""Service: alias history (`--at`), tags, version stages, incident lifecycle, on both databases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from registry import service
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied, PolicyRefused
from registry.models import utcnow
from registry.schemas import Actor, AlertIn, PolicyRules

READER = Actor(name="rita", team="default", role="reader")
OUTSIDER = Actor(name="olga", team="beta", role="maintainer")


@pytest.fixture
def three(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., object],
) -> Database:
    """A model `m` (team default) with versions 1, 2, 3."""
    service.create_team(database, admin, "beta")
    for i in range(3):
        service.register_version(
            database, admin, model="m", config=make_config(i), weights=make_weights(str(i))
        )
    return database


def _count_events(db: Database, admin: Actor) -> int:
    return service.verify_audit(db, admin).checked


class TestAliasHistory:
    def test_list_and_history_agree_with_the_audit_log(self, three: Database, admin: Actor):
        """Each move names its audit event, whose payload says the same alias and versions."""
        service.promote(three, admin, model="m", version=1, alias="staging")
        service.promote(three, admin, model="m", version=1, alias="production")
        service.promote(three, admin, model="m", version=2, alias="production", reason="better")
        service.rollback(three, admin, model="m", alias="production", reason="regression")
        listed = service.list_aliases(three, admin, "m").items
        assert [(a.alias, a.version) for a in listed] == [("production", 1), ("staging", 1)]
        history = service.alias_history(three, admin, "m", "production")
        assert [(h.action, h.from_version, h.version, h.reason) for h in history.items] == [
            ("rollback", 2, 1, "regression"),
            ("promote", 1, 2, "better"),
            ("promote", None, 1, ""),
        ]
        events = {e.seq: e for e in service.list_audit(three, admin, limit=1000).items}
        for move in history.items:
            event = events[move.audit_seq]
            assert event.action == f"alias.{move.action}"
            assert event.payload["alias"] == "production"
            assert (event.payload["before"], event.payload["after"]) == (
                move.from_version,
                move.version,
            )
            assert event.at == pytest.approx(move.at, abs=timedelta(seconds=1))
        assert service.verify_audit(three, admin).ok

    def test_at_answers_the_version_in_force_then(self, three: Database, admin: Actor):
        """--at returns the move in force at each moment between moves."""
        moments = []
        for version in (1, 2, 3):
            service.promote(three, admin, model="m", version=version, alias="production")
            moments.append(utcnow())
        for version, moment in zip((1, 2, 3), moments, strict=True):
            found = service.alias_history(three, admin, "m", "production", at=moment)
            assert found.version_at == version
            assert [m.version for m in found.items] == [version]

    def test_history_pages(self, three: Database, admin: Actor):
        """Moves come newest first in keyset pages."""
        for version in (1, 2, 3, 1):
            service.promote(three, admin, model="m", version=version, alias="production")
        first = service.alias_history(three, admin, "m", "production", limit=3)
        assert [m.version for m in first.items] == [1, 3, 2]
        rest = service.alias_history(
            three, admin, "m", "production", limit=3, cursor=first.next_cursor
        )
        assert [m.version for m in rest.items] == [1]
        assert rest.next_cursor is None

    def test_bad_moments_are_clear_errors(self, three: Database, admin: Actor):
        """Before the model existed, in the future, naive, before the alias: each refused."""
        service.promote(three, admin, model="m", version=1, alias="production")
        with pytest.raises(InvalidInput, match="before model 'm' existed"):
            service.alias_history(
                three, admin, "m", "production", at=utcnow() - timedelta(days=3650)
            )
        with pytest.raises(InvalidInput, match="in the future"):
            service.alias_history(three, admin, "m", "production", at=utcnow() + timedelta(1))
        with pytest.raises(InvalidInput, match="timezone"):
            service.alias_history(
                three, admin, "m", "production", at=utcnow().replace(tzinfo=None)
            )
        model_created = service.get_model(three, admin, "m").created_at
        with pytest.raises(NotFound, match="did not exist yet"):
            service.alias_history(three, admin, "m", "production", at=model_created)
        with pytest.raises(NotFound, match="no alias 'prodution'"):
            service.alias_history(three, admin, "m", "prodution")

    def test_other_teams_see_nothing(self, three: Database, admin: Actor):
        """Another team's maintainer gets 'not found' for list and history."""
        service.promote(three, admin, model="m", version=1, alias="production")
        with pytest.raises(NotFound, match="model 'm' not found"):
            service.list_aliases(three, OUTSIDER, "m")
        with pytest.raises(NotFound, match="model 'm' not found"):
            service.alias_history(three, OUTSIDER, "m", "production")

    def test_versions_carry_their_aliases(self, three: Database, admin: Actor):
        """get_version and list_versions name the aliases serving each version."""
        service.promote(three, admin, model="m", version=2, alias="production")
        service.promote(three, admin, model="m", version=2, alias="staging")
        assert service.get_version(three, admin, "m", 2).aliases == ["production", "staging"]
        page = service.list_versions(three, admin, "m")
        assert [(v.version, v.aliases) for v in page.items] == [
            (3, []),
            (2, ["production", "staging"]),
            (1, []),
        ]


class TestTags:
    def test_set_list_filter_remove(self, three: Database, admin: Actor):
        """Tags are set (overwriting a key), listed, filter listings, removed; each audited."""
        before = _count_events(three, admin)
        service.set_tags(three, admin, model="m", version=1, tags={"dataset": "coco", "run": "a"})
        service.set_tags(three, admin, model="m", version=3, tags={"dataset": "coco"})
        tags = service.set_tags(three, admin, model="m", version=1, tags={"run": "b"})
        assert [(t.key, t.value) for t in tags] == [("dataset", "coco"), ("run", "b")]
        coco = service.list_versions(three, admin, "m", tags={"dataset": "coco"})
        assert [v.version for v in coco.items] == [3, 1]
        assert coco.items[1].tags == {"dataset": "coco", "run": "b"}
        both = service.list_versions(three, admin, "m", tags={"dataset": "coco", "run": "b"})
        assert [v.version for v in both.items] == [1]
        left = service.remove_tags(three, admin, model="m", version=1, keys=["run"])
        assert [t.key for t in left] == ["dataset"]
        assert _count_events(three, admin) == before + 4
        # Setting what is already set changes nothing and writes no event.
        service.set_tags(three, admin, model="m", version=1, tags={"dataset": "coco"})
        assert _count_events(three, admin) == before + 4
        actions = [e.action for e in service.list_audit(three, admin, limit=4).items]
        assert actions == ["version.untag", "version.tag", "version.tag", "version.tag"]

    def test_bad_tags_write_nothing(self, three: Database, admin: Actor):
        """Bad keys, empty values, unknown keys to remove, readers: refused, nothing written."""
        before = _count_events(three, admin)
        with pytest.raises(InvalidInput, match="tag key"):
            service.set_tags(three, admin, model="m", version=1, tags={"Bad Key": "x"})
        with pytest.raises(InvalidInput, match="1-256"):
            service.set_tags(three, admin, model="m", version=1, tags={"k": ""})
        with pytest.raises(InvalidInput, match="KEY=VALUE"):
            service.parse_tags(["novalue"])
        with pytest.raises(NotFound, match="no tag 'k'"):
            service.remove_tags(three, admin, model="m", version=1, keys=["k"])
        with pytest.raises(PermissionDenied):
            service.set_tags(three, READER, model="m", version=1, tags={"k": "v"})
        with pytest.raises(NotFound):
            service.set_tags(three, OUTSIDER, model="m", version=1, tags={"k": "v"})
        assert _count_events(three, admin) == before
        assert service.list_tags(three, admin, model="m", version=1) == []


class TestStages:
    def test_deprecate_archive_and_refuse_promotion(self, three: Database, admin: Actor):
        """Deprecated still promotes; archived is final, refused while served, never promoted."""
        v = service.set_stage(three, admin, model="m", version=1, stage="deprecated")
        assert v.stage == "deprecated"
        service.promote(three, admin, model="m", version=1, alias="production")
        with pytest.raises(Conflict, match="served by alias production"):
            service.set_stage(three, admin, model="m", version=1, stage="archived")
        service.promote(three, admin, model="m", version=2, alias="production")
        archived = service.set_stage(
            three, admin, model="m", version=1, stage="archived", reason="superseded"
        )
        assert archived.stage == "archived"
        assert archived.config_hash == service.get_version(three, admin, "m", 1).config_hash
        with pytest.raises(Conflict, match="archived: archiving is final"):
            service.set_stage(three, admin, model="m", version=1, stage="active")
        with pytest.raises(Conflict, match="v1 is archived"):
            service.promote(three, admin, model="m", version=1, alias="production")
        assert service.list_aliases(three, admin, "m").items[0].version == 2
        listed = service.list_versions(three, admin, "m", stage="archived")
        assert [x.version for x in listed.items] == [1]
        event = service.list_audit(three, admin, limit=1).items[0]
        assert (event.action, event.payload) == (
            "version.stage",
            {"before": "deprecated", "after": "archived", "reason": "superseded"},
        )

    def test_bad_stage(self, three: Database, admin: Actor):
        """An unknown stage is refused before anything is written."""
        with pytest.raises(InvalidInput, match="unknown stage 'retired'"):
            service.set_stage(three, admin, model="m", version=1, stage="retired")
        with pytest.raises(InvalidInput, match="unknown stage"):
            service.list_versions(three, admin, "m", stage="retired")


def _alert(fingerprint: str, version: str, module: str, starts: str) -> AlertIn:
    return AlertIn.model_validate({
        "status": "firing",
        "labels": {"alertname": "Drift", "model": "m", "version": version, "module": module},
        "startsAt": starts,
        "fingerprint": fingerprint,
    })


@pytest.fixture
def incidents(three: Database, admin: Actor) -> Database:
    """Incidents 1 (v1, vision, Jan 1), 2 (v2, text, Feb 1), 3 (v2, vision, Mar 1) on model m."""
    service.record_alerts(three, admin, [
        _alert("f1", "1", "vision", "2026-01-01T00:00:00Z"),
        _alert("f2", "2", "text", "2026-02-01T00:00:00Z"),
        _alert("f3", "2", "vision", "2026-03-01T00:00:00Z"),
    ])
    return three


class TestIncidentLifecycle:
    def test_acknowledge_resolve_reopen_link(self, incidents: Database, admin: Actor):
        """Each step changes the incident and appends its audit event; wrong steps conflict."""
        maint = Actor(name="mo", team="default", role="maintainer")
        acked = service.acknowledge_incident(incidents, maint, 1, note="looking")
        assert (acked.status, acked.acknowledged_by) == ("open", "mo")
        with pytest.raises(Conflict, match="acknowledged by mo"):
            service.acknowledge_incident(incidents, admin, 1)
        acknowledged = service.list_incidents(incidents, admin, status="acknowledged")
        assert [i.id for i in acknowledged.items] == [1]
        done = service.resolve_incident(incidents, maint, 1, note="retrained encoder")
        assert (done.status, done.resolved_by, done.resolution_note) == (
            "resolved", "mo", "retrained encoder"
        )
        assert done.ends_at is not None
        with pytest.raises(Conflict, match="already resolved"):
            service.resolve_incident(incidents, maint, 1, note="again")
        with pytest.raises(Conflict, match="resolved: reopen it first"):
            service.acknowledge_incident(incidents, maint, 1)
        again = service.reopen_incident(incidents, maint, 1, reason="drift is back")
        assert (again.status, again.ends_at, again.acknowledged_by) == ("open", None, None)
        with pytest.raises(Conflict, match="is open"):
            service.reopen_incident(incidents, maint, 1)
        promoted = service.promote(incidents, admin, model="m", version=3, alias="production")
        move = service.alias_history(incidents, admin, "m", "production").items[0]
        assert move.version == promoted.version
        linked = service.link_incident(incidents, maint, 1, move=move.id)
        assert linked.answered_by_move == move.id
        actions = [e.action for e in service.list_audit(incidents, admin, limit=5).items]
        assert actions == [
            "incident.link", "alias.promote", "incident.reopen", "incident.resolve",
            "incident.acknowledge",
        ]
        assert service.verify_audit(incidents, admin).ok

    def test_filters(self, incidents: Database, admin: Actor):
        """By status, module, version (with model) and start time."""
        def ids(**kw: object) -> list[int]:
            found = service.list_incidents(incidents, admin, **kw)  # type: ignore[arg-type]
            return [i.id for i in found.items]

        assert ids() == [3, 2, 1]
        assert ids(module="vision") == [3, 1]
        assert ids(model="m", version=2) == [3, 2]
        assert ids(since=datetime(2026, 1, 15, tzinfo=UTC)) == [3, 2]
        assert ids(until=datetime(2026, 2, 1, tzinfo=UTC)) == [2, 1]
        service.resolve_incident(incidents, admin, 2, note="ok")
        assert ids(status="resolved") == [2]
        assert ids(status="open") == [3, 1]
        assert ids(version=2) == [3, 2]  # version 2 of any model the actor sees
        with pytest.raises(InvalidInput, match="unknown status 'closed'"):
            ids(status="closed")
        reversed_range = {"since": datetime(2026, 3, 1, tzinfo=UTC),
                          "until": datetime(2026, 1, 1, tzinfo=UTC)}
        assert ids(**reversed_range) == []

    def test_another_teams_incident_is_not_found_and_nothing_written(
        self, incidents: Database, admin: Actor
    ):
        """Resolving another team's incident, or a reader resolving: refused, nothing written."""
        before = _count_events(incidents, admin)
        with pytest.raises(NotFound, match="incident 1 not found"):
            service.resolve_incident(incidents, OUTSIDER, 1, note="not mine")
        with pytest.raises(NotFound, match="incident 1 not found"):
            service.get_incident(incidents, OUTSIDER, 1)
        with pytest.raises(PermissionDenied):
            service.resolve_incident(incidents, READER, 1, note="x")
        with pytest.raises(InvalidInput, match="needs a note"):
            service.resolve_incident(incidents, admin, 1, note="  ")
        with pytest.raises(NotFound, match="alias move 99 not found"):
            service.link_incident(incidents, admin, 1, move=99)
        assert _count_events(incidents, admin) == before
        assert service.get_incident(incidents, admin, 1).status == "open"


MAINT = Actor(name="mo", team="default", role="maintainer")
MAINT2 = Actor(name="max", team="default", role="maintainer")


def _rules(**kw: object) -> PolicyRules:
    return PolicyRules.model_validate(kw)


def _unmet(exc: pytest.ExceptionInfo[PolicyRefused]) -> list[str]:
    return [e["rule"] for e in exc.value.errors]


class TestProtectedAliases:
    def test_refusal_lists_every_unmet_rule_then_passes(self, three: Database, admin: Actor):
        """Four rules unmet at once are all listed; meeting each one lets the promotion in."""
        service.set_policy(three, admin, model="m", alias="production", rules=_rules(
            min_role="admin", require_reference=True, no_open_incident=True, approvals=2,
        ))
        service.record_alerts(three, admin, [_alert("f1", "2", "vision", "2026-01-01T00:00:00Z")])
        before = _count_events(three, admin)
        with pytest.raises(PolicyRefused) as refused:
            service.promote(three, MAINT, model="m", version=2, alias="production")
        assert _unmet(refused) == ["min_role", "require_reference", "no_open_incident",
                                   "approvals"]
        assert refused.value.detail.count("\n- ") == 4
        assert "0 of 2 approvals" in refused.value.detail
        assert _count_events(three, admin) == before
        assert service.list_aliases(three, admin, "m").items == []
        service.attach_reference(three, admin, model="m", version=2, fmt="npz-v1", blob=b"r",
                                 n_samples=1, modules=["vision"])
        service.resolve_incident(three, admin, 1, note="fixed upstream")
        service.approve(three, MAINT, model="m", version=2, alias="production")
        with pytest.raises(PolicyRefused) as refused:
            service.promote(three, admin, model="m", version=2, alias="production")
        assert _unmet(refused) == ["approvals"]
        service.approve(three, MAINT2, model="m", version=2, alias="production")
        service.withdraw_approval(three, MAINT2, model="m", version=2, alias="production")
        with pytest.raises(PolicyRefused, match="1 of 2 approvals"):
            service.promote(three, admin, model="m", version=2, alias="production")
        service.approve(three, MAINT2, model="m", version=2, alias="production")
        done = service.promote(three, admin, model="m", version=2, alias="production")
        assert done.version == 2
        approvals = service.list_approvals(three, admin, model="m", version=2).items
        assert [(a.approver, a.withdrawn_by) for a in approvals] == [
            ("mo", None), ("max", "max"), ("max", None)
        ]

    def test_new_model_declares_default_aliases_only(self, three: Database, admin: Actor):
        """A new model declares staging and production, rule-less; a typo alias is refused."""
        assert service.get_model(three, admin, "m").free_aliases is False
        declared = service.list_policies(three, admin, "m").items
        assert [(p.alias, p.version) for p in declared] == [("production", 1), ("staging", 1)]
        assert all(p.rules == PolicyRules() for p in declared)
        created = [e for e in service.list_audit(three, admin, limit=100).items
                   if e.action == "model.create"]
        assert created[0].payload["after"]["declared_aliases"] == ["production", "staging"]
        service.promote(three, admin, model="m", version=1, alias="staging")
        service.promote(three, admin, model="m", version=1, alias="production")
        before = _count_events(three, admin)
        with pytest.raises(PolicyRefused, match="'prodution' is not declared") as refused:
            service.promote(three, admin, model="m", version=1, alias="prodution")
        assert _unmet(refused) == ["declared"]
        detail = refused.value.detail
        assert "declared: production, staging" in detail
        assert "`mmgov policy set m prodution`" in detail
        assert "`mmgov aliases free m on`" in detail
        assert _count_events(three, admin) == before
        assert [a.alias for a in service.list_aliases(three, admin, "m").items] == [
            "production", "staging"
        ]

    def test_declaring_or_freeing_lets_a_new_alias_in(self, three: Database, admin: Actor):
        """Declaring the alias, or switching free aliases on (audited, admins only), admits it."""
        service.set_policy(three, admin, model="m", alias="canary", rules=_rules())
        service.promote(three, admin, model="m", version=1, alias="canary")
        with pytest.raises(PermissionDenied, match="only an admin"):
            service.set_free_aliases(three, MAINT, model="m", free=True)
        with pytest.raises(NotFound):
            service.set_free_aliases(three, admin, model="nosuch", free=True)
        before = _count_events(three, admin)
        on = service.set_free_aliases(three, admin, model="m", free=True, note="experiments")
        assert (on.free_aliases, on.declared) == (True, ["canary", "production", "staging"])
        assert service.get_model(three, admin, "m").free_aliases is True
        event = service.list_audit(three, admin, limit=1).items[0]
        assert (event.action, event.model) == ("model.free_aliases", "m")
        assert event.payload == {"before": False, "after": True, "note": "experiments"}
        again = service.set_free_aliases(three, admin, model="m", free=True)
        assert again.free_aliases is True
        assert _count_events(three, admin) == before + 1
        service.promote(three, admin, model="m", version=1, alias="shadow")
        service.set_free_aliases(three, admin, model="m", free=False)
        with pytest.raises(PolicyRefused, match="'shadow2' is not declared"):
            service.promote(three, admin, model="m", version=1, alias="shadow2")
        # An alias that exists keeps moving; removing a declaration stops new ones only.
        service.promote(three, admin, model="m", version=2, alias="shadow")
        service.remove_policy(three, admin, model="m", alias="production")
        service.remove_policy(three, admin, model="m", alias="staging")
        with pytest.raises(PolicyRefused, match=r"declared: canary\)"):
            service.promote(three, admin, model="m", version=1, alias="production")

    def test_default_aliases_come_from_the_setting(
        self, database: Database, admin: Actor, monkeypatch: pytest.MonkeyPatch,
        make_config: Callable[..., CanonicalConfig], make_weights: Callable[..., object],
    ):
        """MMGOV_DEFAULT_ALIASES names the declared aliases of new models; a bad name is refused."""
        monkeypatch.setenv(service.DEFAULT_ALIASES_ENV, " blue, green ,blue")
        service.register_version(database, admin, model="a", config=make_config(),
                                 weights=make_weights("a"))
        listed = service.list_policies(database, admin, "a").items
        assert [p.alias for p in listed] == ["blue", "green"]
        with pytest.raises(PolicyRefused, match="declared: blue, green"):
            service.promote(database, admin, model="a", version=1, alias="production")
        monkeypatch.setenv(service.DEFAULT_ALIASES_ENV, "")
        service.register_version(database, admin, model="b", config=make_config(),
                                 weights=make_weights("b"))
        assert service.list_policies(database, admin, "b").items == []
        with pytest.raises(PolicyRefused, match="declared: none"):
            service.promote(database, admin, model="b", version=1, alias="staging")
        monkeypatch.setenv(service.DEFAULT_ALIASES_ENV, "production,Bad Name")
        before = _count_events(database, admin)
        with pytest.raises(InvalidInput, match="MMGOV_DEFAULT_ALIASES"):
            service.create_model(database, admin, name="c", team=None)
        assert _count_events(database, admin) == before
        with pytest.raises(NotFound):
            service.get_model(database, admin, "c")

    def test_soak_on_staging(self, three: Database, admin: Actor):
        """The candidate must have served staging for the duration without an incident."""
        service.set_policy(three, admin, model="m", alias="staging", rules=_rules())
        service.set_policy(three, admin, model="m", alias="production", rules=_rules(
            soak={"alias": "staging", "seconds": service.parse_duration("1s")}
        ))
        with pytest.raises(PolicyRefused, match="served 'staging' for 0s"):
            service.promote(three, admin, model="m", version=2, alias="production")
        service.promote(three, admin, model="m", version=2, alias="staging")
        with pytest.raises(PolicyRefused) as refused:
            service.promote(three, admin, model="m", version=2, alias="production")
        assert _unmet(refused) == ["soak"]
        time.sleep(1.2)
        service.promote(three, admin, model="m", version=2, alias="production")

    def test_archived_is_a_rule_with_its_reason(self, three: Database, admin: Actor):
        """An archived version is refused with the not_archived rule, and cannot be approved."""
        service.set_policy(three, admin, model="m", alias="production", rules=_rules(approvals=1))
        service.set_stage(three, admin, model="m", version=1, stage="archived")
        with pytest.raises(PolicyRefused) as refused:
            service.promote(three, admin, model="m", version=1, alias="production")
        assert _unmet(refused) == ["not_archived", "approvals"]
        with pytest.raises(Conflict, match="archived: it can no longer be approved"):
            service.approve(three, MAINT, model="m", version=1, alias="production")

    def test_bad_policies_and_approvals_write_nothing(self, three: Database, admin: Actor):
        """Unknown soak alias, bad duration, own version, undeclared alias, non-admin policy."""
        before = _count_events(three, admin)
        with pytest.raises(InvalidInput, match="unknown alias 'stagin'"):
            service.set_policy(three, admin, model="m", alias="production", rules=_rules(
                soak={"alias": "stagin", "seconds": 60}
            ))
        for raw in ("soon", "10", "0s", "-1h", ""):
            with pytest.raises(InvalidInput, match="duration"):
                service.parse_duration(raw)
        assert service.parse_duration("1h30m") == 5400
        with pytest.raises(PermissionDenied, match="only an admin"):
            service.set_policy(three, MAINT, model="m", alias="production", rules=_rules())
        with pytest.raises(InvalidInput, match="declares no alias 'canary'"):
            service.approve(three, MAINT, model="m", version=1, alias="canary")
        assert _count_events(three, admin) == before
        service.set_policy(three, admin, model="m", alias="production", rules=_rules(approvals=1))
        with pytest.raises(PermissionDenied, match="registered m v1 and cannot approve it"):
            service.approve(three, admin, model="m", version=1, alias="production")
        service.approve(three, MAINT, model="m", version=1, alias="production")
        with pytest.raises(Conflict, match="already approved"):
            service.approve(three, MAINT, model="m", version=1, alias="production")
        with pytest.raises(NotFound, match="has no approval"):
            service.withdraw_approval(three, MAINT2, model="m", version=1, alias="production")
        with pytest.raises(NotFound):
            service.approve(three, OUTSIDER, model="m", version=1, alias="production")
        assert _count_events(three, admin) == before + 2
