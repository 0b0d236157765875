"""The API's own Prometheus exposition, behind the scrape token (it names every model)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from registry.api.api_metrics import render
from registry.api.deps import SCRAPER

router = APIRouter(tags=["metrics"], dependencies=[SCRAPER])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Requests by route and status, latency, and registry gauges read at scrape time.

    Bearer: the scrape token (``MMGOV_METRICS_TOKEN``) or an admin's token.
    """
    body, content_type = render(request.app.state.metrics, request.app.state.registry_collector)
    return Response(body, media_type=content_type)
