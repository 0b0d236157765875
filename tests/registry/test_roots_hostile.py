"""Allowed weights roots: judged before any file-system look-up, one answer, no leaving links."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from registry.errors import InvalidInput
from registry.pipeline import inspect_pipeline
from registry.weights import inspect_weights, outside_roots
from tests.conftest import write_safetensors


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A weights root with a good file, and an outside directory with a file."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    write_safetensors(root / "good.safetensors")
    write_safetensors(outside / "secret.safetensors", tag="s")
    return {"root": root, "outside": outside}


def _refusal(uri: str, roots: list[Path]) -> str:
    with pytest.raises(InvalidInput) as caught:
        inspect_weights(uri, allowed_roots=roots)
    return caught.value.detail


class TestOneAnswer:
    def test_existing_and_missing_paths_outside_get_the_same_answer(self, tree: dict[str, Path]):
        """/etc/shadow, a missing path and an outside file are refused alike: no oracle."""
        roots = [tree["root"]]
        candidates = [
            "/etc/shadow",
            "/nonexistent/weights.safetensors",
            str(tree["outside"] / "secret.safetensors"),
            str(tree["outside"] / "missing.safetensors"),
            str(tree["outside"]),
        ]
        answers = {re.sub(r"'[^']*'", "PATH", _refusal(c, roots)) for c in candidates}
        assert answers == {"weights file PATH is outside the allowed directories"}

    def test_symlinks_leaving_the_root_are_refused_like_outside(self, tree: dict[str, Path]):
        """A symlink inside a root to an outside file, or to nothing outside, is refused alike."""
        root = tree["root"]
        (root / "out.safetensors").symlink_to(tree["outside"] / "secret.safetensors")
        (root / "dangling.safetensors").symlink_to("/nonexistent/x.safetensors")
        for name in ("out.safetensors", "dangling.safetensors"):
            assert "outside the allowed directories" in _refusal(str(root / name), [root])

    def test_no_lookup_outside_the_roots(self, tree: dict[str, Path]):
        """The roots are judged lexically first: an unreadable directory outside is not stat'ed."""
        locked = tree["outside"] / "locked"
        locked.mkdir(mode=0o000)
        try:
            assert outside_roots(locked / "x.safetensors", [tree["root"]])
        finally:
            locked.chmod(0o700)

    def test_hard_link_inside_a_root_is_refused(self, tree: dict[str, Path]):
        """A hard link in a root to a file outside it is refused (the other name is unknown)."""
        link = tree["root"] / "hard.safetensors"
        os.link(tree["outside"] / "secret.safetensors", link)
        assert "hard links" in _refusal(str(link), [tree["root"]])

    def test_file_inside_and_symlink_within_the_root_accepted(self, tree: dict[str, Path]):
        """Files in a root, and symlinks that stay in it, are accepted."""
        root = tree["root"]
        (root / "alias.safetensors").symlink_to(root / "good.safetensors")
        for name in ("good.safetensors", "alias.safetensors"):
            assert inspect_weights(str(root / name), allowed_roots=[root]).format == "safetensors"

    def test_pipeline_directories_get_one_answer(self, tree: dict[str, Path]):
        """Pipeline directories outside the roots, existing or not, get the same refusal."""
        answers = set()
        for given in (tree["outside"], Path("/nonexistent/tokenizer"), Path("/etc")):
            with pytest.raises(InvalidInput) as caught:
                inspect_pipeline({"tokenizer": given}, allowed_roots=[tree["root"]])
            answers.add(re.sub(r"'[^']*'", "PATH", caught.value.detail))
        assert len(answers) == 1, answers
