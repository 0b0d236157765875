"""Service: reference profiles, incidents from Alertmanager alerts, teams and API tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry import service
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from registry.schemas import Actor, AlertIn
from registry.weights import WeightsInfo


@pytest.fixture
def one(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., WeightsInfo],
) -> Database:
    """Team `vision` owning model `m` with version 1."""
    service.create_team(database, admin, "vision")
    service.register_version(
        database, admin, model="m", config=make_config(), weights=make_weights(), team="vision"
    )
    return database


def _alert(status: str, fp: str = "fp1", version: str = "1") -> AlertIn:
    return AlertIn.model_validate(
        {
            "status": status,
            "labels": {
                "alertname": "MmgovDrift",
                "model": "m",
                "version": version,
                "module": "text_encoder",
            },
            "annotations": {"summary": "drift"},
            "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": "2024-05-01T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "fingerprint": fp,
        }
    )


class TestReferences:
    def test_attach_and_get_round_trip(self, one: Database, admin: Actor) -> None:
        """Bytes, format and sha256 come back; attaching the same bytes again is a no-op."""
        blob = bytes(range(256)) * 10
        info = service.attach_reference(
            one,
            admin,
            model="m",
            version=1,
            fmt="safetensors",
            blob=blob,
            n_samples=8,
            modules=["image_encoder"],
        )
        got = service.get_reference(one, admin, "m", 1)
        assert (got.blob, got.info.sha256, got.info.format) == (blob, info.sha256, "safetensors")
        again = service.attach_reference(
            one,
            admin,
            model="m",
            version=1,
            fmt="safetensors",
            blob=blob,
            n_samples=8,
            modules=["image_encoder"],
        )
        assert again.sha256 == info.sha256
        with pytest.raises(Conflict):
            service.attach_reference(
                one,
                admin,
                model="m",
                version=1,
                fmt="safetensors",
                blob=b"other",
                n_samples=8,
                modules=["image_encoder"],
            )

    def test_bad_input_and_missing(self, one: Database, admin: Actor) -> None:
        """Empty blobs are InvalidInput; a version without a profile is NotFound."""
        with pytest.raises(InvalidInput):
            service.attach_reference(
                one, admin, model="m", version=1, fmt="npz", blob=b"", n_samples=1, modules=["x"]
            )
        with pytest.raises(NotFound):
            service.get_reference(one, admin, "m", 1)


class TestIncidents:
    def test_firing_then_resolved(self, one: Database, admin: Actor) -> None:
        """A firing alert opens one incident (repeats do not), resolved closes it."""
        opened = service.record_alerts(one, admin, [_alert("firing")])
        assert (opened[0].status, opened[0].model, opened[0].version) == ("open", "m", 1)
        assert opened[0].module == "text_encoder"
        service.record_alerts(one, admin, [_alert("firing")])
        assert len(service.list_incidents(one, admin).items) == 1
        closed = service.record_alerts(one, admin, [_alert("resolved")])
        assert closed[0].status == "resolved"
        assert closed[0].ends_at is not None
        assert service.list_incidents(one, admin, status="open").items == []
        actions = [e.action for e in service.list_audit(one, admin, model="m", limit=2).items]
        assert actions == ["incident.resolve", "incident.open"]

    def test_unknown_version_links_model_only(self, one: Database, admin: Actor) -> None:
        """A version label that names no version leaves the version unlinked."""
        inc = service.record_alerts(one, admin, [_alert("firing", fp="x", version="42")])[0]
        assert (inc.model, inc.version) == ("m", None)

    def test_other_team_sees_no_incidents(self, one: Database, admin: Actor) -> None:
        """Incidents of a team's model are invisible to another team."""
        service.record_alerts(one, admin, [_alert("firing")])
        other = Actor(name="x", team="nlp", role="maintainer")
        assert service.list_incidents(one, other).items == []
        reader = Actor(name="r", team="vision", role="reader")
        with pytest.raises(PermissionDenied):
            service.record_alerts(one, reader, [_alert("firing", fp="2")])


class TestTokens:
    def test_create_authenticate_revoke(self, one: Database, admin: Actor) -> None:
        """A token authenticates as its team and role until revoked; only its sha256 is kept."""
        info, secret = service.create_token(one, admin, team="vision", role="maintainer", name="ci")
        assert secret.startswith(service.TOKEN_PREFIX)
        assert len(secret) > 40
        actor = service.authenticate(one, secret)
        assert (actor.team, actor.role) == ("vision", "maintainer")
        service.revoke_token(one, admin, info.id)
        with pytest.raises(Unauthenticated):
            service.authenticate(one, secret)
        with pytest.raises(Unauthenticated):
            service.authenticate(one, "mmgov_guess")

    def test_only_admins_manage_tokens_and_roles_checked(self, one: Database, admin: Actor) -> None:
        """Maintainers cannot create tokens; unknown roles and teams are refused."""
        maint = Actor(name="m", team="vision", role="maintainer")
        with pytest.raises(PermissionDenied):
            service.create_token(one, maint, team="vision", role="admin", name="x")
        with pytest.raises(InvalidInput):
            service.create_token(one, admin, team="vision", role="root", name="x")
        with pytest.raises(NotFound):
            service.create_token(one, admin, team="ghost", role="reader", name="x")
        with pytest.raises(Conflict):
            service.create_team(one, admin, "vision")
