"""Tests of reference profiles: capture with temporary hooks, bytes round trip, validation."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from instrumentation.drift import ReferenceProfile, capture_reference

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "model.yaml"


class Tiny(nn.Module):
    """A small module tree: a token encoder [B, T, 6] feeding a head [B, 3]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        self.head = nn.Linear(6, 3)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, fail: bool = False) -> torch.Tensor:
        if fail:
            raise RuntimeError("boom")
        hidden = self.dropout(self.encoder(x))
        out: torch.Tensor = self.head(hidden.mean(dim=1))
        return out


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def _batches(n_batches: int = 3, batch: int = 5) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [{"x": torch.randn(batch, 7, 4, generator=gen)} for _ in range(n_batches)]


class TestCapture:
    def test_pooled_arrays_per_module_and_hooks_removed(self) -> None:
        """CLS pooling gives [n, d] per module equal to a manual forward; no hook stays behind."""
        model = Tiny().train()
        batches = _batches()
        profile = capture_reference(model, batches, modules=["encoder", "head"])
        assert profile.modules == ["encoder", "head"]
        assert profile.embeddings["encoder"].shape == (15, 6)
        assert profile.embeddings["head"].shape == (15, 3)
        assert _hook_count(model) == 0
        assert model.training  # mode restored; capture itself ran in eval (dropout off)
        with torch.no_grad():
            x = torch.cat([b["x"] for b in batches])
            enc = model.encoder(x)
            np.testing.assert_allclose(profile.embeddings["encoder"], enc[:, 0].numpy(), rtol=1e-6)
            head = model.head(enc.mean(dim=1))
            np.testing.assert_allclose(profile.embeddings["head"], head.numpy(), rtol=1e-5)

    def test_mean_pooling(self) -> None:
        """Mean pooling averages the token axis."""
        model = Tiny()
        batches = _batches(1)
        profile = capture_reference(model, batches, modules=["encoder"], pooling="mean")
        with torch.no_grad():
            expected = model.encoder(batches[0]["x"]).mean(dim=1).numpy()
        np.testing.assert_allclose(profile.embeddings["encoder"], expected, rtol=1e-5)
        assert profile.pooling == "mean"

    def test_hooks_removed_when_the_model_raises(self) -> None:
        """An exception in forward propagates and leaves no hook."""
        model = Tiny()
        with pytest.raises(RuntimeError, match="boom"):
            capture_reference(model, [{"x": torch.randn(2, 3, 4), "fail": True}], modules=["head"])
        assert _hook_count(model) == 0

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"modules": ["nope"]}, "unknown module"),
            ({"modules": []}, "at least one"),
            ({"modules": ["head"], "pooling": "max"}, "pooling"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], message: str) -> None:
        """Unknown modules, no modules and bad pooling are clear errors."""
        with pytest.raises(ValueError, match=message):
            capture_reference(Tiny(), _batches(1), **kwargs)  # type: ignore[arg-type]

    def test_no_batches_is_an_error(self) -> None:
        """An empty batch iterable captures nothing and says so."""
        with pytest.raises(ValueError, match="no outputs captured"):
            capture_reference(Tiny(), [], modules=["head"])

    @pytest.mark.slow
    def test_reference_model(self) -> None:
        """On the example image+text model every encoder and the fusion give [n, d] arrays."""
        mm = pytest.importorskip("examples.multimodal")
        torch.set_num_threads(1)
        config = mm.load_config(CONFIG)
        model = mm.build_model(config)
        pre = mm.Preprocessor.from_config(config)
        images, _ = mm.load_digits_images(6)
        texts = mm.load_texts()[:6]
        batches = [pre(images[i : i + 3], texts[i : i + 3]) for i in (0, 3)]
        profile = capture_reference(model, batches, modules=list(mm.MODULE_NAMES))
        for module in mm.MODULE_NAMES:
            arr = profile.embeddings[module]
            assert arr.ndim == 2
            assert arr.shape[0] == 6
            assert np.isfinite(arr).all()
        assert _hook_count(model) == 0


