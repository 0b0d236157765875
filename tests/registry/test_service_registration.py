"""Service: registration end to end — any layout, the model's schema, teams, nothing half-done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry import service
from registry.config import canonicalize, load_config_file
from registry.db import Database
from registry.errors import ConfigError, Conflict, InvalidInput, NotFound, PermissionDenied
from registry.models import AuditEvent, Model, ModelSchema, ModelVersion, Team
from registry.schemas import Actor
from registry.service import WeightsSource

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "clip" / "config.yaml"
REFERENCE = ROOT / "configs" / "model.yaml"
REFERENCE_SCHEMA = json.loads((ROOT / "configs" / "model.schema.json").read_text())
WEIGHTS_A = ROOT / "tests" / "fixtures" / "release_0_1" / "weights_a.safetensors"
WEIGHTS_B = ROOT / "tests" / "fixtures" / "release_0_1" / "weights_b.safetensors"
SEED_SCHEMA = {
    "type": "object",
    "required": ["model", "training"],
    "properties": {
        "model": {
            "type": "object",
            "properties": {"fusion_type": {"enum": ["concat", "cross_attention", "gated"]}},
        },
        "training": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "batch_size": {"type": "integer", "minimum": 1},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                "epochs": {"type": "integer", "minimum": 0},
            },
        },
    },
}


def _counts(db: Database) -> tuple[int, ...]:
    with db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t))  # type: ignore[arg-type]
            for t in (Model, ModelVersion, ModelSchema, AuditEvent, Team)
        )


def _seed(
    db: Database,
    actor: Actor,
    text: str | None = None,
    weights: Path = WEIGHTS_A,
    model: str = "seed",
    **kw: object,
) -> service.RegisterResult:  # type: ignore[name-defined]
    return service.register_version(
        db,
        actor,
        model=model,
        config=text if text is not None else SEED.read_text(),
        config_source="config.yaml",
        weights=WeightsSource(uri=str(weights)),
        **kw,  # type: ignore[arg-type]
    )


class TestAnyLayout:
    def test_seed_config_registers_verbatim(self, database: Database, admin: Actor) -> None:
        """The seed's config.yaml registers as it is, with its semver and hash."""
        result = _seed(database, admin)
        v = result.version
        assert result.created
        assert (v.version, v.semver, v.schema_version) == (1, "v1.2.0", None)
        assert v.config_hash == canonicalize(load_config_file(SEED)).hash
        assert v.config["model"]["fusion_type"] == "cross_attention"
        assert v.weights_format == "safetensors"
        assert sorted(v.module_hashes) == ["fusion", "text", "vision"]

    def test_same_config_and_weights_return_the_version(
        self, database: Database, admin: Actor
    ) -> None:
        """Registering the same file again returns version 1 and writes nothing."""
        _seed(database, admin)
        before = _counts(database)
        again = _seed(database, admin)
        assert (again.created, again.version.version) == (False, 1)
        assert _counts(database) == before

    def test_mapping_and_text_hash_alike(self, database: Database, admin: Actor) -> None:
        """A parsed mapping (the API's JSON body) and the YAML text are the same config."""
        first = _seed(database, admin)
        mapping = service.register_version(
            database,
            admin,
            model="seed",
            config=load_config_file(SEED),
            weights=WeightsSource(uri=str(WEIGHTS_A)),
        )
        assert (mapping.created, mapping.version.config_hash) == (False, first.version.config_hash)

    def test_malformed_yaml_leaves_nothing(self, database: Database, admin: Actor) -> None:
        """A YAML syntax error names file, line and column; the database is unchanged."""
        before = _counts(database)
        with pytest.raises(ConfigError, match=r"^config\.yaml:3:1: expected the node content"):
            _seed(database, admin, text="model:\n  version: [\n")
        assert _counts(database) == before


