"""Fixtures for instrumentation tests: a fresh metric registry and a tiny multimodal model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from prometheus_client import CollectorRegistry

from tests.instrumentation._models import TinyMultimodal


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Two shared CPU cores: keep intra-op parallelism from competing with other suites.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh Prometheus registry for one test."""
    return CollectorRegistry()


@pytest.fixture
def model() -> TinyMultimodal:
    """A tiny image_encoder/text_encoder/fusion_layer model with a fixed seed."""
    torch.manual_seed(0)
    return TinyMultimodal().eval()
