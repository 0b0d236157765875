"""A serving worker for the multiprocess test: instrument, run N forwards, detach (flushes)."""

from __future__ import annotations

import contextlib
import sys

import torch

from instrumentation import instrument
from tests.instrumentation._models import TinyMultimodal, inputs


def main() -> None:
    """Run `argv[1]` forwards of the tiny model, then `argv[2]` failing in fusion_layer.

    In the failing ones image_encoder's output is NaN as well (counted: it returned).
    """
    n_ok, n_fail = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    model = TinyMultimodal().eval()
    with instrument(model, model_name="tiny", version=3, flush_interval_s=0.05), torch.no_grad():
        for _ in range(n_ok):
            model(*inputs())
        model.fusion_layer.fail = RuntimeError("worker failure")
        model.image_encoder.poison = True
        for _ in range(n_fail):
            with contextlib.suppress(RuntimeError):
                model(*inputs())


if __name__ == "__main__":
    main()
