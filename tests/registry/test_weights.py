"""Tests for registry.weights: URI checks, checksums and per-module safetensors hashes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from safetensors import SafetensorError, deserialize
from safetensors.numpy import load_file, save_file

from registry import weights
from registry.errors import InvalidInput
from registry.weights import (
    CHUNK_BYTES,
    DEFAULT_GROUPING,
    DTYPE_BITS,
    MAX_URI_LENGTH,
    ModuleGrouping,
    inspect_weights,
    parse_weights_uri,
)

HOSTILE = [
    pytest.param("", id="empty"),
    pytest.param("weights/model.safetensors", id="relative"),
    pytest.param("./model.safetensors", id="dot-relative"),
    pytest.param("../model.safetensors", id="parent-relative"),
    pytest.param("/srv/models/../../etc/passwd", id="dotdot"),
    pytest.param("/srv/models/%2e%2e/secret", id="pct-dotdot"),
    pytest.param("/srv/models/%2E%2E/secret", id="pct-dotdot-upper"),
    pytest.param("/srv/models/%252e%252e/secret", id="double-pct-dotdot"),
    pytest.param("/srv/models/%25252e%25252e/secret", id="triple-pct-dotdot"),
    pytest.param("file:///srv/%2e%2e/etc/passwd", id="file-pct-dotdot"),
    pytest.param("s3://bucket/a/../b", id="s3-dotdot"),
    pytest.param("C:\\models\\m.safetensors", id="backslash"),
    pytest.param("/srv/models\\..\\x", id="backslash-in-path"),
    pytest.param("/srv/models/%5c..%5cx", id="pct-backslash"),
    pytest.param("s3://user:pass@bucket/key", id="userinfo"),
    pytest.param("https://user@host.example/key", id="user-only"),
    pytest.param("file://user@localhost/srv/m", id="file-userinfo"),
    pytest.param("ftp://host.example/m.bin", id="ftp"),
    pytest.param("http://host.example/m.bin", id="plain-http"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:application/octet-stream;base64,AAAA", id="data"),
    pytest.param("/srv/models/m\x00.safetensors", id="nul"),
    pytest.param("/srv/models/%00m", id="pct-nul"),
    pytest.param("/srv/models/m\n.safetensors", id="newline"),
    pytest.param("/srv/models/m\r", id="carriage-return"),
    pytest.param("/srv/models/m\tx", id="tab"),
    pytest.param("/srv/models/m\x7f", id="del"),
    pytest.param("/srv/models/m\x85", id="c1"),
    pytest.param("s3://bucket/key%0a", id="pct-newline"),
    pytest.param("file://evil.com/x", id="file-remote-host"),
    pytest.param("file:relative/path", id="file-relative"),
    pytest.param("s3:///key", id="s3-empty-host"),
    pytest.param("https:///key", id="https-empty-host"),
    pytest.param("gs://bucket", id="no-object-path"),
    pytest.param("hf://org/", id="hf-no-path"),
    pytest.param("s3:bucket/key", id="no-slashes"),
    pytest.param("https://host.example/m.bin?X-Amz-Signature=abc", id="query"),
    pytest.param("https://host.example/m.bin#frag", id="fragment"),
    pytest.param("https://-host.example/m.bin", id="bad-host"),
    pytest.param("https://h%6fst.example/m.bin", id="pct-in-host"),
    pytest.param("https://host.example:99999/m.bin", id="bad-port"),
    pytest.param("s3://bucket:80/key", id="port-on-s3"),
    pytest.param(" /srv/models/m", id="leading-space"),
    pytest.param("//host/share/m", id="unc-like"),
    pytest.param("/" + "a" * MAX_URI_LENGTH, id="too-long"),
]


class TestParseWeightsUri:
    @pytest.mark.parametrize("uri", HOSTILE)
    def test_hostile_uri_rejected(self, uri: str) -> None:
        """Every hostile or unknown location is refused with a reason."""
        with pytest.raises(InvalidInput, match="refused: "):
            parse_weights_uri(uri)

    def test_userinfo_not_echoed(self) -> None:
        """A refused URI's credentials never appear in the error message."""
        with pytest.raises(InvalidInput) as info:
            parse_weights_uri("s3://AKIAXYZ:s3cr3t@bucket/key")
        assert "s3cr3t" not in info.value.detail
        assert "user info" in info.value.detail

    @pytest.mark.parametrize(
        ("uri", "normalised"),
        [
            ("/srv/models/m.safetensors", "file:///srv/models/m.safetensors"),
            ("/srv/./models//m.bin", "file:///srv/models/m.bin"),
            ("/srv/models/a b.bin", "file:///srv/models/a%20b.bin"),
            ("file:///srv/models/a%20b.bin", "file:///srv/models/a%20b.bin"),
            ("file://localhost/srv/m.bin", "file:///srv/m.bin"),
            ("FILE:/srv/m.bin", "file:///srv/m.bin"),
            ("s3://Bucket.Name/k/m.safetensors", "s3://bucket.name/k/m.safetensors"),
            ("gs://bucket/m.bin", "gs://bucket/m.bin"),
            ("hf://org-name/repo/model.safetensors", "hf://org-name/repo/model.safetensors"),
            ("HTTPS://Host.Example:8443/w/m.bin", "https://host.example:8443/w/m.bin"),
        ],
    )
    def test_good_uri_normalised(self, uri: str, normalised: str) -> None:
        """Accepted locations come back in one normal form, which parses to itself."""
        parsed = parse_weights_uri(uri)
        assert parsed.uri == normalised
        assert parse_weights_uri(parsed.uri) == parsed

    def test_local_path_decoded(self) -> None:
        """A file URI's path is percent-decoded once."""
        parsed = parse_weights_uri("file:///srv/models/a%20b.bin")
        assert parsed.is_local
        assert parsed.path == Path("/srv/models/a b.bin")
        assert parsed.host is None

    def test_remote_parts(self) -> None:
        """A remote URI has a scheme and host and no local path."""
        parsed = parse_weights_uri("s3://bucket/key.bin")
        assert (parsed.scheme, parsed.host, parsed.path, parsed.is_local) == (
            "s3",
            "bucket",
            None,
            False,
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _expected_module_hashes(
    tensors: dict[str, np.ndarray], module_of: Callable[[str], str] = lambda n: n.split(".")[0]
) -> dict[str, str]:
    """The documented formula, computed independently of the module under test."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("float16"): "F16"}
    groups: dict[str, list[list[object]]] = {}
    for name in sorted(tensors):
        array = tensors[name]
        row: list[object] = [name, dtypes[array.dtype], list(array.shape), _sha(array.tobytes())]
        groups.setdefault(module_of(name), []).append(row)
    return {
        prefix: _sha(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode())
        for prefix, rows in groups.items()
    }


def _tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image_encoder.patch.weight": rng.standard_normal((4, 3), dtype=np.float32),
        "image_encoder.patch.bias": rng.standard_normal(4, dtype=np.float32),
        "text_encoder.embeddings": rng.standard_normal((5, 2), dtype=np.float32),
        "text_encoder.position_ids": np.arange(5, dtype=np.int64),
        "fusion_layer.proj": rng.standard_normal((2, 2), dtype=np.float32).astype(np.float16),
        "fusion_layer.empty": np.zeros((0, 3), dtype=np.float32),
    }


def _write_raw(
    path: Path,
    tensors: dict[str, np.ndarray],
    order: list[str],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a safetensors file by hand, with the tensor data laid out in ``order``."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("float16"): "F16"}
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name in order:
        data = tensors[name].tobytes()
        header[name] = {
            "dtype": dtypes[tensors[name].dtype],
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def _small(path: Path, seed: int = 0) -> Path:
    """Write a small real safetensors file."""
    save_file(_tensors(seed), str(path))
    return path


NOT_SAFETENSORS = [
    pytest.param("config.yaml", b"model: clip\nepochs: 3\n", "header length", id="yaml"),
    pytest.param("config.json", b'{"model": "clip"}', "header length", id="json"),
    pytest.param("weights.safetensors", os.urandom(4096), "header length", id="random-bytes"),
    pytest.param("model.bin", b"", "shorter than the 8-byte", id="empty"),
    pytest.param("x.safetensors", b"\x05\x00", "shorter than the 8-byte", id="two-bytes"),
    pytest.param("model.pt", struct.pack("<Q", 4) + b"\xff\xfe{}", "not UTF-8 JSON", id="not-utf8"),
]


class TestInspectLocal:
    @pytest.mark.parametrize(("name", "data", "reason"), NOT_SAFETENSORS)
    def test_not_safetensors_refused(
        self, tmp_path: Path, name: str, data: bytes, reason: str
    ) -> None:
        """A local file that does not parse as safetensors is refused, naming it and the format."""
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InvalidInput) as info:
            inspect_weights(str(path))
        message = info.value.detail
        assert message.startswith(f"weights file {str(path)!r} is not a safetensors file (")
        assert "expected a .safetensors file, a *.safetensors.index.json index" in message
        assert reason in message
        assert "\n" not in message

    def test_safetensors_module_hashes(self, tmp_path: Path) -> None:
        """A real safetensors file gets one hash per top-level prefix, by the documented formula."""
        tensors = _tensors()
        path = tmp_path / "model.safetensors"
        save_file(tensors, str(path))
        info = inspect_weights(str(path))
        assert info.sha256 == _sha(path.read_bytes())
        assert info.size_bytes == path.stat().st_size
        assert (info.format, info.shards, info.grouping) == ("safetensors", {}, DEFAULT_GROUPING)
        assert set(info.module_hashes) == {"image_encoder", "text_encoder", "fusion_layer"}
        assert info.module_hashes == _expected_module_hashes(tensors)

    def test_any_file_name(self, tmp_path: Path) -> None:
        """A safetensors file is recognised by its content, whatever its name."""
        save_file(_tensors(), str(tmp_path / "a.safetensors"))
        (tmp_path / "weights.bin").write_bytes((tmp_path / "a.safetensors").read_bytes())
        info = inspect_weights(str(tmp_path / "weights.bin"))
        assert info.format == "safetensors"
        assert info.module_hashes == _expected_module_hashes(_tensors())

    def test_tensor_across_chunks(self, tmp_path: Path) -> None:
        """Tensors that straddle 1 MiB read boundaries hash exactly their bytes."""
        rng = np.random.default_rng(1)
        tensors = {
            "image_encoder.big": rng.standard_normal(700_000, dtype=np.float32),
            "text_encoder.big": rng.standard_normal(300_001, dtype=np.float32),
        }
        path = tmp_path / "big.safetensors"
        save_file(tensors, str(path))
        assert path.stat().st_size > 3 * CHUNK_BYTES
        info = inspect_weights(str(path))
        assert info.module_hashes == _expected_module_hashes(tensors)
        assert info.sha256 == _sha(path.read_bytes())

    @pytest.mark.parametrize("workers", [1, 2])
    def test_threads_do_not_change_digests(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
    ) -> None:
        """Hashing the whole file on a second thread or inline gives the same digests."""
        rng = np.random.default_rng(2)
        tensors = {f"m{i}.w": rng.standard_normal(200_000 + i, dtype=np.float32) for i in range(6)}
        path = tmp_path / "m.safetensors"
        save_file(tensors, str(path))
        monkeypatch.setattr(weights, "HASH_WORKERS", workers)
        info = inspect_weights(str(path))
        assert info.sha256 == _sha(path.read_bytes())
        assert info.module_hashes == _expected_module_hashes(tensors)

    def test_one_module_changed(self, tmp_path: Path) -> None:
        """Changing one tensor changes exactly its module's hash (and the file's)."""
        before, after = _tensors(), _tensors()
        after["text_encoder.embeddings"] = after["text_encoder.embeddings"] + 1
        save_file(before, str(tmp_path / "a.safetensors"))
        save_file(after, str(tmp_path / "b.safetensors"))
        a = inspect_weights(str(tmp_path / "a.safetensors"))
        b = inspect_weights(str(tmp_path / "b.safetensors"))
        assert a.sha256 != b.sha256
        differing = {m for m in a.module_hashes if a.module_hashes[m] != b.module_hashes[m]}
        assert differing == {"text_encoder"}

    def test_tensor_order_does_not_matter(self, tmp_path: Path) -> None:
        """Reordering tensors in the file (and adding metadata) keeps every module hash."""
        tensors = _tensors()
        save_file(tensors, str(tmp_path / "lib.safetensors"))
        _write_raw(tmp_path / "rev.safetensors", tensors, sorted(tensors, reverse=True), {"k": "v"})
        # The hand-written file is valid for the reference implementation too.
        loaded = load_file(str(tmp_path / "rev.safetensors"))
        assert all(np.array_equal(loaded[n], tensors[n]) for n in tensors)
        lib = inspect_weights(str(tmp_path / "lib.safetensors"))
        rev = inspect_weights(str(tmp_path / "rev.safetensors"))
        assert lib.sha256 != rev.sha256
        assert lib.module_hashes == rev.module_hashes

    def test_dtype_and_shape_are_hashed(self, tmp_path: Path) -> None:
        """Same bytes under a different shape give a different module hash."""
        flat = {"image_encoder.w": np.arange(6, dtype=np.float32)}
        square = {"image_encoder.w": np.arange(6, dtype=np.float32).reshape(2, 3)}
        save_file(flat, str(tmp_path / "flat.safetensors"))
        save_file(square, str(tmp_path / "square.safetensors"))
        assert (
            inspect_weights(str(tmp_path / "flat.safetensors")).module_hashes
            != inspect_weights(str(tmp_path / "square.safetensors")).module_hashes
        )

    def test_sha256_checked(self, tmp_path: Path) -> None:
        """A matching sha256 (any case) is accepted; a different one is refused."""
        path = _small(tmp_path / "m.safetensors")
        digest = _sha(path.read_bytes())
        assert inspect_weights(str(path), sha256=digest.upper()).sha256 == digest
        with pytest.raises(InvalidInput, match="sha256 mismatch"):
            inspect_weights(str(path), sha256=_sha(b"other"))
        with pytest.raises(InvalidInput, match="64 hexadecimal"):
            inspect_weights(str(path), sha256="abc")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist is refused."""
        with pytest.raises(InvalidInput, match="does not exist"):
            inspect_weights(str(tmp_path / "missing.safetensors"))

    def test_directory_without_checkpoint_refused(self, tmp_path: Path) -> None:
        """A directory holding no index and no model.safetensors is refused, saying what fits."""
        (tmp_path / "config.json").write_text("{}")
        with pytest.raises(InvalidInput, match=r"holds no model\.safetensors\.index\.json"):
            inspect_weights(str(tmp_path))

    def test_directory_with_single_file(self, tmp_path: Path) -> None:
        """A directory holding model.safetensors is inspected as that file."""
        path = _small(tmp_path / "model.safetensors")
        assert inspect_weights(str(tmp_path)) == inspect_weights(str(path))
        assert inspect_weights(str(tmp_path)).uri == path.resolve().as_uri()

    def test_fifo_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO is refused instead of blocking on open."""
        fifo = tmp_path / "pipe.safetensors"
        os.mkfifo(fifo)
        with pytest.raises(InvalidInput, match="not a regular file"):
            inspect_weights(str(fifo))

    def test_file_uri_accepted(self, tmp_path: Path) -> None:
        """A file:// URI is inspected like the path."""
        path = _small(tmp_path / "a b.safetensors")
        assert inspect_weights(path.as_uri()) == inspect_weights(str(path))


