"""Service: heartbeats and deployments, `model_status`, automatic rollback policies (both DBs)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest

from registry import service
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import InvalidInput, NotFound, PermissionDenied, TooManyRequests
from registry.loop_schemas import HeartbeatIn, RollbackPolicyIn
from registry.models import utcnow
from registry.schemas import Actor, AlertIn

MODULES = {"vision": "a" * 64, "text": "b" * 64}
SERVING = Actor(name="default/serving", team="default", role="reader", scope="deployments")
READER = Actor(name="rita", team="default", role="reader")
OUTSIDER = Actor(name="olga", team="beta", role="maintainer")


def _modules(tag: str) -> dict[str, str]:
    return {m: hashlib.sha256(f"{tag}/{m}".encode()).hexdigest() for m in ("vision", "text")}


@pytest.fixture
def fleet(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., object],
) -> Database:
    """Model `m` with versions 1 and 2 (module hashes recorded), production on 2 after 1."""
    service.create_team(database, admin, "beta")
    for i in (1, 2):
        service.register_version(
            database, admin, model="m", config=make_config(i),
            weights=make_weights(str(i), _modules(str(i))),
        )
    service.promote(database, admin, model="m", version=1, alias="production")
    service.promote(database, admin, model="m", version=2, alias="production")
    return database


def _beat(db: Database, version: int, instance: str = "pod-1", **change: object) -> HeartbeatIn:
    info = service.get_version(db, Actor(name="x", role="admin"), "m", version)
    fields: dict[str, object] = {
        "instance": instance,
        "version": version,
        "alias": "production",
        "config_hash": info.config_hash,
        "module_hashes": dict(info.module_hashes),
        **change,
    }
    return HeartbeatIn.model_validate(fields)


def _events(db: Database, admin: Actor) -> list[str]:
    return [e.action for e in service.list_audit(db, admin, limit=1000).items]


class TestHeartbeats:
    def test_matching_heartbeat_is_listed_in_status(self, fleet: Database, admin: Actor):
        """A heartbeat with the registered hashes shows as serving production, matching."""
        got = service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 2),
                                       min_interval=0)
        assert got.matches
        assert got.mismatched == []
        assert got.version == 2
        status = service.model_status(fleet, admin, "m")
        assert [(a.alias, a.version, a.instances) for a in status.aliases] == [
            ("production", 2, 1)
        ]
        assert status.mismatched == []
        assert status.stale == []
        assert "deployment.register" in _events(fleet, admin)

    def test_refresh_appends_no_audit_event(self, fleet: Database, admin: Actor):
        """An unchanged heartbeat refreshes the row and writes no audit event."""
        service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 2),
                                 min_interval=0)
        before = len(_events(fleet, admin))
        got = service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 2),
                                       min_interval=0)
        assert got.heartbeats == 2
        assert len(_events(fleet, admin)) == before

    def test_mismatching_modules_open_an_incident(self, fleet: Database, admin: Actor):
        """Loaded module hashes that differ are listed and open one incident."""
        beat = _beat(fleet, 2, module_hashes={**_modules("2"), "text": "c" * 64})
        got = service.record_heartbeat(fleet, SERVING, model="m", heartbeat=beat, min_interval=0)
        assert got.mismatched == ["text"]
        assert not got.matches
        assert service.model_status(fleet, admin, "m").mismatched == ["pod-1"]
        incidents = service.list_incidents(fleet, admin, model="m", status="open").items
        assert [(i.alertname, i.version, i.labels["instance"]) for i in incidents] == [
            ("MMGovLoadedModulesMismatch", 2, "pod-1")
        ]
        service.record_heartbeat(fleet, SERVING, model="m", heartbeat=beat, min_interval=0)
        assert len(service.list_incidents(fleet, admin, model="m").items) == 1

    def test_stale_instances(self, fleet: Database, admin: Actor):
        """An instance silent for longer than stale_after is stale and not counted as serving."""
        service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 2),
                                 min_interval=0)
        status = service.model_status(fleet, admin, "m", stale_after=0)
        assert status.stale == ["pod-1"]
        assert status.aliases[0].instances == 0

    def test_flood_is_refused_and_nothing_written(self, fleet: Database, admin: Actor):
        """A second heartbeat within the minimum interval is TooManyRequests; nothing changes."""
        service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 2))
        with pytest.raises(TooManyRequests, match="at most one per"):
            service.record_heartbeat(fleet, SERVING, model="m", heartbeat=_beat(fleet, 1))
        [row] = service.list_deployments(fleet, admin, "m")
        assert (row.version, row.heartbeats) == (2, 1)

    @pytest.mark.parametrize(
        ("actor", "model", "version", "error"),
        [
            (READER, "m", 2, PermissionDenied),
            (OUTSIDER, "m", 2, NotFound),
            (SERVING, "m", 9, NotFound),
            (SERVING, "nope", 2, NotFound),
        ],
    )
    def test_bad_heartbeats_write_nothing(
        self, fleet: Database, admin: Actor, actor: Actor, model: str, version: int,
        error: type[Exception],
    ):
        """Unscoped reader, other team, unknown version or model: a clear error, no row."""
        beat = _beat(fleet, 2).model_copy(update={"version": version})
        before = len(_events(fleet, admin))
        with pytest.raises(error):
            service.record_heartbeat(fleet, actor, model=model, heartbeat=beat, min_interval=0)
        assert service.list_deployments(fleet, admin, "m") == []
        assert len(_events(fleet, admin)) == before

    def test_malformed_hashes_are_invalid(self, fleet: Database, admin: Actor):
        """A module hash that is not 64 lowercase hex characters is InvalidInput."""
        beat = _beat(fleet, 2).model_copy(update={"module_hashes": {"text": "XYZ"}})
        with pytest.raises(InvalidInput, match="malformed module hashes"):
            service.record_heartbeat(fleet, SERVING, model="m", heartbeat=beat)
        assert service.list_deployments(fleet, admin, "m") == []


def _alert(fingerprint: str, version: str, *, name: str = "MmgovDrift",
           severity: str = "critical", ago: float = 600) -> AlertIn:
    return AlertIn.model_validate({
        "status": "firing",
        "labels": {"alertname": name, "model": "m", "version": version, "severity": severity},
        "annotations": {},
        "startsAt": (utcnow() - timedelta(seconds=ago)).isoformat(),
        "fingerprint": fingerprint,
    })


def _production(db: Database, admin: Actor) -> int:
    return service.resolve_alias(db, admin, "m", "production").version.version


class TestAutoRollback:
    def test_matching_incident_rolls_back_and_links(self, fleet: Database, admin: Actor):
        """A matching alert on v2 moves production back to v1; the incident names the move."""
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn(alertnames=["MmgovDrift"]))
        [incident] = service.record_alerts(fleet, admin, [_alert("f1", "2")])
        assert _production(fleet, admin) == 1
        [decision] = service.list_auto_rollbacks(fleet, admin, "m")
        assert (decision.outcome, decision.from_version, decision.to_version) == (
            "rolled_back", 2, 1
        )
        assert service.get_incident(fleet, admin, incident.id).answered_by_move == decision.move
        move = service.alias_history(fleet, admin, "m", "production").items[0]
        assert move.id == decision.move
        assert f"incident {incident.id}" in move.reason
        assert service.verify_audit(fleet, admin).ok

    def test_repeat_notification_does_not_act_twice(self, fleet: Database, admin: Actor):
        """The same alert again (restart, repeat) leaves one decision and one move."""
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn())
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        service.promote(fleet, admin, model="m", version=2, alias="production")
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        assert len(service.list_auto_rollbacks(fleet, admin, "m")) == 1
        assert _production(fleet, admin) == 2

    def test_second_failure_within_cooldown_does_not_roll_back(
        self, fleet: Database, admin: Actor
    ):
        """After an automatic move, another incident within the cool-down is recorded only."""
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn(cooldown_seconds=3600))
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        service.promote(fleet, admin, model="m", version=2, alias="production")
        service.record_alerts(fleet, admin, [_alert("f2", "2")])
        assert _production(fleet, admin) == 2
        outcomes = [d.outcome for d in service.list_auto_rollbacks(fleet, admin, "m")]
        assert outcomes == ["cooldown", "rolled_back"]

    def test_non_matching_alerts_do_nothing(self, fleet: Database, admin: Actor):
        """Another alert name, severity, or an alert not firing long enough moves nothing."""
        service.set_rollback_policy(
            fleet, admin, model="m", alias="production",
            rules=RollbackPolicyIn(alertnames=["MmgovDrift"], severities=["critical"],
                                   min_firing_seconds=300),
        )
        service.record_alerts(fleet, admin, [
            _alert("a", "2", name="Other"),
            _alert("b", "2", severity="warning"),
            _alert("c", "2", ago=10),
            _alert("d", "1"),
        ])
        assert _production(fleet, admin) == 2
        assert service.list_auto_rollbacks(fleet, admin, "m") == []

    def test_dry_run_records_and_moves_nothing(self, fleet: Database, admin: Actor):
        """A dry-run policy records what it would have done."""
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn(dry_run=True))
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        assert _production(fleet, admin) == 2
        [decision] = service.list_auto_rollbacks(fleet, admin, "m")
        assert (decision.outcome, decision.to_version, decision.move) == ("dry_run", 1, None)
        assert "alias.auto_rollback" in _events(fleet, admin)

    def test_never_to_a_version_with_open_incidents_or_archived(
        self, fleet: Database, admin: Actor
    ):
        """v1 with an open incident (or archived) is no target: outcome no_target, no move."""
        service.record_alerts(fleet, admin, [_alert("old", "1")])
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn())
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        assert _production(fleet, admin) == 2
        assert [d.outcome for d in service.list_auto_rollbacks(fleet, admin, "m")] == [
            "no_target"
        ]

    def test_archived_target_is_refused(self, fleet: Database, admin: Actor):
        """An archived v1 is never rolled back to."""
        service.set_stage(fleet, admin, model="m", version=1, stage="archived")
        service.set_rollback_policy(fleet, admin, model="m", alias="production",
                                    rules=RollbackPolicyIn())
        service.record_alerts(fleet, admin, [_alert("f1", "2")])
        assert _production(fleet, admin) == 2

    def test_policy_on_missing_alias_is_refused(self, fleet: Database, admin: Actor):
        """A policy naming an alias that does not exist: NotFound, nothing written."""
        before = len(_events(fleet, admin))
        with pytest.raises(NotFound, match="has no alias 'canary'"):
            service.set_rollback_policy(fleet, admin, model="m", alias="canary",
                                        rules=RollbackPolicyIn())
        assert len(_events(fleet, admin)) == before
        assert service.list_rollback_policies(fleet, admin, "m") == []

    def test_mismatch_incident_can_trigger_the_policy(self, fleet: Database, admin: Actor):
        """A loaded-modules mismatch on v2 is an incident the policy may act on."""
        service.set_rollback_policy(
            fleet, admin, model="m", alias="production",
            rules=RollbackPolicyIn(alertnames=["MMGovLoadedModulesMismatch"]),
        )
        beat = _beat(fleet, 2, module_hashes={**_modules("2"), "text": "c" * 64})
        service.record_heartbeat(fleet, SERVING, model="m", heartbeat=beat, min_interval=0)
        assert _production(fleet, admin) == 1