class TestSchema:
    def test_violations_listed_and_nothing_written(self, database: Database, admin: Actor) -> None:
        """gatd and learnig_rate are refused together, naming paths and rules; nothing changes."""
        service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA)
        before = _counts(database)
        bad = (
            SEED.read_text()
            .replace("cross_attention", "gatd")
            .replace("learning_rate", "learnig_rate")
        )
        with pytest.raises(ConfigError) as caught:
            _seed(database, admin, text=bad)
        assert caught.value.detail.startswith(
            "config.yaml: 2 violations of seed's config schema v1:\n"
        )
        assert [(e["path"], e["rule"]) for e in caught.value.errors or []] == [
            ("model.fusion_type", "enum"),
            ("training", "additionalProperties"),
        ]
        assert _counts(database) == before

    def test_version_records_its_schema_version(self, database: Database, admin: Actor) -> None:
        """A version says which schema version it was checked against; none before a schema."""
        assert _seed(database, admin).version.schema_version is None
        service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA)
        assert _seed(database, admin, weights=WEIGHTS_B).version.schema_version == 1
        stricter = json.loads(json.dumps(SEED_SCHEMA))
        stricter["properties"]["training"]["properties"]["epochs"]["maximum"] = 100
        assert service.set_schema(database, admin, model="seed", schema=stricter).version == 2  # type: ignore[union-attr]
        third = _seed(database, admin, text=SEED.read_text().replace("epochs: 10", "epochs: 11"))
        assert third.version.schema_version == 2

    def test_schema_decides_number_forms(self, database: Database, admin: Actor) -> None:
        """With the schema, batch_size 32.0 and learning_rate 2e-5 register as the same config."""
        service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA)
        first = _seed(database, admin)
        again = _seed(
            database, admin, text=SEED.read_text().replace("batch_size: 32", "batch_size: 32.0")
        )
        assert (again.created, again.version.version) == (False, first.version.version)

    def test_versions_list_diff_and_remove(self, database: Database, admin: Actor) -> None:
        """Schema versions are numbered, diffed by path, removable; removal accepts any config."""
        first = service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA, note="v1")
        same = service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA)
        assert first is not None
        assert same is not None
        assert (first.version, same.version) == (1, 1)
        relaxed = {**SEED_SCHEMA, "required": ["model"]}
        service.set_schema(database, admin, model="seed", schema=json.dumps(relaxed))
        diff = service.diff_schemas(database, admin, "seed", 1, 2)
        assert [(c.path, c.kind) for c in diff.changes] == [("required", "changed")]
        assert service.set_schema(database, admin, model="seed", schema=None) is None
        listed = service.list_schemas(database, admin, "seed").items
        assert [(s.version, s.current, s.document is None) for s in listed] == [
            (1, False, False),
            (2, False, False),
            (3, False, True),
        ]
        with pytest.raises(NotFound, match="has no config schema"):
            service.get_schema(database, admin, "seed")
        assert service.get_schema(database, admin, "seed", 1).note == "v1"
        assert _seed(database, admin, text="anything: goes\n").created
        actions = [e.action for e in service.list_audit(database, admin, model="seed").items]
        assert actions.count("schema.set") == 2
        assert actions.count("schema.remove") == 1
        assert service.verify_audit(database, admin).ok

    @pytest.mark.parametrize(
        ("schema", "message"),
        [
            ('{"type": "nope"}', "not a valid JSON Schema"),
            ("type: [", "schema.json:1:"),
            ('{"$ref": "https://evil.example/x.json"}', "points outside the schema"),
            ("[1, 2]", "must be a JSON object"),
        ],
    )
    def test_bad_schema_refused_and_nothing_written(
        self, database: Database, admin: Actor, schema: str, message: str
    ) -> None:
        """A schema that is not usable JSON Schema is refused, and no model is created."""
        before = _counts(database)
        with pytest.raises(InvalidInput, match=message):
            service.set_schema(database, admin, model="seed", schema=schema, source="schema.json")
        assert _counts(database) == before

    def test_reader_cannot_set_and_other_team_cannot_see(
        self, database: Database, admin: Actor
    ) -> None:
        """Readers may not set schemas; another team's maintainer gets not-found."""
        service.create_team(database, admin, "alpha")
        service.create_team(database, admin, "beta")
        service.set_schema(database, admin, model="seed", schema=SEED_SCHEMA, team="alpha")
        reader = Actor(name="r", team="alpha", role="reader")
        other = Actor(name="o", team="beta", role="maintainer")
        with pytest.raises(PermissionDenied):
            service.set_schema(database, reader, model="seed", schema=SEED_SCHEMA)
        with pytest.raises(NotFound):
            service.get_schema(database, other, "seed")
        with pytest.raises(NotFound):
            service.set_schema(database, other, model="seed", schema=None)
        assert service.get_schema(database, reader, "seed").version == 1


class TestTeams:
    def test_new_model_without_team_belongs_to_default(
        self, database: Database, admin: Actor
    ) -> None:
        """An admin with no team who names none creates the model for the 'default' team."""
        _seed(database, admin)
        assert service.get_model(database, admin, "seed").team == "default"
        token_holder = Actor(name="t", team="default", role="reader")
        assert service.get_version(database, token_holder, "seed", 1).version == 1

    def test_team_that_is_not_the_owner_is_a_conflict(
        self, database: Database, admin: Actor
    ) -> None:
        """--team naming another team than an existing model's owner is refused, not ignored."""
        service.create_team(database, admin, "alpha")
        service.create_team(database, admin, "beta")
        _seed(database, admin, team="alpha")
        before = _counts(database)
        with pytest.raises(Conflict, match="belongs to team 'alpha', not 'beta'"):
            _seed(database, admin, weights=WEIGHTS_B, team="beta")
        assert _counts(database) == before

    def test_unknown_team_not_found(self, database: Database, admin: Actor) -> None:
        """Naming a team that does not exist is refused (only 'default' is made on demand)."""
        before = _counts(database)
        with pytest.raises(NotFound, match="team 'nosuchteam' not found"):
            _seed(database, admin, team="nosuchteam")
        assert _counts(database) == before
