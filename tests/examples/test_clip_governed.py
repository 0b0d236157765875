"""The CLIP story on SQLite and PostgreSQL: what a user sees after registering their own model."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.clip.__main__ import main
from examples.clip.artifacts import FINETUNED, MONITORED, Artifacts, build_artifacts
from examples.clip.model import MODULES
from examples.clip.story import ACTOR, MODEL, default_config_path, run_clip_story, story_ok
from registry import service
from registry.config import canonicalize, load_config_file
from registry.db import Database

SEED_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "clip" / "config.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Both versions' checkpoints, pipeline and profiles, made once for both databases."""
    return build_artifacts(tmp_path_factory.mktemp("clip"), echo=lambda _line: None)


def test_the_story_governs_a_clip_model(db_url: str, built: Artifacts) -> None:
    """Sharded v1 and v2 register with the seed config as is; the diff names text_projection
    alone; references, drift verdicts, the rollback and the audit chain hold."""
    lines: list[str] = []
    result = run_clip_story(db_url, built=built, echo=lines.append)
    assert story_ok(result), lines

    assert default_config_path() == SEED_CONFIG
    assert len(result.shards) >= 3
    assert all((built.v1 / shard).is_file() for shard in result.shards)
    assert result.versions == [1, 2]

    db = Database(db_url)
    try:
        seed = canonicalize(load_config_file(SEED_CONFIG))
        for number, directory in ((1, built.v1), (2, built.v2)):
            version = service.get_version(db, ACTOR, MODEL, number)
            assert version.config_hash == seed.hash
            assert version.config == seed.data
            assert sorted(version.module_hashes) == sorted(MODULES)
            assert str(directory) in version.weights_uri
            reference = service.get_reference(db, ACTOR, MODEL, number)
            assert reference.info.modules == list(MONITORED)
            assert reference.info.n_samples == result.reference_samples == 256

        diff = service.diff_versions(db, ACTOR, MODEL, 1, 2)
        assert diff.config_changes == []
        assert diff.weights_changed
        assert diff.modules.changed == [FINETUNED]
        assert {"vision_model", "text_model", "visual_projection", "logit_scale"} <= set(
            diff.modules.unchanged
        )
        assert diff.pipeline is not None
        assert sorted(diff.pipeline.unchanged) == ["image_processor", "tokenizer"]
        assert diff.pipeline.changed == diff.pipeline.added == diff.pipeline.removed == {}

        production = service.resolve_alias(db, ACTOR, MODEL, "production")
        assert production.version.version == 1
        assert result.production_history == [1, 2, 1]
        report = service.verify_audit(db, ACTOR)
        assert report.ok
        assert report.checked == result.audit_events
        actions = [e.action for e in service.list_audit(db, ACTOR, model=MODEL, limit=50).items]
        assert actions.count("version.register") == 2
    finally:
        db.dispose()

    for module in MONITORED:
        clean, noisy = result.in_distribution[module], result.drifted[module]
        assert clean.windows == 2
        assert clean.alarms == 0
        assert clean.last_score is not None
        assert clean.last_score < 1.0
        assert noisy.windows == 2
    assert result.drifted["vision_model"].alarms == 2  # pixel noise moves the image tower only
    assert result.drifted["text_model"].alarms == 0
    assert result.finetune_losses[-1] < result.finetune_losses[0]


def test_cli_help_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m examples.clip --help` describes the story and its options."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--export" in out
    assert "--database" in out


def test_a_workdir_with_an_earlier_story_is_refused(tmp_path: Path) -> None:
    """A second story in a kept work directory would renumber the versions: it stops first."""
    (tmp_path / "mmgov.db").write_bytes(b"")
    with pytest.raises(FileExistsError, match="already holds a story's database"):
        run_clip_story(workdir=tmp_path)
    assert main(["--workdir", str(tmp_path)]) == 2
