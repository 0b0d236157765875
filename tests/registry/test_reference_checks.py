"""Reference profiles checked on upload: npz structure, sizes before reading, metadata, names."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import service
from registry.audit import chain
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import InvalidInput, NotFound
from registry.profile_check import MMGOV_PROFILE_FORMAT, check_module_names
from registry.schemas import Actor
from registry.weights import WeightsInfo

ROOT = Path(__file__).resolve().parents[2]
BOMB_BYTES = 1 << 30


def profile_bytes(
    shapes: dict[str, tuple[int, int]] | None = None, compress: bool = False, **meta_over: object
) -> bytes:
    """An mmgov profile as ``to_bytes`` writes it: ``emb_i`` arrays and a JSON ``__meta__``."""
    modules = shapes or {"image_encoder": (8, 4), "text_encoder.layers.0": (8, 3)}
    meta: dict[str, object] = {
        "format": MMGOV_PROFILE_FORMAT,
        "pooling": "cls",
        "modules": list(modules),
        "n_samples": min(n for n, _ in modules.values()),
        "dims": {m: d for m, (_, d) in modules.items()},
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    meta.update(meta_over)
    rng = np.random.default_rng(0)
    arrays = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for i, (n, d) in enumerate(modules.values()):
        arrays[f"emb_{i}"] = rng.normal(size=(n, d))
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return buf.getvalue()


def zip_bomb(path: Path, member: str = "emb_0.npy", expands_to: int = BOMB_BYTES) -> Path:
    """A ~1 MB deflated archive whose one member's header and size agree on ``expands_to`` bytes."""
    rows = (expands_to - 128) // (8 * 64)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (rows, 64)}
    )
    chunk = bytes(8 * 64 * 4096)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(member, "w", force_zip64=True) as out,
    ):
        out.write(header.getvalue())
        left = rows * 8 * 64
        while left:
            out.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 MB zip whose member expands to 1 GiB of float64 zeros."""
    return zip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.npz")


@pytest.fixture
def one(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., WeightsInfo],
) -> Database:
    """Model `m` with version 1."""
    service.register_version(database, admin, model="m", config=make_config(),
                             weights=make_weights())
    return database


def attach(db: Database, actor: Actor, blob: bytes, *, fmt: str = MMGOV_PROFILE_FORMAT,
           n_samples: int = 8, modules: list[str] | None = None) -> object:
    return service.attach_reference(
        db, actor, model="m", version=1, fmt=fmt, blob=blob, n_samples=n_samples,
        modules=modules or ["image_encoder", "text_encoder.layers.0"],
    )


def assert_refused(db: Database, actor: Actor, blob: bytes, match: str, **kw: object) -> None:
    """The upload is InvalidInput naming ``match`` and leaves the database as it was."""
    with db.read() as session:
        before = chain.head(session)
    with pytest.raises(InvalidInput, match=match):
        attach(db, actor, blob, **kw)  # type: ignore[arg-type]
    with db.read() as session:
        assert chain.head(session) == before
    with pytest.raises(NotFound):
        service.get_reference(db, actor, "m", 1)


class TestModuleNames:
    @pytest.mark.parametrize("name", ["模", "a\r\nX:1", "a,b", "", "a..b", ".a", "a.", "1a",
                                      "a b", "a" * 129, "a\x00"])
    def test_refused(self, name: str) -> None:
        """Non-ASCII, control characters, separators, empty segments and long names are refused."""
        with pytest.raises(InvalidInput, match="invalid module name"):
            check_module_names([name])

    @pytest.mark.parametrize(
        "name", ["image_encoder", "text_encoder.layers.0", "_x.y_1", "a" * 128]
    )
    def test_accepted(self, name: str) -> None:
        """Dotted identifiers (numeric segments after the first) are accepted."""
        assert check_module_names([name]) == [name]

    def test_duplicates_refused(self) -> None:
        """A name listed twice is refused."""
        with pytest.raises(InvalidInput, match="twice"):
            check_module_names(["a", "a"])

    def test_refused_on_upload_of_any_format(self, one: Database, admin: Actor) -> None:
        """Even an opaque format's module list is checked before anything is stored."""
        assert_refused(one, admin, b"opaque", "invalid module name", fmt="opaque.v1",
                       modules=["模"])


