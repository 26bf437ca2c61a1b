"""The shipped monitoring: Prometheus alert rules (checked and unit-tested by promtool) and the
Grafana dashboard; every metric they name is one the server exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cowrite.server.hooks import Hooks
from cowrite.server.metrics import Metrics
from cowrite.server.webhooks import Webhooks

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "cowrite-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "cowrite-dashboard.json"
BUILTIN = {"up"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is missing (CI requires it: see scripts/ensure-services)")
        pytest.skip("promtool is missing: run scripts/ensure-services")
    return found


def exported() -> set[str]:
    """Every series name the server's registry can export (histogram and counter suffixes)."""
    metrics = Metrics()
    # the hooks' and webhooks' metrics join the same registry when they are configured
    Hooks([], metrics.registry)
    Webhooks(["http://127.0.0.1:9/hook"], "whsec_" + "A" * 32, metrics.registry)
    names: set[str] = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.update({f"{family.name}_total", f"{family.name}_bucket", family.name})
    return names


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(cowrite_[a-z_]+|up)\b", expr))


def test_the_alert_rules_pass_promtool_checks_and_unit_tests() -> None:
    tool = promtool()
    for args in (
        ["check", "rules", RULES.name],
        ["test", "rules", RULES.with_suffix(".test.yml").name],
    ):
        done = subprocess.run(
            [tool, *args], check=False, cwd=RULES.parent, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_named_by_the_rules_and_the_dashboard_is_exported() -> None:
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    named = set().union(*(names_in(e) for e in exprs))
    assert named - exported() - BUILTIN == set()
    assert len(exprs) >= 15
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "CowriteEditAckSlow",
        "CowriteStoreUnavailable",
        "CowriteOutboxOverflows",
        "CowriteInstanceLost",
    } <= alerts


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "cowrite"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
