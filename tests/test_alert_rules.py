"""Alert rules, their promtool tests, the example Prometheus and Alertmanager configs, dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ALERTS = CONFIGS / "alerts.yml"
RULE_TESTS = sorted((CONFIGS / "tests").glob("*.yml"))
DASHBOARD = CONFIGS / "grafana" / "mmgov.json"
PROMETHEUS_EXAMPLE = CONFIGS / "prometheus.example.yml"
ALERTMANAGER_EXAMPLE = CONFIGS / "alertmanager.example.yml"

# What instrumentation/metrics.py exports (docs/CONTRACTS.md).
EXPORTED_METRICS = frozenset(
    {
        "mmgov_module_calls_total",
        "mmgov_module_errors_total",
        "mmgov_module_latency_seconds_bucket",
        "mmgov_module_latency_seconds_sum",
        "mmgov_module_latency_seconds_count",
        "mmgov_module_nonfinite_outputs_total",
        "mmgov_module_output_mean",
        "mmgov_module_output_std",
        "mmgov_module_output_norm",
        "mmgov_instrumentation_errors_total",
        "mmgov_drift_score",
        "mmgov_drift_windows_total",
        "mmgov_drift_alarms_total",
    }
)
# What the sidecar's own /metrics exports from the database (registry/api/api_metrics.py).
SIDECAR_METRICS = frozenset({"mmgov_registry_deployment_mismatch"})
# Names the sidecar, the dashboard and the runbooks rely on.
STABLE_GROUPS = {"mmgov.drift", "mmgov.modules", "mmgov.instrumentation", "mmgov.deployments"}
STABLE_ALERTS = {
    "MMGovEmbeddingDrift",
    "MMGovModuleErrorRate",
    "MMGovNonFiniteOutputs",
    "MMGovLatencyRegression",
    "MMGovInstrumentationErrors",
    "MMGovNoTraffic",
    "MMGovLoadedModulesMismatch",
}

_PROMQL_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    }
)


def metric_names(expr: str) -> set[str]:
    """Return the metric (or recorded series) names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors (and Grafana's $__rate_interval)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables outside selectors
    names = set()
    # A maximal identifier not preceded by a digit (1h, 2e-5) and not called as a function.
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1).lower() not in _PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _recorded_names() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: `apt-get install {package}` (CI installs it)")
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool, or skip with the command that installs it."""
    return _binary("promtool", "prometheus")


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


class TestMetricNames:
    def test_extracts_selected_names_only(self) -> None:
        """Functions, labels, durations, numbers and variables are not taken for metric names."""
        expr = (
            'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{le="0.5",m=~"$model"}'
            "[$__rate_interval]))) > on (model) group_left 1.5e0 * max by (model) "
            "(rec:x:5m offset 1h) and b_total > 0.05 or vector(1)"
        )
        assert metric_names(expr) == {"a_bucket", "rec:x:5m", "b_total"}


class TestRuleFiles:
    def test_promtool_check_rules(self, promtool: str) -> None:
        """promtool accepts configs/alerts.yml."""
        result = _run(promtool, "check", "rules", ALERTS)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_promtool_unit_tests_pass(self, promtool: str) -> None:
        """Every promtool test in configs/tests/ passes."""
        assert RULE_TESTS, "no promtool tests in configs/tests/"
        result = _run(promtool, "test", "rules", *RULE_TESTS)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_stable_group_and_alert_names(self) -> None:
        """The group and alert names others rely on are all defined, each alert once."""
        groups = {group["name"] for group in _load_yaml(ALERTS)["groups"]}
        alerts = [rule["alert"] for rule in _alert_rules()]
        assert groups == STABLE_GROUPS
        assert sorted(alerts) == sorted(STABLE_ALERTS)

    @pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
    def test_alert_labels_and_annotations(self, rule: dict[str, Any]) -> None:
        """An alert names its model, version and module, a severity, and links its runbook."""
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations)
        assert annotations["runbook_url"] == f"README.md#{rule['alert'].lower()}"
        for key in ("summary", "description"):
            for label in ("model", "version", "module"):
                assert f"$labels.{label}" in annotations[key], f"{key} omits {label}"

    @pytest.mark.parametrize(
        "rule", _rules(), ids=lambda rule: rule.get("alert", rule.get("record"))
    )
    def test_rules_use_exported_metrics(self, rule: dict[str, Any]) -> None:
        """Rules select only metrics the instrumentation (or sidecar) exports, or recorded here."""
        names = metric_names(rule["expr"])
        assert names, "no metric found in the expression"
        assert names <= EXPORTED_METRICS | SIDECAR_METRICS | _recorded_names()


class TestRuleTestCoverage:
    def _cases(self) -> dict[str, list[int]]:
        """Map each tested alert name to the number of alerts expected by each of its cases."""
        cases: dict[str, list[int]] = {}
        for path in RULE_TESTS:
            for group in _load_yaml(path)["tests"]:
                for case in group.get("alert_rule_test", []):
                    cases.setdefault(case["alertname"], []).append(
                        len(case.get("exp_alerts") or [])
                    )
        return cases

    def test_rule_tests_load_the_rules_file(self) -> None:
        """Every promtool test file evaluates configs/alerts.yml."""
        for path in RULE_TESTS:
            rule_files = [(path.parent / f).resolve() for f in _load_yaml(path)["rule_files"]]
            assert rule_files == [ALERTS.resolve()], path

    @pytest.mark.parametrize("alert", sorted(STABLE_ALERTS))
    def test_every_alert_has_fire_and_no_fire_cases(self, alert: str) -> None:
        """Each alert in alerts.yml has a promtool case where it fires and one where it does not."""
        assert alert in {rule["alert"] for rule in _alert_rules()}
        counts = self._cases().get(alert, [])
        assert any(n > 0 for n in counts), f"no promtool case where {alert} fires"
        assert any(n == 0 for n in counts), f"no promtool case where {alert} stays silent"

    def test_fired_alerts_carry_identity_labels(self) -> None:
        """promtool matches label sets exactly, so each expected alert proves the rule's labels."""
        for path in RULE_TESTS:
            for group in _load_yaml(path)["tests"]:
                for case in group.get("alert_rule_test", []):
                    for alert in case.get("exp_alerts") or []:
                        assert set(alert["exp_labels"]) == {
                            "model",
                            "version",
                            "module",
                            "severity",
                        }

    def test_no_untested_alert(self) -> None:
        """An alert added to alerts.yml without a promtool test fails here."""
        untested = {rule["alert"] for rule in _alert_rules()} - set(self._cases())
        assert not untested, f"alerts without promtool tests: {sorted(untested)}"

    # Each loosening of a rule must be caught by at least one promtool case.
    MUTATIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "drift fires at exactly 1": ("(mmgov_drift_score) > 1", "(mmgov_drift_score) >= 1"),
        "drift without for": ("        for: 10s\n", "        for: 0s\n"),
        "error rate without traffic guard": (
            "mmgov:module_error_ratio:5m > 0.05\n"
            "          and on (model, version, module) mmgov:module_calls:rate5m >= 0.1",
            "mmgov:module_error_ratio:5m > 0.05",
        ),
        "error rate threshold 1 %": (
            "mmgov:module_error_ratio:5m > 0.05",
            "mmgov:module_error_ratio:5m > 0.01",
        ),
        "non-finite misses new series": (
            "unless mmgov_module_nonfinite_outputs_total offset 5m",
            "unless mmgov_module_nonfinite_outputs_total",
        ),
        "latency factor 1.1": ("1.5 * max by", "1.1 * max by"),
        "latency without floor": ("and mmgov:module_latency_p99:5m > 0.05\n", ""),
        "latency baseline per version": (
            "> on (model, module) group_left\n            1.5 * max by (model, module)",
            "> on (model, version, module) group_left\n"
            "            1.5 * max by (model, version, module)",
        ),
        "no traffic after 10 minutes": ("for: 15m", "for: 10m"),
        "hook errors miss new series": (
            "unless mmgov_instrumentation_errors_total offset 10m",
            "unless mmgov_instrumentation_errors_total",
        ),
    }

    @pytest.mark.parametrize("mutation", sorted(MUTATIONS))
    def test_promtool_tests_catch_loosened_rules(
        self, promtool: str, mutation: str, tmp_path: Path
    ) -> None:
        """The promtool tests fail against a copy of the rules with one threshold loosened."""
        old, new = self.MUTATIONS[mutation]
        text = ALERTS.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"mutation target not found once: {old!r}"
        (tmp_path / "alerts.yml").write_text(text.replace(old, new), encoding="utf-8")
        assert _run(promtool, "check", "rules", tmp_path / "alerts.yml").returncode == 0
        (tmp_path / "tests").mkdir()
        for path in RULE_TESTS:
            shutil.copy(path, tmp_path / "tests" / path.name)
        result = _run(promtool, "test", "rules", *sorted((tmp_path / "tests").glob("*.yml")))
        assert result.returncode != 0, f"promtool tests still pass with {mutation!r}"


