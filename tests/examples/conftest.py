"""Fixtures for the reference model tests: the seed config, one built model, one real batch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from examples.multimodal import (
    MultimodalModel,
    Preprocessor,
    build_model,
    load_config,
    load_digits_images,
    load_texts,
)

CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """Keep torch to one thread: the machine's cores are shared with other suites."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def seed_config() -> dict[str, Any]:
    """The parsed configs/model.yaml (never mutate; use `config`)."""
    return load_config(CONFIG_PATH)


@pytest.fixture
def config(seed_config: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy of the seed config that a test may change."""
    return copy.deepcopy(seed_config)


@pytest.fixture(scope="session")
def model(seed_config: dict[str, Any]) -> MultimodalModel:
    """The model built from the seed config, shared read-only across tests."""
    return build_model(seed_config)


@pytest.fixture(scope="session")
def batch(seed_config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Six digits paired with six captions of different lengths, preprocessed."""
    images, _ = load_digits_images(6, seed=1)
    texts = load_texts("captions")[:3] + load_texts("finance")[:3]
    return Preprocessor.from_config(seed_config)(list(images), texts)
