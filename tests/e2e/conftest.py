"""End-to-end fixtures: real processes (uvicorn, Prometheus, Alertmanager, a model) on loopback.

Every process runs on a free 127.0.0.1 port with its own temporary data directory and generated
config, writes its output to a log file, and is stopped in teardown. When a test that uses them
fails, the logs of every process are attached to the failure report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests._support import Processes, find_binary


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the test's processes to a failed setup or call report."""
    report = yield
    processes: Processes | None = getattr(item, "_e2e_processes", None)
    if report.failed and processes is not None and processes.started:
        report.sections.append(("logs of the end-to-end processes", processes.logs()))
    return report


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """A process group for the test; every process is stopped in teardown."""
    group = Processes(tmp_path)
    request.node._e2e_processes = group
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def prometheus_bin() -> str:
    """Path of the Prometheus binary (the test is skipped when it is not installed)."""
    found = find_binary("prometheus")
    if found is None:
        pytest.skip("prometheus binary not found on PATH (Debian package `prometheus`)")
    return found


@pytest.fixture
def alertmanager_bin() -> str:
    """Path of the Alertmanager binary (the test is skipped when it is not installed)."""
    found = find_binary("prometheus-alertmanager", "alertmanager")
    if found is None:
        pytest.skip(
            "alertmanager binary not found on PATH (Debian package `prometheus-alertmanager`)"
        )
    return found