class TestExampleConfigs:
    def test_prometheus_config_is_valid(self, promtool: str, tmp_path: Path) -> None:
        """promtool accepts the example Prometheus config (its token file made) and its rules."""
        config = _load_yaml(PROMETHEUS_EXAMPLE)
        assert "alerts.yml" in config["rule_files"]
        token = tmp_path / "mmgov-metrics-token"
        token.write_text("scrape-secret\n", encoding="utf-8")
        for job in config["scrape_configs"]:
            if "authorization" in job:
                job["authorization"]["credentials_file"] = str(token)
        shutil.copy(CONFIGS / "alerts.yml", tmp_path / "alerts.yml")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        result = _run(promtool, "check", "config", tmp_path / "prometheus.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_sidecar_is_scraped_with_a_bearer_token_file(self) -> None:
        """The sidecar's /metrics job sends the scrape token from a file, never inline."""
        jobs = {j["job_name"]: j for j in _load_yaml(PROMETHEUS_EXAMPLE)["scrape_configs"]}
        auth = jobs["mmgov-sidecar"]["authorization"]
        assert auth["type"] == "Bearer"
        assert auth["credentials_file"]
        assert "credentials" not in auth

    def test_alertmanager_config_is_valid(self) -> None:
        """amtool accepts the example Alertmanager config."""
        amtool = _binary("amtool", "prometheus-alertmanager")
        result = _run(amtool, "check-config", ALERTMANAGER_EXAMPLE)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_alertmanager_posts_to_sidecar_with_token_file(self) -> None:
        """Every alert goes to the sidecar webhook with a bearer token read from a file."""
        config = _load_yaml(ALERTMANAGER_EXAMPLE)
        receivers = {r["name"]: r for r in config["receivers"]}
        webhook = receivers[config["route"]["receiver"]]["webhook_configs"][0]
        assert webhook["url"].endswith("/api/v1/alerts")
        assert webhook["send_resolved"] is True
        authorization = webhook["http_config"]["authorization"]
        assert authorization["type"] == "Bearer"
        assert "credentials_file" in authorization
        assert "credentials" not in authorization
        assert {"model", "version", "module"} <= set(config["route"]["group_by"])


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _data_panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


class TestDashboard:
    def test_model_header(self) -> None:
        """The dashboard is a Grafana JSON model with a uid and unique panel ids."""
        dashboard = _dashboard()
        assert dashboard["uid"]
        assert dashboard["title"]
        assert 36 <= dashboard["schemaVersion"] <= 41
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))

    def test_template_variables(self) -> None:
        """A Prometheus datasource variable, and model/version/module from label_values."""
        variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name in ("model", "version", "module"):
            query = variables[name]["definition"]
            assert query.startswith("label_values(")
            assert query.endswith(f", {name})")
            selector = query[len("label_values(") : -len(f", {name})")]
            assert metric_names(selector) <= EXPORTED_METRICS

    @pytest.mark.parametrize("panel", _data_panels(), ids=lambda panel: panel["title"])
    def test_panel_queries_use_known_metrics(self, panel: dict[str, Any]) -> None:
        """Each panel queries the datasource variable and only exported or recorded metrics."""
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"no metric in {target['expr']!r}"
            assert names <= EXPORTED_METRICS | SIDECAR_METRICS | _recorded_names()
            for variable in ("$model", "$version", "$module"):
                assert variable in target["expr"], f"{target['expr']!r} ignores {variable}"

    def test_every_metric_has_a_panel(self) -> None:
        """Every exported metric family is shown somewhere."""
        shown = set()
        for panel in _data_panels():
            for target in panel["targets"]:
                shown |= metric_names(target["expr"])
        families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in EXPORTED_METRICS}
        shown_families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in shown}
        assert families <= shown_families

    def test_drift_panel_has_threshold_line_at_one(self) -> None:
        """The drift score panel draws the alert threshold, 1.0, as a line."""
        (panel,) = [
            p for p in _data_panels() if any("mmgov_drift_score" in t["expr"] for t in p["targets"])
        ]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "line+area", "dashed"}
        assert 1 in [step["value"] for step in defaults["thresholds"]["steps"]]


def test_readme_has_runbook_anchors() -> None:
    """Each alert's runbook_url points at a heading that exists in README.md."""
    readme = ROOT / "README.md"
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in _alert_rules():
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in headings, f"README.md has no heading for #{anchor}"