class TestProfiles:
    def test_valid_profile_stored(self, one: Database, admin: Actor) -> None:
        """A consistent profile (stored or deflated members) is accepted with its metadata."""
        for compress in (False, True):
            blob = profile_bytes(compress=compress)
            meta = service.read_profile_metadata(blob)
            assert meta is not None
            assert meta["n_samples"] == 8
        info = attach(one, admin, profile_bytes())
        assert info.modules == ["image_encoder", "text_encoder.layers.0"]  # type: ignore[attr-defined]

    def test_random_bytes_refused(self, one: Database, admin: Actor) -> None:
        """Bytes that are no zip archive are a clear InvalidInput, nothing stored."""
        assert_refused(one, admin, os.urandom(4096), "not a valid npz archive")

    def test_zip_bomb_refused_before_reading(self, one: Database, admin: Actor, bomb: Path) -> None:
        """A member whose declared size is 1000x the archive is refused by its directory entry."""
        assert_refused(one, admin, bomb.read_bytes(), "expand to", fmt="npz", modules=["a"])

    def test_pickle_refused(self, one: Database, admin: Actor) -> None:
        """An object array (a pickle inside the .npy) is refused by its dtype."""
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.frombuffer(b"{}", dtype=np.uint8),
                 emb_0=np.array([{"x": 1}], dtype=object))
        assert_refused(one, admin, buf.getvalue(), "pickles, are refused")

    def test_size_disagreeing_with_header_refused(self, one: Database, admin: Actor) -> None:
        """A member whose header claims more data than it holds is refused."""
        good = profile_bytes()
        src = zipfile.ZipFile(io.BytesIO(good))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for info in src.infolist():
                data = src.read(info)
                out.writestr(info.filename, data[:-8] if info.filename == "emb_0.npy" else data)
        assert_refused(one, admin, buf.getvalue(), "declares")

    @pytest.mark.parametrize(
        ("meta", "match"),
        [
            ({"n_samples": 7}, "says 7 samples"),
            ({"dims": {"image_encoder": 5, "text_encoder.layers.0": 3}}, "dimensions"),
            ({"modules": ["image_encoder"]}, "do not match"),
            ({"modules": ["模", "b"]}, "invalid module name"),
            ({"format": "other.v9"}, "expected 'mmgov.reference.v1\\+npz'"),
        ],
    )
    def test_metadata_inconsistent_refused(
        self, one: Database, admin: Actor, meta: dict[str, object], match: str
    ) -> None:
        """Sample counts, dims, modules and format must agree with the arrays."""
        assert_refused(one, admin, profile_bytes(**meta), match)

    def test_arguments_must_match_profile(self, one: Database, admin: Actor) -> None:
        """n_samples and modules given with the upload must be the profile's own."""
        assert_refused(one, admin, profile_bytes(), "samples, not 9", n_samples=9)
        assert_refused(one, admin, profile_bytes(), "holds modules", modules=["image_encoder"])

    def test_opaque_format_stored_as_is(self, one: Database, admin: Actor) -> None:
        """A format the registry does not know is stored unread (its names are still checked)."""
        info = attach(one, admin, os.urandom(64), fmt="vendor.v2", modules=["a"])
        assert info.format == "vendor.v2"  # type: ignore[attr-defined]

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(blob=st.binary(min_size=1, max_size=2048),
           fmt=st.sampled_from([MMGOV_PROFILE_FORMAT, "npz"]))
    def test_hostile_bytes_never_stored(
        self, one: Database, admin: Actor, blob: bytes, fmt: str
    ) -> None:
        """Arbitrary bytes under an npz tag are InvalidInput (no other error), nothing stored."""
        for data in (blob, b"PK\x03\x04" + blob):
            with pytest.raises(InvalidInput):
                attach(one, admin, data, fmt=fmt)
        with pytest.raises(NotFound):
            service.get_reference(one, admin, "m", 1)


# VmHWM is this process's own high-water mark; getrusage's ru_maxrss is not: Linux carries the
# parent's peak across fork and exec into it (a child of a grown pytest process reads 1.6 GB).
_PEAK = """
import sys
def peak():
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print("PEAK", kib * 1024)
"""


def _peak(code: str, tmp_path: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMGOV_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    done = subprocess.run([sys.executable, "-c", _PEAK + code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path, check=False)
    peaks = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK")]
    assert peaks, done.stdout + done.stderr
    return peaks[-1], done.stdout + done.stderr


class TestMemoryBounded:
    def test_cli_attach_of_a_zip_bomb(self, bomb: Path, tmp_path: Path) -> None:
        """`mmgov reference attach` of a 1 MB bomb (1 GiB inside) refuses it under 300 MB RSS."""
        assert bomb.stat().st_size < 2 << 20
        assert sum(i.file_size for i in zipfile.ZipFile(bomb).infolist()) >= BOMB_BYTES - 1024
        for member in ("emb_0.npy", "__meta__.npy"):
            path = zip_bomb(tmp_path / f"{member}.npz", member=member) if member != "emb_0.npy" \
                else bomb
            code = (
                "from registry.cli import main\n"
                f"sys.argv = ['mmgov', 'reference', 'attach', 'm', '1', {str(path)!r}]\n"
                "try:\n    main()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
                "peak()\n"
            )
            peak, out = _peak(code, tmp_path)
            assert "expand to" in out, out
            assert "Traceback" not in out, out
            assert peak < 300 << 20, f"peak RSS {peak >> 20} MiB"
