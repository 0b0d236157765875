"""A version's data pipeline (tokenizer and processor directories): per-file hashes, one digest."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.config import canonical_json, sha256_hex
from registry.errors import ConfigError, InvalidInput
from registry.weights import outside_roots

__all__ = [
    "MAX_PIPELINE_BYTES",
    "MAX_PIPELINE_COMPONENTS",
    "MAX_PIPELINE_FILES",
    "PipelineCheck",
    "PipelineDiff",
    "PipelineInfo",
    "check_pipeline",
    "diff_pipelines",
    "inspect_pipeline",
]

MAX_PIPELINE_FILES = 1_000
"""Most files (and, separately, sub-directories) one pipeline may hold, all components together."""

MAX_PIPELINE_BYTES = 2 << 30
"""Most bytes one pipeline's files may hold, all components together."""

MAX_PIPELINE_COMPONENTS = 16

_COMPONENT = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PipelineInfo:
    """Every file of every pipeline component, hashed; ``digest`` covers them all.

    ``components`` maps a component name (``tokenizer``, ``image_processor`` ...) to
    ``{relative POSIX path: file sha256}``; ``digest`` is
    ``sha256(canonical_json(components))``.
    """

    digest: str
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {path: sha256}

    def to_json(self) -> dict[str, Any]:
        """Return the JSON the registry stores: ``{"digest": ..., "components": {...}}``."""
        return {
            "digest": self.digest,
            "components": {name: dict(files) for name, files in self.components.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> PipelineInfo:
        """Read a stored pipeline.

        Returns:
            The pipeline; ``from_json(p.to_json()) == p``.

        Raises:
            InvalidInput: for malformed data: not an object with exactly ``digest`` and
                ``components``, a bad component name, path or sha256, or a digest that does not
                match the components.
        """
        if not isinstance(data, dict) or set(data) != {"digest", "components"}:
            raise InvalidInput("a stored pipeline is an object with 'digest' and 'components'")
        digest, components = data["digest"], data["components"]
        if not isinstance(components, dict) or not components:
            raise InvalidInput("a stored pipeline's components must be a non-empty object")
        for name, files in components.items():
            _check_component_name(name)
            if not isinstance(files, dict) or not files:
                raise InvalidInput(f"pipeline component {name!r} must map file paths to sha256")
            for path, sha in files.items():
                if not isinstance(path, str) or not _is_relative_posix(path):
                    raise InvalidInput(f"pipeline component {name!r} has a bad path {path!r}")
                if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
                    raise InvalidInput(f"pipeline file {name}/{path} has a malformed sha256")
        copied = {name: dict(files) for name, files in components.items()}
        if not isinstance(digest, str) or digest != _digest(copied):
            raise InvalidInput("a stored pipeline's digest does not match its components")
        return cls(digest=digest, components=copied)


@dataclass(frozen=True)
class PipelineDiff:
    """What changed between two pipelines, per component (every list sorted)."""

    changed: dict[str, list[str]] = field(default_factory=dict)  # component -> changed files
    added: dict[str, list[str]] = field(default_factory=dict)  # component -> new files
    removed: dict[str, list[str]] = field(default_factory=dict)  # component -> gone files
    unchanged: list[str] = field(default_factory=list)  # components with no change
    components_added: list[str] = field(default_factory=list)
    components_removed: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        """Whether anything differs."""
        return bool(
            self.changed
            or self.added
            or self.removed
            or self.components_added
            or self.components_removed
        )


@dataclass(frozen=True)
class PipelineCheck:
    """Pipeline directories on disk compared with a recorded pipeline."""

    ok: bool
    diff: PipelineDiff


def inspect_pipeline(
    components: Mapping[str, str | Path], *, allowed_roots: Sequence[Path] | None = None
) -> PipelineInfo:
    """Hash every file of each component directory.

    Each directory is walked recursively; every regular file is hashed under its path relative
    to the directory (POSIX separators). A symlink is followed only to a regular file inside the
    same directory; symlinked directories, other special files and files with more than one hard
    link are refused. At most ``MAX_PIPELINE_FILES`` files and ``MAX_PIPELINE_BYTES`` bytes per
    pipeline, all components together.

    Args:
        components: component name (``[a-z][a-z0-9_-]{0,63}``) -> absolute directory path,
            e.g. ``{"tokenizer": dir1, "image_processor": dir2}``.
        allowed_roots: ``None`` accepts any directory; otherwise each directory must resolve
            inside one of these; ``[]`` refuses every directory.

    Returns:
        The pipeline; ``digest`` is the sha256 of the canonical JSON of ``components``.

    Raises:
        InvalidInput: no components or more than ``MAX_PIPELINE_COMPONENTS``, a bad component
            name, a relative, missing, non-directory, empty or out-of-root directory, a link
            leaving it, a special file, too many files or too many bytes, or a file name that
            is not UTF-8 text.
    """
    if not components:
        raise InvalidInput("a pipeline needs at least one component directory")
    if len(components) > MAX_PIPELINE_COMPONENTS:
        raise InvalidInput(f"a pipeline has at most {MAX_PIPELINE_COMPONENTS} components")
    budget = _Budget()
    listed: dict[str, list[tuple[str, Path]]] = {}
    for name in sorted(components):
        _check_component_name(name)
        directory = _component_directory(name, components[name], allowed_roots)
        listed[name] = _list_files(name, directory, budget)
    hashed = {
        name: {relative: _hash_file(name, relative, real) for relative, real in files}
        for name, files in listed.items()
    }
    return PipelineInfo(digest=_digest(hashed), components=hashed)


def diff_pipelines(old: PipelineInfo | None, new: PipelineInfo | None) -> PipelineDiff:
    """Return what changed from ``old`` to ``new`` (None: no pipeline recorded)."""
    before = old.components if old is not None else {}
    after = new.components if new is not None else {}
    changed: dict[str, list[str]] = {}
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    unchanged: list[str] = []
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        differing = sorted(p for p in set(a) & set(b) if a[p] != b[p])
        new_files, gone = sorted(set(b) - set(a)), sorted(set(a) - set(b))
        if differing:
            changed[name] = differing
        if new_files:
            added[name] = new_files
        if gone:
            removed[name] = gone
        if not (differing or new_files or gone):
            unchanged.append(name)
    return PipelineDiff(
        changed=changed,
        added=added,
        removed=removed,
        unchanged=unchanged,
        components_added=sorted(set(after) - set(before)),
        components_removed=sorted(set(before) - set(after)),
    )


def check_pipeline(
    recorded: PipelineInfo,
    components: Mapping[str, str | Path],
    *,
    allowed_roots: Sequence[Path] | None = None,
) -> PipelineCheck:
    """Re-hash the pipeline directories on disk and compare them with ``recorded``.

    Returns:
        ``ok`` when every recorded component is given and every file matches, nothing added;
        ``diff`` goes from the recorded pipeline to the one on disk.

    Raises:
        InvalidInput: as ``inspect_pipeline`` for the directories given (a missing directory
            is an error, not a difference).
    """
    found = inspect_pipeline(components, allowed_roots=allowed_roots)
    diff = diff_pipelines(recorded, found)
    return PipelineCheck(ok=not diff.has_changes and found.digest == recorded.digest, diff=diff)


# --- walking and hashing -------------------------------------------------------------------------


@dataclass
class _Budget:
    files: int = 0
    directories: int = 0
    bytes: int = 0


def _check_component_name(name: Any) -> None:
    if not isinstance(name, str) or not _COMPONENT.fullmatch(name):
        raise InvalidInput(f"pipeline component name {name!r} must match [a-z][a-z0-9_-]{{0,63}}")


def _is_relative_posix(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and all(p not in ("", ".", "..") for p in parts) and "\\" not in path


def _component_directory(
    name: str, given: str | Path, allowed_roots: Sequence[Path] | None
) -> Path:
    path = Path(given)
    if not path.is_absolute():
        raise InvalidInput(f"pipeline component {name!r}: give an absolute path, not {str(path)!r}")
    refused = InvalidInput(
        f"pipeline component {name!r}: {str(path)!r} is outside the allowed directories"
    )
    if allowed_roots is not None and outside_roots(path, allowed_roots):
        raise refused  # before any look-up: one answer whether or not the path exists
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InvalidInput(f"pipeline component {name!r}: {str(path)!r} does not exist") from exc
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(
            f"pipeline component {name!r}: {str(path)!r} cannot be resolved"
        ) from exc
    if not real.is_dir():
        raise InvalidInput(f"pipeline component {name!r}: {str(path)!r} is not a directory")
    if allowed_roots is not None:
        roots = [Path(root).resolve() for root in allowed_roots]
        if not any(real.is_relative_to(root) for root in roots):
            raise refused
    return real


def _list_files(name: str, directory: Path, budget: _Budget) -> list[tuple[str, Path]]:
    """Return ``(relative path, real path)`` of every file, sorted, within the budget."""
    files: list[tuple[str, Path]] = []
    pending = [directory]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            raise InvalidInput(
                f"pipeline component {name!r}: {str(current)!r} cannot be listed"
            ) from exc
        for entry in entries:
            path = Path(entry.path)
            relative = path.relative_to(directory).as_posix()
            shown = f"pipeline component {name!r}: {relative!r}"
            if entry.is_symlink():
                real = _inside(path, directory, shown)
            elif entry.is_dir(follow_symlinks=False):
                budget.directories += 1
                if budget.directories > MAX_PIPELINE_FILES:
                    raise InvalidInput(f"pipeline holds more than {MAX_PIPELINE_FILES} directories")
                pending.append(path)
                continue
            else:
                real = path
            info = real.stat()
            if not stat.S_ISREG(info.st_mode):
                raise InvalidInput(f"{shown} is not a regular file")
            if info.st_nlink > 1:
                raise InvalidInput(
                    f"{shown} has {info.st_nlink} hard links; one may be outside the directory"
                )
            budget.files += 1
            budget.bytes += info.st_size
            if budget.files > MAX_PIPELINE_FILES:
                raise InvalidInput(f"pipeline holds more than {MAX_PIPELINE_FILES} files")
            if budget.bytes > MAX_PIPELINE_BYTES:
                raise InvalidInput(f"pipeline files hold more than {MAX_PIPELINE_BYTES} bytes")
            files.append((relative, real))
    if not files:
        raise InvalidInput(f"pipeline component {name!r}: {str(directory)!r} holds no files")
    return sorted(files)


def _inside(link: Path, directory: Path, shown: str) -> Path:
    """Resolve a symlink that must lead to a regular file inside ``directory``."""
    try:
        real = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(f"{shown} is a broken or looping symlink") from exc
    if not real.is_relative_to(directory):
        raise InvalidInput(f"{shown} is a symlink leaving the directory")
    if real.is_dir():
        raise InvalidInput(f"{shown} is a symlink to a directory; they are not followed")
    return real


def _hash_file(name: str, relative: str, real: Path) -> str:
    shown = f"pipeline component {name!r}: {relative!r}"
    try:
        # O_NOFOLLOW: ``real`` is already resolved; a swap for a symlink since is refused.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidInput(f"{shown} cannot be opened: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput(f"{shown} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as exc:
        raise InvalidInput(f"{shown} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _digest(components: dict[str, dict[str, str]]) -> str:
    try:
        return sha256_hex(canonical_json(components))
    except ConfigError as exc:  # a file name that is not valid UTF-8 text
        raise InvalidInput(f"pipeline file names must be UTF-8 text: {exc.detail}") from exc