class TestAllowedRoots:
    def test_inside_root_accepted(self, tmp_path: Path) -> None:
        """A file inside an allowed root is accepted."""
        root = tmp_path / "root"
        root.mkdir()
        path = _small(root / "m.safetensors")
        info = inspect_weights(str(path), allowed_roots=[tmp_path / "other", root])
        assert info.size_bytes == path.stat().st_size

    def test_outside_root_refused(self, tmp_path: Path) -> None:
        """A file outside every allowed root is refused."""
        path = _small(tmp_path / "m.safetensors")
        with pytest.raises(InvalidInput, match="outside the allowed"):
            inspect_weights(str(path), allowed_roots=[tmp_path / "root"])

    def test_symlink_escaping_root_refused(self, tmp_path: Path) -> None:
        """A symlink inside the root that points outside it is refused."""
        root = tmp_path / "root"
        root.mkdir()
        outside = _small(tmp_path / "secret.safetensors")
        (root / "link.safetensors").symlink_to(outside)
        with pytest.raises(InvalidInput, match="outside the allowed"):
            inspect_weights(str(root / "link.safetensors"), allowed_roots=[root])

    def test_symlinked_root_and_file_inside(self, tmp_path: Path) -> None:
        """Roots are resolved too; a symlink within the root is recorded by its real path."""
        real_root = tmp_path / "real"
        real_root.mkdir()
        _small(real_root / "v3.safetensors")
        (real_root / "current.safetensors").symlink_to(real_root / "v3.safetensors")
        (tmp_path / "alias").symlink_to(real_root)
        info = inspect_weights(
            str(real_root / "current.safetensors"), allowed_roots=[tmp_path / "alias"]
        )
        assert info.uri == (real_root / "v3.safetensors").resolve().as_uri()

    def test_empty_roots_refuse_local(self, tmp_path: Path) -> None:
        """allowed_roots=[] refuses every local path."""
        path = _small(tmp_path / "m.safetensors")
        with pytest.raises(InvalidInput, match="not accepted here"):
            inspect_weights(str(path), allowed_roots=[])


