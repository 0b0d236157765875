"""The web UI in a real browser: Chromium (Debian's) driven by Playwright against `mmgov serve`.

A real Prometheus scrapes an exporter of mmgov's module metrics (drift score, calls, errors,
latency) and `mmgov serve` charts them from Prometheus' HTTP API. Every page is checked for
console errors and failed requests, and a screenshot of each is written under
``artifacts/ui/`` (git-ignored) and the test's tmp dir.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry import service
from registry.config import canonicalize
from registry.db import Database, upgrade
from registry.schemas import Actor, AlertIn, PolicyRules
from registry.weights import inspect_weights
from tests._support import (
    PYTHON,
    REPO,
    Processes,
    find_binary,
    free_port,
    http_ok,
    python_env,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN = Actor(name="e2e-admin", team=None, role="admin")
MODEL = "clip-demo"
ARTIFACTS = REPO / "artifacts" / "ui"
# Serves mmgov's module metrics for MODEL v2: the image encoder drifts past the threshold over a
# minute, the text encoder stays put; calls, errors and latency move with each sample.
EXPORTER = f"""
import math, sys, time
from prometheus_client import Counter, Gauge, Histogram, start_http_server
labels = ("model", "version", "module")
drift = Gauge("mmgov_drift_score", "drift", labels)
calls = Counter("mmgov_module_calls", "calls", labels)
errors = Counter("mmgov_module_errors", "errors", (*labels, "error_type"))
latency = Histogram("mmgov_module_latency_seconds", "latency", labels,
                    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
t0 = time.time()
while True:
    t = time.time() - t0
    for module, base in (("image_encoder", 0.4), ("text_encoder", 0.3)):
        lv = ("{MODEL}", "2", module)
        drift.labels(*lv).set(base + (t / 20 if module == "image_encoder" else 0.05 * math.sin(t)))
        calls.labels(*lv).inc(10)
        latency.labels(*lv).observe(0.004 if module == "image_encoder" else 0.002)
        if int(t) % 3 == 0:
            errors.labels(*lv, "RuntimeError").inc()
    time.sleep(0.25)
"""


def write_safetensors(path: Path, modules: dict[str, bytes]) -> Path:
    """Write a small safetensors file: one U8 tensor ``<module>.w`` per module."""
    header: dict[str, object] = {}
    offset = 0
    for module, data in modules.items():
        header[f"{module}.w"] = {"dtype": "U8", "shape": [len(data)],
                                 "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"".join(modules.values()))
    return path


def _chromium() -> str:
    found = find_binary("chromium", "chromium-browser", "google-chrome")
    if found is None:
        pytest.skip("Chromium not installed (Debian package `chromium`; .ci/run installs it)")
    return found


@dataclass
class UI:
    """The running UI, the secrets of its users and what the browser saw."""

    base: str
    tokens: dict[str, str]
    db_url: str
    shots: Path
    problems: list[str] = field(default_factory=list)
    allowed_status: set[int] = field(default_factory=set)


@pytest.fixture
def ui(processes: Processes, prometheus_bin: str, tmp_path: Path) -> Iterator[UI]:
    """`mmgov serve` over a registry with model clip-demo (v1..v3), fed by a real Prometheus."""
    db_url = f"sqlite:///{tmp_path / 'mmgov.db'}"
    upgrade(db_url)
    db = Database(db_url)
    tokens = {}
    try:
        service.create_team(db, ADMIN, "vision")
        for role in ("reader", "maintainer"):
            _, tokens[role] = service.create_token(db, ADMIN, team="vision", role=role,
                                                   name=f"ui-{role}")
        config = yaml.safe_load((REPO / "configs" / "model.yaml").read_text())
        weights = tmp_path / "weights"
        weights.mkdir()
        for number, epochs in ((1, 10), (2, 12), (3, 15)):
            config["training"]["epochs"] = epochs
            if number == 3:  # a new fusion: its config and its tensors change
                config["fusion_type"] = "gated"
                config["training"]["learning_rate"] = 1e-4
            fusion = "gated" if number == 3 else "concat"
            path = write_safetensors(weights / f"v{number}.safetensors", {
                "image_encoder": b"vision tower", "text_encoder": b"text tower",
                "fusion_layer": fusion.encode(),
            })
            service.register_version(
                db, ADMIN, model=MODEL, team="vision", config=canonicalize(config),
                weights=inspect_weights(str(path)), note=f"{epochs} epochs, {fusion} fusion",
            )
        service.promote(db, ADMIN, model=MODEL, version=1, alias="production")
        service.set_policy(db, ADMIN, model=MODEL, alias="production",
                           rules=PolicyRules(require_reference=True))
        service.record_alerts(db, ADMIN, [AlertIn.model_validate({
            "status": "firing", "startsAt": "2026-11-30T09:00:00Z", "fingerprint": "drift-v2",
            "labels": {"alertname": "MMGovEmbeddingDrift", "model": MODEL, "version": "2",
                       "module": "image_encoder"},
            "annotations": {"summary": "image_encoder embeddings drifted"},
        })])
    finally:
        db.dispose()

    ports = {name: free_port() for name in ("ui", "exporter", "prometheus")}
    processes.start("exporter", [PYTHON, "-c", EXPORTER, str(ports["exporter"])],
                    env=python_env(), cwd=REPO)
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "serving", "static_configs": [
                  {"targets": [f"127.0.0.1:{ports['exporter']}"]}]}]}
    (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    processes.start("prometheus", [
        prometheus_bin, f"--config.file={prom_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={prom_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
    ])
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    processes.start("mmgov-serve", [
        PYTHON, "-c", "from registry.cli import main; main()", "serve", "--db", db_url,
        "--port", str(ports["ui"]), "--log-level", "warning",
    ], env=python_env(MMGOV_PROMETHEUS_URL=prometheus), cwd=REPO)
    base = f"http://127.0.0.1:{ports['ui']}"
    for what, url in (("mmgov serve", f"{base}/readyz"), ("prometheus", f"{prometheus}/-/ready")):
        wait_until(f"{what} to answer {url}", functools.partial(http_ok, url), timeout=60,
                   give_up=processes.exited)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    yield UI(base=base, tokens=tokens, db_url=db_url, shots=shots)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy2(shot, ARTIFACTS / shot.name)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield instance
        finally:
            instance.close()


def _watch(page: Any, ui: UI) -> None:
    """Record console errors, failed requests and error responses the page did not expect."""
    def console(message: Any) -> None:
        expected = any(f"status of {code} " in message.text for code in ui.allowed_status)
        if message.type == "error" and not expected:
            ui.problems.append(f"console error on {page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda e: ui.problems.append(f"script error on {page.url}: {e}"))
    page.on("requestfailed", lambda r: ui.problems.append(
        f"request failed: {r.method} {r.url} ({r.failure})"))
    page.on("request", lambda r: r.url.startswith((ui.base, f"blob:{ui.base}", "data:"))
            or ui.problems.append(f"request off the server: {r.method} {r.url}"))
    page.on("response", lambda r: r.status >= 400 and r.status not in ui.allowed_status
            and ui.problems.append(f"HTTP {r.status} for {r.request.method} {r.url}"))


def _shot(page: Any, ui: UI, name: str) -> None:
    page.screenshot(path=str(ui.shots / f"{name}.png"), full_page=True)


def _sign_in(page: Any, ui: UI, role: str) -> None:
    page.goto(f"{ui.base}/")
    assert "/sign-in" in page.url
    _shot(page, ui, f"sign-in-{role}")
    page.get_by_label("API token").fill(ui.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui.base}/")


def test_maintainer_browses_promotes_rolls_back_and_reads_charts(browser: Any, ui: UI):
    """Sign in, browse, diff, promote (refused by the policy, then allowed), roll back, audit,
    incidents acknowledged and resolved, and a drift chart from a real Prometheus."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  timezone_id="Europe/Berlin")
    page = context.new_page()
    _watch(page, ui)
    _sign_in(page, ui, "maintainer")
    cookie = next(c for c in context.cookies() if c["name"] == "mmgov_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0

    # Models → the model → a version → the diff.
    assert page.get_by_role("link", name=MODEL).is_visible()
    _shot(page, ui, "models")
    page.get_by_role("link", name=MODEL).click()
    page.wait_for_url(f"{ui.base}/models/{MODEL}")
    assert page.locator("table.versions tbody tr").count() == 3
    assert page.get_by_text("1 open").is_visible()  # v2's incident badge
    _shot(page, ui, "model")
    page.get_by_role("link", name="v2", exact=True).first.click()
    page.wait_for_url(f"{ui.base}/models/{MODEL}/versions/2")
    assert page.get_by_text("MMGovEmbeddingDrift").is_visible()
    # Times show in the viewer's zone; the UTC time stays on hover.
    stamp = page.locator("time").first
    assert stamp.get_attribute("title", timeout=5000).endswith("UTC")
    assert "UTC" not in stamp.inner_text()
    _shot(page, ui, "version")
    page.goto(f"{ui.base}/models/{MODEL}/diff?a=1&b=3")
    changed = page.locator("table.diff tr.changed td:first-child").all_inner_texts()
    assert changed == ["fusion_type", "training.epochs", "training.learning_rate"]
    modules = page.locator("ul.modules").inner_text()
    assert "fusion_layer: changed" in modules
    assert "image_encoder: unchanged" in modules
    _shot(page, ui, "diff")

    # Promote v3 to production: the policy wants a reference profile.
    page.goto(f"{ui.base}/models/{MODEL}")
    ui.allowed_status.add(409)
    form = page.locator("#promote-form")
    form.get_by_label("Version", exact=True).fill("3")
    form.get_by_label("Alias", exact=True).fill("production")
    form.get_by_label("Expected current version").fill("1")
    form.get_by_role("button", name="Promote").click()
    refusal = page.locator("#refusal")
    assert "require_reference" in refusal.inner_text()
    _shot(page, ui, "promote-refused")
    ui.allowed_status.discard(409)
    db = Database(ui.db_url)
    try:
        service.attach_reference(db, ADMIN, model=MODEL, version=3, fmt="npz-v1", blob=b"ref",
                                 n_samples=3, modules=["image_encoder"])
    finally:
        db.dispose()
    form.get_by_label("Version", exact=True).fill("3")
    form.get_by_label("Alias", exact=True).fill("production")
    form.get_by_label("Expected current version").fill("1")
    form.get_by_label("Reason", exact=True).fill("reference attached")
    form.get_by_role("button", name="Promote").click()
    assert page.get_by_role("status").inner_text() == "production now serves v3"
    assert "production → v3" in page.locator(".alias-card h3").inner_text()

    # Roll back: production returns to v1, and the timeline shows both moves.
    page.get_by_role("button", name="Roll back production").click()
    assert "rolled back to v1" in page.get_by_role("status").inner_text()
    timeline = page.locator(".timeline").inner_text()
    assert "rollback" in timeline
    assert "promote" in timeline
    _shot(page, ui, "model-after-rollback")

    # The audit trail: verified chain, and the moves at the top.
    page.get_by_role("link", name="Audit trail").click()
    page.get_by_role("button", name="Verify the hash chain").click()
    assert page.locator("#verify").inner_text().startswith("Chain verified")
    actions = page.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert actions[:2] == ["alias.rollback", "alias.promote"]
    page.get_by_label("Action starts with").fill("incident.")
    page.get_by_role("button", name="Filter").click()
    assert set(page.locator("tbody tr td:nth-child(4)").all_inner_texts()) == {"incident.open"}
    _shot(page, ui, "audit")

    # Incidents: acknowledge, then resolve with a note.
    page.get_by_role("link", name="Incidents").first.click()
    page.get_by_role("button", name="Acknowledge #1").click()
    assert "acknowledged" in page.get_by_role("status").inner_text()
    page.get_by_label("Resolution note").fill("retrained on the new data")
    page.get_by_role("button", name="Resolve #1").click()
    assert "resolved" in page.get_by_role("status").inner_text()
    assert "retrained on the new data" in page.locator("#incident-1").inner_text()
    _shot(page, ui, "incidents")

    # The drift chart, from Prometheus' HTTP API: both modules and the threshold line.
    def chart_ready() -> bool:
        page.goto(f"{ui.base}/models/{MODEL}/health?minutes=15")
        return page.locator("svg.chart").count() == 3 and page.locator(
            "svg.chart").first.locator("polyline").count() == 2
    wait_until("Prometheus to have drift, latency and error samples", chart_ready, timeout=60,
               interval=2.0)
    legend = page.locator(".legend").first.inner_text()
    assert "image_encoder" in legend
    assert "text_encoder" in legend
    assert page.locator("svg.chart line.threshold").count() == 1
    _shot(page, ui, "health")

    # /docs and /redoc render from packaged assets.
    page.goto(f"{ui.base}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    _shot(page, ui, "docs")
    page.goto(f"{ui.base}/redoc")
    page.wait_for_selector("redoc h1, [role=navigation]", timeout=15000)
    context.close()
    assert ui.problems == [], "\n".join(ui.problems)


def test_reader_sees_no_write_controls_and_a_narrow_window_works(browser: Any, ui: UI):
    """A reader's pages have no promote, roll back, acknowledge or resolve controls; a post
    anyway is refused with 403; the pages render at 390 px without horizontal overflow."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    _watch(page, ui)
    _sign_in(page, ui, "reader")
    for path in (f"/models/{MODEL}", f"/models/{MODEL}/versions/2", "/incidents"):
        page.goto(ui.base + path)
        assert page.locator("form[method=post]").count() == 1  # sign-out only
        assert page.get_by_role("button", name=re.compile("Promote|Roll back|Acknowledge|"
                                                          "Resolve|Approve")).count() == 0
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                         && !(e.parentElement && e.parentElement.closest('.scroll')))
            .slice(0, 5).map(e => e.tagName + '.' + e.className)""")
        assert overflow <= 1, f"{path} overflows a 390 px window by {overflow} px: {wide}"
    _shot(page, ui, "reader-narrow-model")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    response = page.request.post(f"{ui.base}/models/{MODEL}/promote",
                                 form={"csrf": csrf, "version": "2", "alias": "production"})
    assert response.status == 403
    # Keyboard: the skip link is the first stop and moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    context.close()
    assert ui.problems == [], "\n".join(ui.problems)
