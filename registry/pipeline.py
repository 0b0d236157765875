"""A version's data pipeline (tokenizer and processor directories): per-file hashes, one digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PipelineCheck", "PipelineDiff", "PipelineInfo", "diff_pipelines", "inspect_pipeline"]


@dataclass(frozen=True)
class PipelineInfo:
    """Every file of every pipeline component, hashed; ``digest`` covers them all."""

    digest: str
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {path: sha256}

    def to_json(self) -> dict[str, Any]:
        """Return the JSON the registry stores."""
        raise NotImplementedError  # filled in by the pipeline work (issue 11, part 6)

    @classmethod
    def from_json(cls, data: Any) -> PipelineInfo:
        """Read a stored pipeline.

        Raises:
            InvalidInput: for malformed data.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class PipelineDiff:
    """What changed between two pipelines, per component."""

    changed: dict[str, list[str]] = field(default_factory=dict)  # component -> changed files
    added: dict[str, list[str]] = field(default_factory=dict)  # component -> new files
    removed: dict[str, list[str]] = field(default_factory=dict)  # component -> gone files
    unchanged: list[str] = field(default_factory=list)  # components with no change
    components_added: list[str] = field(default_factory=list)
    components_removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineCheck:
    """Pipeline directories on disk compared with a recorded pipeline."""

    ok: bool
    diff: PipelineDiff


def inspect_pipeline(
    components: Mapping[str, str | Path], *, allowed_roots: Sequence[Path] | None = None
) -> PipelineInfo:
    """Hash every file of each component directory.

    Raises:
        InvalidInput: bad component name, a directory missing, outside the allowed roots, with a
            link leaving it, too many files or too many bytes.
    """
    raise NotImplementedError


def diff_pipelines(old: PipelineInfo | None, new: PipelineInfo | None) -> PipelineDiff:
    """Return what changed from ``old`` to ``new`` (None: no pipeline recorded)."""
    raise NotImplementedError
