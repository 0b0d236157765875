"""A reusable serving loop: follow a registry alias, load and instrument the version it names."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from prometheus_client import CollectorRegistry
from torch import nn

from examples.multimodal import build_model, load_weights
from instrumentation import Instrumentation, instrument
from instrumentation.attestation import Attestation
from instrumentation.drift import DriftMonitor, ReferenceProfile, build_monitors
from registry.client import (
    HeartbeatHandle,
    IntegrityError,
    RegistryClient,
    ResolvedVersion,
    SidecarError,
    SidecarNotFound,
    WatchHandle,
)

__all__ = ["Served", "ServingLoop"]

_log = logging.getLogger("mmgov.serving")


@dataclass
class Served:
    """One loaded version: its model, instrumentation handle, drift monitors and attestation."""

    resolved: ResolvedVersion
    model: nn.Module
    instrumentation: Instrumentation
    monitors: dict[str, DriftMonitor] = field(default_factory=dict)
    attestation: Attestation | None = None

    @property
    def version(self) -> int:
        """The registry version number being served."""
        return self.resolved.version

    def close(self) -> None:
        """Detach the instrumentation, stop the drift workers, remove the info series."""
        self.instrumentation.detach()
        for monitor in self.monitors.values():
            monitor.close()
        if self.attestation is not None:
            self.attestation.close()


class ServingLoop:
    """Serves whatever version ``alias`` of ``model_name`` points at, swapping when it moves.

    Loading a version: resolve through the client, verify the weights' sha256 (and, given the
    ``pipeline`` directories this process tokenizes and preprocesses with, that they are the
    version's recorded pipeline file for file), build the model
    from the version's config, load the weights, fetch the reference profile, build one drift
    monitor per profiled module, instrument the model with the version identity, and hash its
    tensors in memory per module (`instrumentation.attestation`): a version whose loaded
    modules differ from the registered hashes is refused. The new version is built while the
    old one keeps serving; the swap itself is a pointer change. Given an ``instance`` name, the
    loop posts heartbeats (version, config hash, loaded module hashes) every
    ``heartbeat_interval`` seconds and at once after each swap.
    """

    def __init__(
        self,
        client: RegistryClient,
        model_name: str,
        *,
        alias: str = "production",
        prometheus_registry: CollectorRegistry,
        drift_window: int | None = None,
        false_alarm_rate: float | None = None,
        sample_every: int | None = None,
        on_swap: Callable[[Served], None] | None = None,
        pipeline: Mapping[str, Path] | None = None,
        instance: str | None = None,
        heartbeat_interval: float = 10.0,
    ) -> None:
        self.client = client
        self.instance = instance
        self._heartbeat_interval = heartbeat_interval
        self._heartbeats: HeartbeatHandle | None = None
        self.pipeline = dict(pipeline) if pipeline is not None else None
        self.model_name = model_name
        self.alias = alias
        self.registry = prometheus_registry
        self._drift_window = drift_window
        self._false_alarm_rate = false_alarm_rate
        self._sample_every = sample_every
        self._on_swap = on_swap
        self._current: Served | None = None
        self._swapped = threading.Condition()
        self._load_lock = threading.Lock()
        self._watch: WatchHandle | None = None
        self.load_errors = 0

    @property
    def current(self) -> Served:
        """The version serving now.

        Raises:
            RuntimeError: nothing loaded yet (call ``start``).
        """
        served = self._current
        if served is None:
            raise RuntimeError("the serving loop has not loaded a version; call start() first")
        return served

    def load(self, resolved: ResolvedVersion) -> Served:
        """Build, verify and instrument ``resolved`` (does not swap it in).

        Returns:
            The loaded version.

        Raises:
            IntegrityError: weights or reference bytes do not match the registry's sha256, the
                modules as loaded in memory differ from the registered hashes, or the data
                pipeline directories this process uses differ from the version's.
            SidecarError: the reference could not be fetched.
            ValueError: the config or weights do not fit the reference model.
        """
        self.client.verify_weights(resolved.weights_path, resolved.weights_sha256)
        if self.pipeline is not None and resolved.pipeline is not None:
            self.client.verify_pipeline(resolved, self.pipeline)
        config: Mapping[str, Any] = resolved.config
        model = build_model(config)
        load_weights(model, resolved.weights_path)
        monitoring: Mapping[str, Any] = config.get("monitoring") or {}
        monitors: dict[str, DriftMonitor] = {}
        try:
            fmt, blob = self.client.get_reference(self.model_name, resolved.version)
        except SidecarNotFound:
            _log.warning("version %s has no reference profile: serving without drift monitors",
                         resolved.version)
        else:
            if fmt != ReferenceProfile.FORMAT:
                raise ValueError(f"reference format {fmt!r} is not {ReferenceProfile.FORMAT!r}")
            profile = ReferenceProfile.from_bytes(blob)
            window = self._drift_window or int(monitoring.get("window", 500))
            monitors = build_monitors(
                profile,
                detector=str(monitoring.get("drift_detector", "mean_shift")),
                window=window,
                stride=window if self._drift_window else monitoring.get("stride"),
                false_alarm_rate=self._false_alarm_rate
                or float(monitoring.get("false_alarm_rate", 0.05)),
                model_name=self.model_name,
                version=resolved.version,
            )
        handle = instrument(
            model,
            model_name=self.model_name,
            version=resolved.version,
            config_hash=resolved.config_hash,
            prometheus_registry=self.registry,
            sample_every=self._sample_every or int(monitoring.get("sample_every", 100)),
            drift=monitors,
        )
        attestation = Attestation(
            model,
            model_name=self.model_name,
            version=resolved.version,
            config_hash=resolved.config_hash,
            alias=self.alias,
            grouping=resolved.module_grouping,
            prometheus_registry=self.registry,
        )
        differs = attestation.differs_from(resolved.module_hashes)
        if differs:
            attestation.close()
            handle.detach()
            for monitor in monitors.values():
                monitor.close()
            raise IntegrityError(
                f"{self.model_name} v{resolved.version}: modules as loaded differ from the "
                f"registered hashes: {', '.join(differs)}"
            )
        return Served(resolved=resolved, model=model, instrumentation=handle, monitors=monitors,
                      attestation=attestation)

    def swap_to(self, resolved: ResolvedVersion) -> Served:
        """Load ``resolved`` and make it the serving version; the old one is closed.

        Returns:
            The version now serving. Raises what ``load`` raises (the old version stays).
        """
        with self._load_lock:
            current = self._current
            if current is not None and current.resolved.etag == resolved.etag and resolved.etag:
                return current
            # The new version is built and instrumented while the old one serves; both export
            # series for a moment (their version labels differ), then the old one is detached.
            fresh = self.load(resolved)
            with self._swapped:
                self._current = fresh
                self._swapped.notify_all()
            if current is not None:
                current.close()
        if self._heartbeats is not None:
            self._heartbeats.beat_now()
        if self._on_swap is not None:
            self._on_swap(fresh)
        return fresh

    def start(self, *, interval: float = 1.0) -> Served:
        """Resolve the alias, load its version, and watch the alias for moves.

        Returns:
            The version serving.

        Raises:
            SidecarError: the first resolve failed (nothing to serve yet).
        """
        served = self.swap_to(self.client.resolve(self.model_name, self.alias))
        if self.instance is not None:
            self._heartbeats = self.client.start_heartbeats(
                self.model_name, self._heartbeat_body, self._heartbeat_interval
            )
        self._watch = self.client.watch(self.model_name, self.alias, self._moved, interval)
        return served

    def _heartbeat_body(self) -> dict[str, Any] | None:
        served = self._current
        if served is None or served.attestation is None or self.instance is None:
            return None
        return served.attestation.heartbeat(self.instance)

    def attest(self) -> dict[str, str]:
        """Recompute the serving version's module hashes now and report them at once.

        Returns:
            The hashes as loaded in memory.
        """
        served = self.current
        assert served.attestation is not None  # every loaded version has one
        hashes = served.attestation.refresh()
        if self._heartbeats is not None:
            self._heartbeats.beat_now()
        return hashes

    @property
    def last_heartbeat(self) -> dict[str, Any] | None:
        """The registry's answer to the last accepted heartbeat (None before the first)."""
        return self._heartbeats.last if self._heartbeats is not None else None

    def _moved(self, resolved: ResolvedVersion) -> None:
        current = self._current
        if current is not None and current.version == resolved.version and (
            current.resolved.etag == resolved.etag
        ):
            return
        try:
            self.swap_to(resolved)
        except (SidecarError, ValueError, OSError, RuntimeError) as exc:
            self.load_errors += 1
            _log.error("could not load version %s: %s; still serving the previous one",
                       resolved.version, exc)

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Wait until ``version`` serves.

        Returns:
            True when it does, False after ``timeout`` seconds.
        """
        with self._swapped:
            return self._swapped.wait_for(
                lambda: self._current is not None and self._current.version == version,
                timeout=timeout,
            )

    def predict(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Run the serving version on one preprocessed batch.

        Returns:
            The fused embeddings. Whatever the model raises propagates (it is already counted
            and logged by the instrumentation).
        """
        served = self.current
        with torch.inference_mode():
            out: torch.Tensor = served.model(**batch)
        return out

    def flush_drift(self, timeout: float = 30.0) -> bool:
        """Wait until every drift window handed to a worker has been scored.

        Returns:
            True when all monitors are idle.
        """
        return all(m.flush(timeout) for m in self.current.monitors.values())

    def monitored(self) -> Sequence[str]:
        """The module paths with a drift monitor in the serving version."""
        return list(self.current.monitors)

    def close(self) -> None:
        """Stop watching and heartbeats, and detach the serving version."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._heartbeats is not None:
            self._heartbeats.stop()
            self._heartbeats = None
        with self._load_lock:
            if self._current is not None:
                self._current.close()
                self._current = None
