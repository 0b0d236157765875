"""Serving-side HTTP client of the admin API: resolve aliases (ETag), fetch references, watch.

Errors form one small tree, so a serving process can catch exactly what it can survive::

    SidecarError                 anything the sidecar (or the way to it) did wrong
    ├── SidecarUnavailable       connection refused/reset, timeout, 5xx, unreadable answer
    ├── SidecarAuthError         401 (no or wrong token) or 403 (token may not do this)
    ├── SidecarNotFound          404: unknown model, version, alias or reference
    ├── SidecarRejected          422 or 429: a heartbeat the registry refused (malformed, too soon)
    └── IntegrityError           bytes whose sha256 is not the one the registry recorded

Torch-free: it needs httpx, prometheus_client and the registry's own hashing (weights, pipeline).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from registry.errors import InvalidInput
from registry.pipeline import PipelineInfo, check_pipeline
from registry.weights import inspect_weights

__all__ = [
    "HeartbeatHandle",
    "IntegrityError",
    "RegistryClient",
    "ResolvedVersion",
    "SidecarAuthError",
    "SidecarError",
    "SidecarNotFound",
    "SidecarRejected",
    "SidecarUnavailable",
    "WatchHandle",
    "verify_weights",
]

_log = logging.getLogger("mmgov.client")


class SidecarError(Exception):
    """Base class: the registry sidecar could not answer as asked."""

    reason = "error"


class SidecarUnavailable(SidecarError):
    """The sidecar is down, slow, or failing (connection error, timeout, 5xx)."""

    reason = "unavailable"


class SidecarAuthError(SidecarError):
    """The token was refused (401) or may not do this (403)."""

    reason = "auth"


class SidecarNotFound(SidecarError):
    """The model, version, alias or reference does not exist (or is not visible)."""

    reason = "not_found"


class SidecarRejected(SidecarError):
    """The registry refused what was sent: malformed (422) or too soon (429, ``retry``)."""

    reason = "rejected"

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class IntegrityError(SidecarError):
    """Bytes do not hash to the sha256 the registry recorded."""

    reason = "integrity"


@dataclass(frozen=True)
class ResolvedVersion:
    """What an alias serves: the version identity, its config and weights location."""

    model: str
    alias: str
    version: int
    config_hash: str
    config: dict[str, Any]
    weights_uri: str
    weights_sha256: str
    module_hashes: dict[str, str] = field(default_factory=dict)
    updated_at: str = ""
    etag: str | None = None
    weights_format: str | None = None
    pipeline: dict[str, Any] | None = None
    module_grouping: dict[str, Any] | None = None

    @property
    def weights_path(self) -> Path:
        """Local path of a ``file://`` weights URI.

        Raises:
            SidecarError: the weights are not a local file.
        """
        if not self.weights_uri.startswith("file://"):
            raise SidecarError(f"weights {self.weights_uri!r} are not a local file")
        return Path(httpx.URL(self.weights_uri).path)


def verify_weights(path: str | os.PathLike[str], sha256: str) -> None:
    """Check weights against their recorded digest.

    A single file is streamed through ``hashlib.file_digest`` (its plain sha256); a sharded
    checkpoint (its directory or ``*.safetensors.index.json``) is re-inspected shard by shard and
    compared by its manifest digest.

    Raises:
        FileNotFoundError: no such file.
        IntegrityError: the digest differs (names both digests), or a shard is missing or
            malformed.
    """
    target = Path(path)
    if target.is_dir() or target.name.endswith(".json"):
        try:
            actual = inspect_weights(str(target.absolute())).sha256
        except InvalidInput as exc:
            raise IntegrityError(f"{path}: {exc.detail}") from exc
    else:
        with open(target, "rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
    if actual != sha256.lower():
        raise IntegrityError(
            f"{path}: sha256 {actual[:16]}… but the registry records {sha256[:16]}…"
        )


class WatchHandle:
    """A running alias watch; ``stop()`` ends it promptly (it waits on an Event, not a sleep)."""

    def __init__(self, thread: threading.Thread, stop_event: threading.Event) -> None:
        self._thread = thread
        self._stop = stop_event

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop polling and wait up to ``timeout`` seconds for the thread to end."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class HeartbeatHandle(WatchHandle):
    """Running heartbeats: ``beat_now()`` posts at once; ``last`` is the registry's last answer."""

    def __init__(
        self, thread: threading.Thread, stop_event: threading.Event, wake: threading.Event
    ) -> None:
        super().__init__(thread, stop_event)
        self._wake = wake
        self.last: dict[str, Any] | None = None

    def beat_now(self) -> None:
        """Post a heartbeat now instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop posting and wait up to ``timeout`` seconds for the thread to end."""
        self._stop.set()
        self._wake.set()
        super().stop(timeout)


