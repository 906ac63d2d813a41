"""config/prometheus/alerts.yml: valid for promtool, its unit tests (alerts.test.yml) pass, and
every metric it names is declared in relayer/observability/metrics.py (or is a known pending one)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from relayer.observability.metrics import Metrics
from tests.ops.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "config" / "prometheus"
DASHBOARD = REPO / "config" / "grafana" / "relayer.json"
HINT = (
    "install the Debian package `prometheus` (it provides promtool): "
    "apt-get update && apt-get install -y --no-install-recommends prometheus"
)
PENDING_METRICS = {"relayer_reorgs_total"}
"""Alerted on before the daemon exports them (the reorg counter is planned in the watcher)."""

_METRIC = re.compile(r"\brelayer_[a-z0-9_]+\b")


def _promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", HINT)
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _exported_names() -> set[str]:
    """Every sample name the daemon's registry can expose (counters as `_total`, histograms
    as `_bucket` / `_sum` / `_count`, plus prometheus_client's `_created`)."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


@pytest.mark.tools
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.tools
def test_promtool_rule_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_name_only_real_metrics() -> None:
    used = set(_METRIC.findall((RULES_DIR / "alerts.yml").read_text()))
    assert {"relayer_backlog_snapshots", "relayer_signer_balance_wei", "relayer_proofs_rejected_total"} <= used
    assert used - _exported_names() <= PENDING_METRICS


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_name_only_real_metrics() -> None:
    exprs = _dashboard_exprs()
    assert exprs, "dashboard has no queries"
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used - _exported_names() <= PENDING_METRICS


@pytest.mark.tools
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no expression checker: wrap each query (Grafana's $instance variable
    # replaced by a regex) as a recording rule and check that file. JSON is valid YAML.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$instance", ".*")}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    (tmp_path / "dashboard.yml").write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
