"""Service: what a version records of its weights and pipeline, and `check_weights` on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry import service
from registry.db import Database
from registry.errors import InvalidInput
from registry.models import AuditEvent, ModelVersion
from registry.schemas import Actor
from registry.service import WeightsSource
from registry.weights import ModuleGrouping
from tests.conftest import write_safetensors

CONFIG = "model: {version: v1.2.0}\ntraining: {epochs: 10}\n"


def _sharded(root: Path, tag: str = "a") -> Path:
    """A checkpoint as save_pretrained shards it: two shards and model.safetensors.index.json."""
    root.mkdir(parents=True, exist_ok=True)
    write_safetensors(root / "model-00001-of-00002.safetensors", tag, ("vision_model",))
    write_safetensors(root / "model-00002-of-00002.safetensors", tag, ("text_model", "proj"))
    index = {
        "metadata": {"total_size": 96},
        "weight_map": {
            "vision_model.w": "model-00001-of-00002.safetensors",
            "text_model.w": "model-00002-of-00002.safetensors",
            "proj.w": "model-00002-of-00002.safetensors",
        },
    }
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    return root


def _pipeline(root: Path, vocab: str = "a\nb\n") -> dict[str, Path]:
    tok, proc = root / "tokenizer", root / "image_processor"
    tok.mkdir(parents=True, exist_ok=True)
    proc.mkdir(parents=True, exist_ok=True)
    (tok / "vocab.txt").write_text(vocab)
    (tok / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    (proc / "preprocessor_config.json").write_text('{"size": 32}')
    return {"tokenizer": tok, "image_processor": proc}


def _count(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(ModelVersion)) or 0,
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def _register(db: Database, actor: Actor, weights: Path, **kw: object) -> service.RegisterResult:  # type: ignore[name-defined]
    return service.register_version(
        db,
        actor,
        model="byo",
        config=CONFIG,
        weights=WeightsSource(uri=str(weights)),
        **kw,  # type: ignore[arg-type]
    )


class TestSharded:
    def test_sharded_checkpoint_is_one_version(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A sharded directory registers once: a manifest digest, every shard, modules across."""
        v = _register(database, admin, _sharded(tmp_path / "ckpt")).version
        assert v.weights_format == "safetensors-sharded"
        assert sorted(v.weights_shards or {}) == [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]
        assert sorted(v.module_hashes) == ["proj", "text_model", "vision_model"]
        assert v.weights_uri.endswith("/ckpt/model.safetensors.index.json")
        check = service.check_weights(database, admin, model="byo", version=1)
        assert check.ok
        assert check.modules_ok == ["proj", "text_model", "vision_model"]

    def test_altered_shard_named_by_verify(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """Changing one tensor names its shard and its module; the other modules stay ok."""
        ckpt = _sharded(tmp_path / "ckpt")
        _register(database, admin, ckpt)
        copy = shutil.copytree(ckpt, tmp_path / "copy")
        write_safetensors(copy / "model-00002-of-00002.safetensors", "a", ("text_model", "proj"))
        shard = copy / "model-00002-of-00002.safetensors"
        data = bytearray(shard.read_bytes())
        data[-1] ^= 0xFF  # the last tensor is proj.w
        shard.write_bytes(bytes(data))
        check = service.check_weights(database, admin, model="byo", version=1, path=copy)
        assert not check.ok
        assert check.shards_changed == ["model-00002-of-00002.safetensors"]
        assert check.modules_changed == ["proj"]
        assert check.modules_ok == ["text_model", "vision_model"]

    def test_missing_shard_refused_and_nothing_written(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """An index naming a shard that is not there is refused; no version, no event."""
        ckpt = _sharded(tmp_path / "ckpt")
        (ckpt / "model-00001-of-00002.safetensors").unlink()
        before = _count(database)
        with pytest.raises(InvalidInput, match=r"model-00001-of-00002\.safetensors"):
            _register(database, admin, ckpt)
        assert _count(database) == before

    def test_index_outside_its_directory_refused(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A weight_map naming ../x is refused before anything is read or written."""
        ckpt = _sharded(tmp_path / "ckpt")
        index = json.loads((ckpt / "model.safetensors.index.json").read_text())
        index["weight_map"]["proj.w"] = "../elsewhere.safetensors"
        (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
        before = _count(database)
        with pytest.raises(InvalidInput):
            _register(database, admin, ckpt)
        assert _count(database) == before

    def test_not_safetensors_refused(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A YAML file given as weights is refused, naming it and the expected format."""
        fake = tmp_path / "config.yaml"
        fake.write_text(CONFIG)
        with pytest.raises(InvalidInput, match="is not a safetensors file"):
            _register(database, admin, fake)
        assert _count(database) == (0, 0)

    def test_deeper_grouping_recorded_and_used_by_verify(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A version asking for patterns records them, and verify groups the same way."""
        grouping = ModuleGrouping(depth=1, patterns=("text_model.*",))
        weights = WeightsSource(uri=str(_sharded(tmp_path / "ckpt")), grouping=grouping)
        v = service.register_version(database, admin, model="byo", config=CONFIG, weights=weights)
        assert v.version.module_grouping == {"patterns": ["text_model.*"]}
        assert service.check_weights(database, admin, model="byo", version=1).ok


class TestPipeline:
    def test_pipeline_recorded_diffed_and_checked(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A changed tokenizer file makes a new version; diff names it; verify checks it."""
        weights = write_safetensors(tmp_path / "w.safetensors")
        first = _register(database, admin, weights, pipeline=_pipeline(tmp_path / "p1"))
        assert first.version.pipeline is not None
        assert sorted(first.version.pipeline["components"]) == ["image_processor", "tokenizer"]
        same = _register(database, admin, weights, pipeline=_pipeline(tmp_path / "p1"))
        assert (same.created, same.version.version) == (False, 1)
        second = _register(database, admin, weights, pipeline=_pipeline(tmp_path / "p2", "a\nc\n"))
        assert (second.created, second.version.version) == (True, 2)
        diff = service.diff_versions(database, admin, "byo", 1, 2)
        assert diff.pipeline is not None
        assert diff.pipeline.changed == {"tokenizer": ["vocab.txt"]}
        assert diff.pipeline.unchanged == ["image_processor"]
        assert diff.config_changes == []
        assert not diff.weights_changed
        good = service.check_weights(
            database, admin, model="byo", version=1, pipeline=_pipeline(tmp_path / "p1")
        )
        assert good.ok
        bad = service.check_weights(
            database, admin, model="byo", version=1, pipeline=_pipeline(tmp_path / "p2", "a\nc\n")
        )
        assert not bad.ok
        assert bad.pipeline is not None
        assert bad.pipeline.changed == {"tokenizer": ["vocab.txt"]}

    def test_missing_pipeline_directory_leaves_nothing(
        self, database: Database, admin: Actor, tmp_path: Path
    ) -> None:
        """A pipeline directory that does not exist is refused before the transaction."""
        weights = write_safetensors(tmp_path / "w.safetensors")
        with pytest.raises(InvalidInput):
            _register(database, admin, weights, pipeline={"tokenizer": tmp_path / "nope"})
        assert _count(database) == (0, 0)