class TestSerialisation:
    def test_round_trip(self) -> None:
        """to_bytes/from_bytes preserves arrays, module order, pooling and created_at."""
        rng = np.random.default_rng(0)
        profile = ReferenceProfile(
            {"z.last": rng.standard_normal((5, 3)), "a": rng.standard_normal((5, 2))},
            pooling="mean",
        )
        loaded = ReferenceProfile.from_bytes(profile.to_bytes())
        assert loaded.modules == ["z.last", "a"]
        assert loaded.pooling == "mean"
        assert loaded.created_at == profile.created_at
        assert loaded.n_samples == 5
        for module in profile.modules:
            np.testing.assert_array_equal(loaded.embeddings[module], profile.embeddings[module])
            np.testing.assert_allclose(loaded.mean(module), profile.embeddings[module].mean(0))
        assert ReferenceProfile.FORMAT == "mmgov.reference.v1+npz"
        assert profile.metadata()["dims"] == {"z.last": 3, "a": 2}

    @staticmethod
    def _npz(**arrays: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @staticmethod
    def _meta(**overrides: object) -> np.ndarray:
        meta = {
            "format": ReferenceProfile.FORMAT,
            "pooling": "cls",
            "modules": ["a"],
            "n_samples": 2,
            "dims": {"a": 2},
            "created_at": "2024-01-01T00:00:00+00:00",
        }
        meta.update(overrides)
        return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def test_valid_handmade_archive_loads(self) -> None:
        """The hand-made archive used by the rejection cases is itself valid."""
        data = self._npz(__meta__=self._meta(), emb_0=np.ones((2, 2)))
        assert ReferenceProfile.from_bytes(data).embeddings["a"].shape == (2, 2)

    def test_rejects_malformed_bytes(self) -> None:
        """Garbage, truncation, wrong format, missing arrays, NaN, pickles: ValueError each."""
        good = ReferenceProfile({"a": np.ones((2, 2))}).to_bytes()
        pickled = io.BytesIO()
        np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr("__meta__.npy", pickled.getvalue())
        cases = [
            b"",
            b"not an archive",
            good[: len(good) // 2],
            self._npz(emb_0=np.ones((2, 2))),
            self._npz(__meta__=self._meta(format="other.v9"), emb_0=np.ones((2, 2))),
            self._npz(__meta__=self._meta(), emb_1=np.ones((2, 2))),
            self._npz(__meta__=self._meta(), emb_0=np.full((2, 2), np.nan)),
            self._npz(__meta__=self._meta(dims={"a": 5}), emb_0=np.ones((2, 2))),
            self._npz(__meta__=self._meta(pooling="max"), emb_0=np.ones((2, 2))),
            self._npz(__meta__=np.frombuffer(b"{not json", dtype=np.uint8), emb_0=np.ones((2, 2))),
            zipped.getvalue(),
        ]
        for data in cases:
            with pytest.raises(ValueError, match="malformed reference profile"):
                ReferenceProfile.from_bytes(data)

    def test_constructor_validates(self) -> None:
        """Empty profiles, non-2-D arrays and NaN are refused."""
        with pytest.raises(ValueError, match="at least one"):
            ReferenceProfile({})
        with pytest.raises(ValueError, match=r"\[n, d\]"):
            ReferenceProfile({"a": np.ones(3)})
        with pytest.raises(ValueError, match="NaN"):
            ReferenceProfile({"a": np.array([[np.inf]])})


class TestHostileBytes:
    def test_zip_bomb_refused_in_bounded_memory(self, tmp_path: Path) -> None:
        """`from_bytes` of a 1 MB bomb (1 GiB inside) is a ValueError costing < 100 MB of RSS.

        Measured against the same process loading a small valid profile (torch's import alone
        is ~300 MB).
        """
        from tests.registry.test_reference_checks import _peak, zip_bomb

        bomb = zip_bomb(tmp_path / "bomb.npz")
        small = tmp_path / "small.npz"
        small.write_bytes(ReferenceProfile(embeddings={"a": np.ones((4, 2))}).to_bytes())
        peaks = {}
        for path in (small, bomb):
            code = (
                "from instrumentation.drift.reference import ReferenceProfile\n"
                f"data = open({str(path)!r}, 'rb').read()\n"
                "try:\n    ReferenceProfile.from_bytes(data)\nexcept ValueError as e:\n"
                "    print('REFUSED', e)\n"
                "peak()\n"
            )
            peaks[path], out = _peak(code, tmp_path)
        assert "REFUSED malformed reference profile: its members unpack to" in out, out
        assert peaks[bomb] - peaks[small] < 100 << 20, {p.name: v >> 20 for p, v in peaks.items()}

    def test_header_disagreeing_with_size_refused(self) -> None:
        """A member whose header claims more rows than it holds is refused before loading."""
        good = ReferenceProfile(embeddings={"a": np.ones((4, 2))}).to_bytes()
        src = zipfile.ZipFile(io.BytesIO(good))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for info in src.infolist():
                data = src.read(info)
                out.writestr(info.filename, data[:-16] if info.filename == "emb_0.npy" else data)
        with pytest.raises(ValueError, match="declares"):
            ReferenceProfile.from_bytes(buf.getvalue())
