"""A torch function mode that records every tensor method copying device data to the host."""

from __future__ import annotations

from torch.overrides import TorchFunctionMode


class HostReads(TorchFunctionMode):
    """Records, in order, each call that reads a tensor's values on the host (a device sync)."""

    READS = frozenset(
        {"cpu", "numpy", "item", "tolist", "__bool__", "__float__", "__int__", "nonzero",
         "__array__"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if name in self.READS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))
