"""Tests for the instrumentation package's public names."""

from __future__ import annotations

import instrumentation
from instrumentation import drift, hooks


class TestPublicNames:
    def test_drift_and_hooks_names_are_reexported(self) -> None:
        """Every public name of drift and hooks is the package's, and listed in its __all__."""
        for module in (drift, hooks):
            for name in module.__all__:
                assert name in instrumentation.__all__
                assert getattr(instrumentation, name) is getattr(module, name)

    def test_every_listed_name_resolves(self) -> None:
        """Nothing in __all__ is missing from the package."""
        missing = [n for n in instrumentation.__all__ if not hasattr(instrumentation, n)]
        assert missing == []
