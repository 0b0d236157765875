"""Series for the web UI's charts, read from Prometheus' HTTP API (`/api/v1/query_range`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Series:
    """One labelled time series: ``points`` are (unix seconds, value), NaN dropped."""

    label: str
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class ChartData:
    """What one chart shows, or why it shows nothing (``error``)."""

    title: str
    unit: str
    series: list[Series]
    threshold: float | None = None
    error: str | None = None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def model_queries(model: str) -> list[tuple[str, str, str, float | None]]:
    """Return (title, unit, PromQL, threshold) of each chart on a model's health page."""
    sel = f'model="{_quote(model)}"'
    return [
        ("Drift score by module (1.0 = alarm threshold)", "",
         f"max by (module) (mmgov_drift_score{{{sel}}})", 1.0),
        ("Latency p95 by module", "s",
         "histogram_quantile(0.95, sum by (module, le) "
         f"(rate(mmgov_module_latency_seconds_bucket{{{sel}}}[1m])))", None),
        ("Error rate by module", "",
         f"sum by (module) (rate(mmgov_module_errors_total{{{sel}}}[1m])) / "
         f"sum by (module) (rate(mmgov_module_calls_total{{{sel}}}[1m]))", None),
    ]


def query_range(
    base_url: str, query: str, *, seconds: int, step: float, timeout: float,
    client: httpx.Client | None = None, now: float | None = None,
) -> list[Series]:
    """Run a range query over the last ``seconds``; each series labelled by its ``module``.

    Raises:
        httpx.HTTPError: Prometheus unreachable or it answered with an error status.
        ValueError: the answer is not a Prometheus matrix.
    """
    end = time.time() if now is None else now
    params = {"query": query, "start": f"{end - seconds:.3f}", "end": f"{end:.3f}",
              "step": f"{step:g}"}
    url = base_url.rstrip("/") + "/api/v1/query_range"
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.get(url, params=params, timeout=timeout)
    finally:
        if own:
            http.close()
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success" or body.get("data", {}).get("resultType") != "matrix":
        raise ValueError(f"unexpected answer from Prometheus: {str(body)[:200]}")
    found = []
    for result in body["data"]["result"]:
        metric = result.get("metric", {})
        label = metric.get("module") or ",".join(f"{k}={v}" for k, v in sorted(metric.items()))
        points = [(float(t), float(v)) for t, v in result.get("values", [])]
        points = [(t, v) for t, v in points if math.isfinite(v)]
        if points:
            found.append(Series(label=label or "value", points=points))
    return sorted(found, key=lambda s: s.label)


def model_charts(
    base_url: str | None, model: str, *, client: httpx.Client | None, seconds: int = 3600,
    timeout: float = 2.0,
) -> list[ChartData]:
    """Return the health charts of ``model`` (each with its error when Prometheus fails).

    ``client`` is reused across requests (building one costs ~40 ms: its TLS context); None
    or no ``base_url``: empty charts.
    """
    charts = []
    step = max(1.0, seconds / 240)
    for title, unit, query, threshold in model_queries(model):
        if base_url is None or client is None:
            charts.append(ChartData(title, unit, [], threshold))
            continue
        try:
            series = query_range(base_url, query, seconds=seconds, step=step,
                                 timeout=timeout, client=client)
        except (httpx.HTTPError, ValueError) as exc:
            charts.append(ChartData(title, unit, [], threshold,
                                    error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        charts.append(ChartData(title, unit, series, threshold))
    return charts


__all__ = ["ChartData", "Series", "model_charts", "model_queries", "query_range"]