class TestInspectRemote:
    def test_remote_needs_sha256(self) -> None:
        """A remote URI without the caller's sha256 is refused."""
        with pytest.raises(InvalidInput, match="need the caller's sha256"):
            inspect_weights("s3://bucket/m.safetensors")

    def test_remote_recorded_not_fetched(self) -> None:
        """A remote URI records the given sha256 (lower-cased), no size, no module hashes."""
        digest = "AB" * 32
        info = inspect_weights("hf://org/repo/m.safetensors", sha256=digest, allowed_roots=[])
        assert (info.uri, info.sha256, info.size_bytes, info.module_hashes) == (
            "hf://org/repo/m.safetensors",
            digest.lower(),
            None,
            {},
        )
        assert info.format == "remote"

    @pytest.mark.parametrize("digest", ["z" * 64, "a" * 64 + "\n", "a" * 63, " " + "a" * 64])
    def test_remote_bad_sha256(self, digest: str) -> None:
        """A sha256 that is not exactly 64 hex characters is refused (a trailing newline too)."""
        with pytest.raises(InvalidInput, match="64 hexadecimal"):
            inspect_weights("gs://bucket/m.bin", sha256=digest)


def _header_file(path: Path, header: object, data: bytes, length: int | None = None) -> Path:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    size = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + raw + data)
    return path


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


