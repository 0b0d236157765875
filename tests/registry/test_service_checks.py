"""check_weights / `mmgov verify`: a weights file re-hashed against the registered version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from registry import service
from registry.cli import app
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import InvalidInput, NotFound
from registry.schemas import Actor
from registry.weights import WeightsInfo, inspect_weights


def _weights(path: Path, text_value: float) -> Path:
    save_file(
        {
            "image_encoder.w": np.ones((4, 4), dtype=np.float32),
            "text_encoder.w": np.full((3,), text_value, dtype=np.float32),
            "fusion_layer.b": np.zeros((2,), dtype=np.float32),
        },
        str(path),
    )
    return path


@pytest.fixture
def registered(
    database: Database, admin: Actor, make_config: Callable[..., CanonicalConfig], tmp_path: Path
) -> Path:
    """Version 1 of `clip` registered from a local safetensors file; returns that file."""
    path = _weights(tmp_path / "v1.safetensors", 1.0)
    service.register_version(
        database, admin, model="clip", config=make_config(), weights=inspect_weights(str(path))
    )
    return path


def test_the_registered_file_checks_out(
    database: Database, admin: Actor, registered: Path
) -> None:
    """With no path, the version's own file is re-hashed and matches, module by module."""
    check = service.check_weights(database, admin, model="clip", version=1)
    assert check.ok
    assert check.path == str(registered.resolve())
    assert check.modules_ok == ["fusion_layer", "image_encoder", "text_encoder"]
    assert check.modules_changed == check.modules_missing == check.modules_unexpected == []


def test_a_changed_file_names_the_changed_module(
    database: Database, admin: Actor, registered: Path, tmp_path: Path
) -> None:
    """A file whose text encoder differs fails and names exactly that module."""
    other = _weights(tmp_path / "other.safetensors", 2.0)
    check = service.check_weights(database, admin, model="clip", version=1, path=other)
    assert not check.ok
    assert check.modules_changed == ["text_encoder"]
    assert check.modules_ok == ["fusion_layer", "image_encoder"]
    # Tampering with the registered file in place is caught the same way.
    _weights(registered, 3.0)
    assert service.check_weights(database, admin, model="clip", version=1).modules_changed == [
        "text_encoder"
    ]


def test_remote_weights_need_a_path_and_unknowns_fail(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., WeightsInfo],
) -> None:
    """Remote weights cannot be checked without a local copy; unknown versions are NotFound."""
    service.register_version(
        database, admin, model="remote", config=make_config(), weights=make_weights("r")
    )
    with pytest.raises(InvalidInput, match="give the path of a downloaded copy"):
        service.check_weights(database, admin, model="remote", version=1)
    with pytest.raises(NotFound):
        service.check_weights(database, admin, model="remote", version=9)


def test_cli_verify_exit_codes(db_url: str, registered: Path, tmp_path: Path) -> None:
    """`mmgov verify` exits 0 on a match and 1 naming the module on a mismatch."""
    runner = CliRunner()
    ok = runner.invoke(app, ["--db", db_url, "verify", "clip", "1"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("ok: ")
    other = _weights(tmp_path / "other.safetensors", 2.0)
    bad = runner.invoke(app, ["--db", db_url, "verify", "clip", "1", str(other)])
    assert bad.exit_code == 1
    assert "modules that differ: text_encoder" in bad.stderr