class RegistryClient:
    """Keep-alive client of the admin API (``/api/v1``) for serving processes."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        prometheus_registry: CollectorRegistry | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self._cache: dict[tuple[str, str], ResolvedVersion] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.not_modified = 0
        self.errors = _errors_counter(prometheus_registry or REGISTRY)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            self.requests += 1
            response = self._http.get(path, headers=headers)
        except httpx.TimeoutException as exc:
            raise SidecarUnavailable(f"registry sidecar timed out on GET {path}") from exc
        except httpx.TransportError as exc:
            raise SidecarUnavailable(
                f"registry sidecar unreachable at {self._http.base_url}: {exc}"
            ) from exc
        if response.status_code in (200, 304):
            return response
        detail = _problem_detail(response)
        if response.status_code in (401, 403):
            raise SidecarAuthError(f"GET {path}: {response.status_code} {detail}")
        if response.status_code == 404:
            raise SidecarNotFound(f"GET {path}: {detail}")
        if response.status_code >= 500:
            raise SidecarUnavailable(f"GET {path}: {response.status_code} {detail}")
        raise SidecarError(f"GET {path}: unexpected {response.status_code} {detail}")

    def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        try:
            self.requests += 1
            response = self._http.post(path, json=dict(body))
        except httpx.TimeoutException as exc:
            raise SidecarUnavailable(f"registry sidecar timed out on POST {path}") from exc
        except httpx.TransportError as exc:
            raise SidecarUnavailable(
                f"registry sidecar unreachable at {self._http.base_url}: {exc}"
            ) from exc
        if response.status_code in (200, 201):
            return response
        detail = _problem_detail(response)
        if response.status_code in (401, 403):
            raise SidecarAuthError(f"POST {path}: {response.status_code} {detail}")
        if response.status_code == 404:
            raise SidecarNotFound(f"POST {path}: {detail}")
        if response.status_code in (422, 429):
            raise SidecarRejected(f"POST {path}: {response.status_code} {detail}",
                                  retry=response.status_code == 429)
        if response.status_code >= 500:
            raise SidecarUnavailable(f"POST {path}: {response.status_code} {detail}")
        raise SidecarError(f"POST {path}: unexpected {response.status_code} {detail}")

    def heartbeat(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post one heartbeat of a serving instance of model ``name``.

        ``body`` is plain data: ``instance``, ``version``, ``alias``, ``config_hash`` and
        ``module_hashes`` (what `instrumentation.attestation.Attestation.heartbeat` builds).

        Returns:
            The deployment as the registry recorded it (``matches``, ``mismatched``, …).

        Raises:
            SidecarRejected: malformed, or too soon after the last one (``retry`` True).
            SidecarUnavailable, SidecarAuthError, SidecarNotFound, SidecarError.
        """
        response = self._post(f"/models/{quote(name, safe='')}/deployments", body)
        try:
            answer: dict[str, Any] = response.json()
        except ValueError as exc:
            raise SidecarUnavailable(f"heartbeat: unreadable answer: {exc}") from exc
        return answer

    def start_heartbeats(
        self,
        name: str,
        body: Callable[[], Mapping[str, Any] | None],
        interval: float = 10.0,
    ) -> HeartbeatHandle:
        """Post ``body()`` every ``interval`` seconds on a daemon thread (skipped when None).

        ``HeartbeatHandle.beat_now()`` posts at once (after a swap). A refused-as-too-soon
        heartbeat is retried shortly; other failures are counted in
        ``mmgov_sidecar_errors_total{reason}``, logged once per state change, and retried at
        the next interval.

        Returns:
            The handle to ``beat_now()`` or ``stop()``.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        stop, wake = threading.Event(), threading.Event()
        handle_box: list[HeartbeatHandle] = []
        failing: list[str | None] = [None]

        def beat() -> float:
            payload = body()
            if payload is None:
                return interval
            try:
                answer = self.heartbeat(name, payload)
            except SidecarRejected as exc:
                if exc.retry:
                    return min(interval, 0.25)
                self._count_failure(failing, exc)
                return interval
            except SidecarError as exc:
                self._count_failure(failing, exc)
                return interval
            if failing[0] is not None:
                _log.info("heartbeats are accepted again")
                failing[0] = None
            if handle_box:
                handle_box[0].last = answer
            return interval

        def run() -> None:
            delay = 0.0
            while not stop.is_set():
                if wake.wait(delay):
                    wake.clear()
                if stop.is_set():
                    return
                delay = beat()

        thread = threading.Thread(target=run, name=f"mmgov-heartbeat-{name}", daemon=True)
        handle = HeartbeatHandle(thread, stop, wake)
        handle_box.append(handle)
        thread.start()
        return handle

    def _count_failure(self, failing: list[str | None], exc: SidecarError) -> None:
        self.errors.labels(exc.reason).inc()
        if failing[0] != exc.reason:
            _log.warning("heartbeat failed (%s): %s", exc.reason, exc)
            failing[0] = exc.reason

    def resolve(self, name: str, alias: str) -> ResolvedVersion:
        """Return the version ``alias`` of model ``name`` serves.

        Sends the last ETag as If-None-Match, so an unchanged alias costs a bodiless 304 and
        the cached value is returned.

        Raises:
            SidecarUnavailable, SidecarAuthError, SidecarNotFound, SidecarError.
        """
        key = (name, alias)
        with self._lock:
            cached = self._cache.get(key)
        headers = {"If-None-Match": cached.etag} if cached is not None and cached.etag else None
        path = f"/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
        response = self._get(path, headers)
        if response.status_code == 304 and cached is not None:
            self.not_modified += 1
            return cached
        try:
            body = response.json()
            resolved = ResolvedVersion(
                model=str(body["model"]),
                alias=str(body["alias"]),
                version=int(body["version"]),
                config_hash=str(body["config_hash"]),
                config=dict(body["config"]),
                weights_uri=str(body["weights_uri"]),
                weights_sha256=str(body["weights_sha256"]),
                module_hashes=dict(body.get("module_hashes") or {}),
                updated_at=str(body.get("updated_at", "")),
                etag=response.headers.get("etag"),
                weights_format=body.get("weights_format"),
                pipeline=body.get("pipeline"),
                module_grouping=body.get("module_grouping"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SidecarUnavailable(f"GET {path}: unreadable answer: {exc}") from exc
        with self._lock:
            self._cache[key] = resolved
        return resolved

    def get_reference(self, name: str, version: int) -> tuple[str, bytes]:
        """Download a version's reference profile and check its sha256.

        Returns:
            ``(format tag, bytes)``.

        Raises:
            IntegrityError: the bytes do not match the X-Reference-Sha256 header.
            SidecarUnavailable, SidecarAuthError, SidecarNotFound, SidecarError.
        """
        path = f"/models/{quote(name, safe='')}/versions/{int(version)}/reference"
        response = self._get(path)
        fmt = response.headers.get("x-reference-format")
        expected = response.headers.get("x-reference-sha256")
        if not fmt or not expected:
            raise SidecarError(f"GET {path}: answer lacks X-Reference-Format/-Sha256 headers")
        blob = response.content
        actual = hashlib.sha256(blob).hexdigest()
        if actual != expected.lower():
            raise IntegrityError(
                f"reference of {name} v{version}: sha256 {actual[:16]}… but "
                f"the registry sent {expected[:16]}…"
            )
        return fmt, blob

    def verify_weights(self, path: str | os.PathLike[str], sha256: str) -> None:
        """Same as the module-level :func:`verify_weights`."""
        verify_weights(path, sha256)

    def verify_pipeline(
        self, resolved: ResolvedVersion, components: Mapping[str, str | os.PathLike[str]]
    ) -> None:
        """Check the data pipeline directories a serving process loads against the version's.

        Raises:
            IntegrityError: the version recorded no pipeline, or a file differs (named), or a
                directory is missing or refused.
        """
        if resolved.pipeline is None:
            raise IntegrityError(f"{resolved.model} v{resolved.version} recorded no pipeline")
        try:
            check = check_pipeline(
                PipelineInfo.from_json(resolved.pipeline),
                {name: Path(d).absolute() for name, d in components.items()},
            )
        except InvalidInput as exc:
            raise IntegrityError(
                f"pipeline of {resolved.model} v{resolved.version}: {exc.detail}"
            ) from exc
        if not check.ok:
            diff = check.diff
            files = [
                f"{c}/{f}"
                for c, fs in sorted({**diff.changed, **diff.added, **diff.removed}.items())
                for f in fs
            ]
            files += diff.components_added + diff.components_removed
            raise IntegrityError(
                f"pipeline of {resolved.model} v{resolved.version} differs: {', '.join(files)}"
            )

    def watch(
        self,
        name: str,
        alias: str,
        on_change: Callable[[ResolvedVersion], None],
        interval: float = 1.0,
    ) -> WatchHandle:
        """Poll ``alias`` every ``interval`` seconds on a daemon thread; call back when it moves.

        The first successful resolve counts as a change only when nothing was resolved before.
        A sidecar that fails keeps the last version in place: the failure is counted in
        ``mmgov_sidecar_errors_total{reason}``, logged once per state change, and polling goes
        on. An exception in ``on_change`` is logged and does not stop the watch.

        Returns:
            The handle to ``stop()`` the watch.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        stop = threading.Event()
        with self._lock:
            known = self._cache.get((name, alias))
        state: dict[str, Any] = {
            "seen": (known.version, known.etag) if known else None,
            "failing": None,
        }

        def poll_once() -> None:
            try:
                resolved = self.resolve(name, alias)
            except SidecarError as exc:
                self.errors.labels(exc.reason).inc()
                if state["failing"] != exc.reason:
                    _log.warning(
                        "registry sidecar call failed (%s): %s; keeping version %s",
                        exc.reason,
                        exc,
                        state["seen"][0] if state["seen"] else None,
                    )
                    state["failing"] = exc.reason
                return
            if state["failing"] is not None:
                _log.info("registry sidecar answers again")
                state["failing"] = None
            current = (resolved.version, resolved.etag)
            if current != state["seen"]:
                state["seen"] = current
                try:
                    on_change(resolved)
                except Exception:
                    _log.exception("watch callback failed for %s/%s", name, alias)

        def run() -> None:
            while not stop.is_set():
                poll_once()
                stop.wait(interval)

        thread = threading.Thread(target=run, name=f"mmgov-watch-{name}-{alias}", daemon=True)
        thread.start()
        return WatchHandle(thread, stop)


_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()


def _errors_counter(registry: CollectorRegistry) -> Counter:
    # One Counter per registry: several clients in a process share it instead of colliding.
    with _COUNTERS_LOCK:
        counter = _COUNTERS.get(registry)
        if counter is None:
            counter = Counter(
                "mmgov_sidecar_errors",
                "Failed calls from a serving process to the registry sidecar, by reason.",
                ["reason"],
                registry=registry,
            )
            _COUNTERS[registry] = counter
        return counter


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]