class TestMalformedSafetensors:
    @pytest.mark.parametrize(
        ("header", "data", "length", "reason"),
        [
            pytest.param(b"", b"", 1000, "does not fit", id="header-length-past-eof"),
            pytest.param(b"{}", b"", 0, "does not fit", id="zero-header-length"),
            pytest.param(b"[1, 2]", b"", None, "not a JSON object", id="json-array"),
            pytest.param(b"{not json", b"", None, "not UTF-8 JSON", id="not-json"),
            pytest.param(b'{"a.w": 1, "a.w": 2}', b"", None, "duplicate key", id="duplicate"),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}},
                b"\0" * 8,
                None,
                "out of bounds",
                id="offsets-past-end",
            ),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
                b"\0" * 8,
                None,
                "out of bounds",
                id="offsets-reversed",
            ),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}},
                b"\0" * 8,
                None,
                "out of bounds",
                id="offsets-negative",
            ),
            pytest.param(
                {"a.w": F32_2, "b.w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                b"\0" * 12,
                None,
                "overlap",
                id="overlap",
            ),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                b"\0" * 12,
                None,
                "gap",
                id="gap",
            ),
            pytest.param({"a.w": F32_2}, b"\0" * 12, None, "trailing bytes", id="trailing"),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                b"\0" * 8,
                None,
                "byte length",
                id="shape-mismatch",
            ),
            pytest.param(
                {"a.w": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}},
                b"\0" * 8,
                None,
                "bad dtype",
                id="bad-dtype",
            ),
            pytest.param(
                {"a.w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
                b"\0" * 8,
                None,
                "bad shape",
                id="bad-shape",
            ),
            pytest.param({"a.w": "x"}, b"", None, "not an object", id="entry-not-object"),
        ],
    )
    def test_rejected(
        self, tmp_path: Path, header: object, data: bytes, length: int | None, reason: str
    ) -> None:
        """A malformed safetensors file is InvalidInput with the reason."""
        path = _header_file(tmp_path / "bad.safetensors", header, data, length)
        with pytest.raises(InvalidInput, match=f"is not a safetensors file.*{reason}"):
            inspect_weights(str(path))

    def test_shorter_than_length_prefix(self, tmp_path: Path) -> None:
        """A file shorter than 8 bytes is refused."""
        path = tmp_path / "tiny.safetensors"
        path.write_bytes(b"\x02\x00")
        with pytest.raises(InvalidInput, match="shorter than the 8-byte"):
            inspect_weights(str(path))

    def test_truncated_real_file(self, tmp_path: Path) -> None:
        """A real safetensors file cut short is refused."""
        path = tmp_path / "cut.safetensors"
        save_file(_tensors(), str(path))
        path.write_bytes(path.read_bytes()[:-5])
        with pytest.raises(InvalidInput, match=f"{path.name}' is not a safetensors file"):
            inspect_weights(str(path))

    def test_metadata_ignored(self, tmp_path: Path) -> None:
        """__metadata__ is not a module."""
        path = _header_file(
            tmp_path / "m.safetensors", {"__metadata__": {"format": "np"}, "a.w": F32_2}, b"\0" * 8
        )
        assert set(inspect_weights(str(path)).module_hashes) == {"a"}

    def test_empty_safetensors(self, tmp_path: Path) -> None:
        """A file with no tensors is valid and has no modules."""
        path = _header_file(tmp_path / "e.safetensors", {}, b"")
        assert inspect_weights(str(path)).module_hashes == {}


def _reference_dtypes() -> set[str]:
    """The dtypes the safetensors library itself knows, read from its own error message."""
    raw = json.dumps({"a": {"dtype": "NOPE", "shape": [1], "data_offsets": [0, 1]}}).encode()
    with pytest.raises(SafetensorError) as info:
        deserialize(struct.pack("<Q", len(raw)) + raw + b"\0")
    listed = str(info.value).split("expected one of", 1)[1].split(" at line", 1)[0]
    return {name.strip(" `") for name in listed.split(",")}


class TestDtypes:
    def test_same_dtypes_as_the_library(self) -> None:
        """The registry knows exactly the dtypes the safetensors library defines."""
        assert set(DTYPE_BITS) == _reference_dtypes()

    @pytest.mark.parametrize("dtype", sorted(DTYPE_BITS))
    def test_every_dtype_accepted(self, tmp_path: Path, dtype: str) -> None:
        """Each dtype is sized by its bit width, as the reference implementation sizes it."""
        length = DTYPE_BITS[dtype] * 8 // 8  # eight elements
        header = {"m.w": {"dtype": dtype, "shape": [2, 4], "data_offsets": [0, length]}}
        path = _header_file(tmp_path / "d.safetensors", header, b"\1" * length)
        assert [name for name, _ in deserialize(path.read_bytes())] == ["m.w"]
        assert set(inspect_weights(str(path)).module_hashes) == {"m"}

    @pytest.mark.parametrize(
        ("dtype", "shape", "length"),
        [("F4", [3], 2), ("F6_E2M3", [3], 3), ("F4", [4], 1), ("C64", [2], 8)],
    )
    def test_wrong_sizes_refused(
        self, tmp_path: Path, dtype: str, shape: list[int], length: int
    ) -> None:
        """Sub-byte tensors must end on a byte boundary and sizes must match, as in the library."""
        header = {"m.w": {"dtype": dtype, "shape": shape, "data_offsets": [0, length]}}
        path = _header_file(tmp_path / "d.safetensors", header, b"\0" * length)
        with pytest.raises(SafetensorError):
            deserialize(path.read_bytes())
        with pytest.raises(InvalidInput, match="byte length does not match"):
            inspect_weights(str(path))

    def test_unknown_dtype_refused(self, tmp_path: Path) -> None:
        """A dtype safetensors does not define is refused, naming it."""
        header = {"m.w": {"dtype": "F31", "shape": [2], "data_offsets": [0, 8]}}
        path = _header_file(tmp_path / "d.safetensors", header, b"\0" * 8)
        with pytest.raises(InvalidInput, match="bad dtype 'F31'"):
            inspect_weights(str(path))


CLIP_LIKE = [
    "vision_model.embeddings.patch_embedding.weight",
    "vision_model.encoder.layers.0.mlp.fc1.weight",
    "vision_model.encoder.layers.1.mlp.fc1.weight",
    "text_model.encoder.layers.0.mlp.fc1.weight",
    "text_projection.weight",
    "logit_scale",
]


class TestModuleGrouping:
    def test_default_is_top_level_prefix(self) -> None:
        """Depth 1 groups by the first component; a one-component name is its own module."""
        assert [DEFAULT_GROUPING.module_of(n) for n in CLIP_LIKE] == [
            "vision_model", "vision_model", "vision_model", "text_model",
            "text_projection", "logit_scale",
        ]  # fmt: skip

    def test_depth_two(self) -> None:
        """Depth 2 keeps two components, never the parameter's own name."""
        grouping = ModuleGrouping(depth=2)
        assert [grouping.module_of(n) for n in CLIP_LIKE] == [
            "vision_model.embeddings", "vision_model.encoder", "vision_model.encoder",
            "text_model.encoder", "text_projection", "logit_scale",
        ]  # fmt: skip

    def test_patterns_first_then_depth(self) -> None:
        """The first matching glob names the group; unmatched tensors fall back to depth."""
        grouping = ModuleGrouping(
            depth=1,
            patterns=("vision_model.encoder.layers.0.*", "vision_model.encoder*", "*_scale"),
        )
        assert [grouping.module_of(n) for n in CLIP_LIKE] == [
            "vision_model", "vision_model.encoder.layers.0", "vision_model.encoder",
            "text_model", "text_projection", "*_scale",
        ]  # fmt: skip

    @pytest.mark.parametrize(
        ("grouping", "stored"),
        [
            (ModuleGrouping(), None),
            (ModuleGrouping(depth=3), {"depth": 3}),
            (ModuleGrouping(patterns=("a.*",)), {"patterns": ["a.*"]}),
            (
                ModuleGrouping(depth=2, patterns=("a.*", "b*")),
                {"depth": 2, "patterns": ["a.*", "b*"]},
            ),
        ],
    )
    def test_json_round_trip(self, grouping: ModuleGrouping, stored: object) -> None:
        """to_json is None for the default and from_json reads back the same grouping."""
        assert grouping.to_json() == stored
        assert ModuleGrouping.from_json(stored) == grouping
        assert ModuleGrouping.from_json(json.loads(json.dumps(stored))) == grouping

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            ({"depth": 0}, "depth must be 1..8"),
            ({"depth": 9}, "depth must be 1..8"),
            ({"depth": True}, "must be an integer"),
            ({"depth": "2"}, "must be an integer"),
            ({"patterns": "a.*"}, "list of globs"),
            ({"patterns": [""]}, "non-empty strings"),
            ({"patterns": [3]}, "non-empty strings"),
            ({"patterns": ["*"]}, "empty group"),
            ({"patterns": ["a" * 201]}, "longer than 200"),
            ({"patterns": ["a\nb"]}, "control characters"),
            ({"patterns": [f"p{i}" for i in range(65)]}, "at most 64"),
            ({"deep": 2}, "unknown keys"),
            ([1], "must be an object"),
        ],
    )
    def test_from_json_validates(self, data: object, reason: str) -> None:
        """Stored groupings outside the bounds are InvalidInput with the reason."""
        with pytest.raises(InvalidInput, match=reason):
            ModuleGrouping.from_json(data)

    def test_depth_two_diff_names_the_submodule(self, tmp_path: Path) -> None:
        """With depth 2 a change shows in vision_model.encoder and not vision_model.embeddings."""
        rng = np.random.default_rng(3)
        before = {n: rng.standard_normal(4, dtype=np.float32) for n in CLIP_LIKE}
        after = dict(before)
        after["vision_model.encoder.layers.1.mlp.fc1.weight"] = before[
            "vision_model.encoder.layers.1.mlp.fc1.weight"
        ] + np.float32(1)
        save_file(before, str(tmp_path / "a.safetensors"))
        save_file(after, str(tmp_path / "b.safetensors"))
        depth2 = ModuleGrouping(depth=2)
        a = inspect_weights(str(tmp_path / "a.safetensors"), grouping=depth2)
        b = inspect_weights(str(tmp_path / "b.safetensors"), grouping=depth2)
        assert a.grouping == depth2
        assert a.module_hashes == _expected_module_hashes(before, depth2.module_of)
        assert {m for m in a.module_hashes if a.module_hashes[m] != b.module_hashes[m]} == {
            "vision_model.encoder"
        }
        assert (
            a.module_hashes["vision_model.embeddings"] == b.module_hashes["vision_model.embeddings"]
        )


# --- sharded checkpoints -------------------------------------------------------------------------


def _canonical_sha(data: object) -> str:
    return _sha(
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.fixture(scope="module")
def bert_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny BERT saved by transformers both sharded (20 KB shards) and as one file."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    model = transformers.BertModel(config)
    root = tmp_path_factory.mktemp("bert")
    model.save_pretrained(root / "sharded", max_shard_size="20KB")
    model.save_pretrained(root / "single")
    return root / "sharded", root / "single"


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _index(directory: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((directory / INDEX).read_text()))


def _write_index(directory: Path, weight_map: dict[str, str]) -> None:
    (directory / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


INDEX = "model.safetensors.index.json"


class TestSharded:
    def test_transformers_checkpoint(self, bert_checkpoints: tuple[Path, Path]) -> None:
        """A save_pretrained sharded checkpoint gets the documented shard and manifest digests."""
        sharded, _ = bert_checkpoints
        shard_names = sorted(set(_index(sharded)["weight_map"].values()))
        assert len(shard_names) >= 3
        info = inspect_weights(str(sharded))
        assert info.format == "safetensors-sharded"
        assert info.uri == (sharded / INDEX).resolve().as_uri()
        assert info.size_bytes == sum((sharded / n).stat().st_size for n in [INDEX, *shard_names])
        expected_shards = {}
        for name in shard_names:
            raw = (sharded / name).read_bytes()
            header_end = 8 + struct.unpack("<Q", raw[:8])[0]
            tensors = {k: _sha(v.tobytes()) for k, v in load_file(str(sharded / name)).items()}
            expected_shards[name] = _canonical_sha(
                {"header": _sha(raw[:header_end]), "tensors": tensors}
            )
        assert info.shards == expected_shards
        index_sha = _sha((sharded / INDEX).read_bytes())
        assert info.sha256 == _canonical_sha({"index": index_sha, "shards": expected_shards})
        assert set(info.module_hashes) == {"embeddings", "encoder", "pooler"}

    @pytest.mark.parametrize("grouping", [ModuleGrouping(), ModuleGrouping(depth=3)])
    def test_same_module_hashes_as_one_file(
        self, bert_checkpoints: tuple[Path, Path], grouping: ModuleGrouping
    ) -> None:
        """A module's hash is the same whether its tensors sit in one file or in several shards."""
        sharded, single = bert_checkpoints
        many = inspect_weights(str(sharded), grouping=grouping)
        one = inspect_weights(str(single), grouping=grouping)
        assert one.format == "safetensors"
        assert many.module_hashes == one.module_hashes
        tensors = load_file(str(single / "model.safetensors"))
        assert one.module_hashes == _expected_module_hashes(tensors, grouping.module_of)

    def test_index_file_directory_and_uri_agree(self, bert_checkpoints: tuple[Path, Path]) -> None:
        """The directory, the index path and its file:// URI name the same checkpoint."""
        sharded, _ = bert_checkpoints
        by_dir = inspect_weights(str(sharded))
        assert inspect_weights(str(sharded / INDEX)) == by_dir
        assert inspect_weights((sharded / INDEX).as_uri()) == by_dir

    @pytest.mark.parametrize("workers", [1, 2, 4])
    def test_threads_do_not_change_digests(
        self, bert_checkpoints: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, workers: int
    ) -> None:
        """Hashing shards on one or several threads gives the same result."""
        sharded, _ = bert_checkpoints
        expected = inspect_weights(str(sharded))
        monkeypatch.setattr(weights, "HASH_WORKERS", workers)
        assert inspect_weights(str(sharded)) == expected

    def test_caller_sha256_is_the_manifest(self, bert_checkpoints: tuple[Path, Path]) -> None:
        """A caller's sha256 is checked against the manifest digest."""
        sharded, _ = bert_checkpoints
        manifest = inspect_weights(str(sharded)).sha256
        assert inspect_weights(str(sharded), sha256=manifest.upper()).sha256 == manifest
        with pytest.raises(InvalidInput, match=r"sha256 mismatch.*manifest digest"):
            inspect_weights(str(sharded), sha256=_sha(b"other"))

    def test_altered_shard_byte(self, bert_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
        """One altered tensor byte changes the manifest, its shard's digest and its module only."""
        sharded, _ = bert_checkpoints
        copy = _copy(sharded, tmp_path / "ckpt")
        grouping = ModuleGrouping(depth=3)
        before = inspect_weights(str(copy), grouping=grouping)
        tensor = "encoder.layer.1.output.dense.weight"
        shard = _index(copy)["weight_map"][tensor]
        raw = bytearray((copy / shard).read_bytes())
        header_length = struct.unpack("<Q", raw[:8])[0]
        begin = json.loads(raw[8 : 8 + header_length])[tensor]["data_offsets"][0]
        raw[8 + header_length + begin] ^= 0xFF
        (copy / shard).write_bytes(bytes(raw))
        after = inspect_weights(str(copy), grouping=grouping)
        assert after.sha256 != before.sha256
        assert {n for n in before.shards if before.shards[n] != after.shards[n]} == {shard}
        changed = {
            m for m in before.module_hashes if before.module_hashes[m] != after.module_hashes[m]
        }
        assert changed == {"encoder.layer.1"}
        with pytest.raises(InvalidInput, match="sha256 mismatch"):
            inspect_weights(str(copy), sha256=before.sha256, grouping=grouping)

    def test_missing_shard(self, bert_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
        """A shard the index names but the directory lacks is refused, naming it."""
        copy = _copy(bert_checkpoints[0], tmp_path / "ckpt")
        gone = sorted(set(_index(copy)["weight_map"].values()))[1]
        (copy / gone).unlink()
        with pytest.raises(InvalidInput, match=f"shard '{gone}' named by .* does not exist"):
            inspect_weights(str(copy))

    def test_truncated_shard(self, bert_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
        """A shard that no longer parses is refused, naming the shard file."""
        copy = _copy(bert_checkpoints[0], tmp_path / "ckpt")
        shard = sorted(set(_index(copy)["weight_map"].values()))[0]
        (copy / shard).write_bytes((copy / shard).read_bytes()[:-4])
        with pytest.raises(InvalidInput, match=f"{shard}' is not a safetensors file"):
            inspect_weights(str(copy))

    def test_shard_is_a_directory(self, tmp_path: Path) -> None:
        """A shard name that is a directory is refused."""
        (tmp_path / "s1.safetensors").mkdir()
        _write_index(tmp_path, {"a.w": "s1.safetensors"})
        with pytest.raises(InvalidInput, match="is not a regular file"):
            inspect_weights(str(tmp_path))

    def test_tensor_missing_from_map(
        self, bert_checkpoints: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """A shard holding a tensor the index does not list is refused."""
        copy = _copy(bert_checkpoints[0], tmp_path / "ckpt")
        weight_map = _index(copy)["weight_map"]
        del weight_map["pooler.dense.bias"]
        _write_index(copy, weight_map)
        with pytest.raises(
            InvalidInput, match=r"holds tensor 'pooler\.dense\.bias' that .* does not"
        ):
            inspect_weights(str(copy))

    def test_map_names_absent_tensor(
        self, bert_checkpoints: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """An index assigning a shard a tensor it does not hold is refused."""
        copy = _copy(bert_checkpoints[0], tmp_path / "ckpt")
        weight_map = _index(copy)["weight_map"]
        weight_map["pooler.extra"] = weight_map["pooler.dense.bias"]
        _write_index(copy, weight_map)
        with pytest.raises(InvalidInput, match=r"lacks tensor 'pooler\.extra' that"):
            inspect_weights(str(copy))

    def test_tensor_in_two_shards(self, tmp_path: Path) -> None:
        """A tensor stored in two shards is refused: the shard the map does not name holds extra."""
        a = np.arange(4, dtype=np.float32)
        save_file({"m.a": a, "m.b": a}, str(tmp_path / "s1.safetensors"))
        save_file({"m.a": a, "n.c": a}, str(tmp_path / "s2.safetensors"))
        _write_index(
            tmp_path, {"m.a": "s1.safetensors", "m.b": "s1.safetensors", "n.c": "s2.safetensors"}
        )
        with pytest.raises(InvalidInput, match=r"s2\.safetensors' holds tensor 'm\.a' that"):
            inspect_weights(str(tmp_path))

    @pytest.mark.parametrize(
        "name", ["../x.safetensors", "/etc/passwd", "sub/x.safetensors", "..", "a\\b"]
    )
    def test_index_names_file_outside(self, tmp_path: Path, name: str) -> None:
        """An index naming anything but a file of its own directory is refused."""
        (tmp_path / "sub").mkdir()
        _small(tmp_path / "sub" / "x.safetensors")
        _small(tmp_path / "x.safetensors")
        ckpt = tmp_path / "sub" / "ckpt"
        ckpt.mkdir()
        _write_index(ckpt, {"image_encoder.patch.weight": name})
        with pytest.raises(InvalidInput, match="is not a file name in the index's directory"):
            inspect_weights(str(ckpt))

    def test_symlink_out_of_directory(self, tmp_path: Path) -> None:
        """A shard that is a symlink to a file outside the directory is refused."""
        outside = _small(tmp_path / "outside.safetensors")
        ckpt = tmp_path / "ckpt"
        ckpt.mkdir()
        (ckpt / "s1.safetensors").symlink_to(outside)
        _write_index(ckpt, dict.fromkeys(_tensors(), "s1.safetensors"))
        with pytest.raises(InvalidInput, match="link to a file outside the index's directory"):
            inspect_weights(str(ckpt))

    def test_symlink_inside_directory_accepted(self, tmp_path: Path) -> None:
        """A shard that is a symlink to another file of the same directory is accepted."""
        _small(tmp_path / "real.safetensors")
        (tmp_path / "s1.safetensors").symlink_to(tmp_path / "real.safetensors")
        _write_index(tmp_path, dict.fromkeys(_tensors(), "s1.safetensors"))
        info = inspect_weights(str(tmp_path))
        assert list(info.shards) == ["s1.safetensors"]
        assert info.module_hashes == _expected_module_hashes(_tensors())

    def test_index_symlink_out_of_directory(self, tmp_path: Path) -> None:
        """An index that is a symlink to another directory's index is refused."""
        other = tmp_path / "other"
        other.mkdir()
        _small(other / "s1.safetensors")
        _write_index(other, dict.fromkeys(_tensors(), "s1.safetensors"))
        ckpt = tmp_path / "ckpt"
        ckpt.mkdir()
        (ckpt / INDEX).symlink_to(other / INDEX)
        with pytest.raises(InvalidInput, match="link to a file outside its directory"):
            inspect_weights(str(ckpt))

    def test_index_symlink_inside_directory(self, tmp_path: Path) -> None:
        """A link of any name to the index in the same directory is read as that index."""
        _small(tmp_path / "s1.safetensors")
        _write_index(tmp_path, dict.fromkeys(_tensors(), "s1.safetensors"))
        (tmp_path / "current").symlink_to(tmp_path / INDEX)
        info = inspect_weights(str(tmp_path / "current"))
        assert (info.format, info.uri) == ("safetensors-sharded", (tmp_path / INDEX).as_uri())

    def test_hard_link_out_of_directory(self, tmp_path: Path) -> None:
        """A shard that is a hard link (its other name may lie outside) is refused."""
        outside = _small(tmp_path / "outside.safetensors")
        ckpt = tmp_path / "ckpt"
        ckpt.mkdir()
        try:
            os.link(outside, ckpt / "s1.safetensors")
        except OSError as exc:  # pragma: no cover - a filesystem without hard links
            pytest.skip(f"no hard links here: {exc}")
        _write_index(ckpt, dict.fromkeys(_tensors(), "s1.safetensors"))
        with pytest.raises(InvalidInput, match="has 2 hard links"):
            inspect_weights(str(ckpt))

    def test_allowed_roots(self, bert_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
        """Allowed roots apply to the index and its shards: inside accepted, outside refused."""
        sharded, _ = bert_checkpoints
        root = tmp_path / "root"
        _copy(sharded, root / "ckpt")
        assert inspect_weights(str(root / "ckpt"), allowed_roots=[root]).format == (
            "safetensors-sharded"
        )
        with pytest.raises(InvalidInput, match="outside the allowed"):
            inspect_weights(str(sharded), allowed_roots=[root])
        (tmp_path / "alias").symlink_to(sharded)
        with pytest.raises(InvalidInput, match="outside the allowed"):
            inspect_weights(
                str(tmp_path / "alias" / INDEX), allowed_roots=[tmp_path / "alias" / "x"]
            )
        with pytest.raises(InvalidInput, match="not accepted here"):
            inspect_weights(str(root / "ckpt"), allowed_roots=[])

    def test_shard_checked_against_roots(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every shard passes the allowed-roots check, not only the index."""
        _small(tmp_path / "s1.safetensors")
        _write_index(tmp_path, dict.fromkeys(_tensors(), "s1.safetensors"))
        checked: list[Path] = []
        original = weights._check_roots

        def spy(real: Path, shown: Path, roots: object) -> None:
            checked.append(real)
            original(real, shown, roots)  # type: ignore[arg-type]

        monkeypatch.setattr(weights, "_check_roots", spy)
        inspect_weights(str(tmp_path), allowed_roots=[tmp_path])
        assert (tmp_path / "s1.safetensors").resolve() in checked
        assert (tmp_path / INDEX).resolve() in checked

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("{not json", "not UTF-8 JSON"),
            ("[]", "not a JSON object"),
            ('{"metadata": {}}', "no 'weight_map'"),
            ('{"weight_map": {}}', "no 'weight_map'"),
            ('{"weight_map": {"a.w": 3}}', "not a shard file name"),
            ('{"weight_map": {"a.w": "s", "a.w": "t"}}', "duplicate key"),
            ('{"metadata": [], "weight_map": {"a.w": "s"}}', "'metadata' is not an object"),
        ],
    )
    def test_malformed_index(self, tmp_path: Path, text: str, reason: str) -> None:
        """A malformed index is refused, naming the index file."""
        (tmp_path / INDEX).write_text(text)
        with pytest.raises(InvalidInput, match=f"{INDEX}' is malformed: .*{reason}"):
            inspect_weights(str(tmp_path))

    def test_index_bounds(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An index over the size, tensor or shard bounds is refused with the bound."""
        _write_index(tmp_path, {f"m.t{i}": f"s{i}.safetensors" for i in range(20)})
        monkeypatch.setattr(weights, "MAX_SHARDS", 10)
        with pytest.raises(InvalidInput, match="more than 10 shard files"):
            inspect_weights(str(tmp_path))
        monkeypatch.setattr(weights, "MAX_INDEX_TENSORS", 10)
        with pytest.raises(InvalidInput, match="more than 10 tensors"):
            inspect_weights(str(tmp_path))
        monkeypatch.setattr(weights, "MAX_INDEX_BYTES", 100)
        with pytest.raises(InvalidInput, match="larger than 100 bytes"):
            inspect_weights(str(tmp_path))

    def test_ambiguous_directory(self, tmp_path: Path) -> None:
        """A directory with an index and model.safetensors, or with two indexes, is refused."""
        _small(tmp_path / "model.safetensors")
        _write_index(tmp_path, dict.fromkeys(_tensors(), "model.safetensors"))
        with pytest.raises(InvalidInput, match="holds both"):
            inspect_weights(str(tmp_path))
        other = tmp_path / "two"
        other.mkdir()
        (other / "a.safetensors.index.json").write_text("{}")
        (other / "b.safetensors.index.json").write_text("{}")
        with pytest.raises(InvalidInput, match="several indexes"):
            inspect_weights(str(other))

    def test_other_index_name(self, tmp_path: Path) -> None:
        """A directory holding exactly one *.safetensors.index.json uses it."""
        _small(tmp_path / "s1.safetensors")
        (tmp_path / "diffusion.safetensors.index.json").write_text(
            json.dumps({"weight_map": dict.fromkeys(_tensors(), "s1.safetensors")})
        )
        info = inspect_weights(str(tmp_path))
        assert info.uri.endswith("/diffusion.safetensors.index.json")
        assert info.module_hashes == _expected_module_hashes(_tensors())
