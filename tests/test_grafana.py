"""examples/grafana-dashboard.json: valid JSON, and every metric it queries is one lrun exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import free_port
from outputs_helpers import scrape_until, start_lrun
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT
from runner.monitor.remote import RemoteMonitor

DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
SCENARIO = """\
name: everything
host: {host}
pools:
  ids: {{csv: ids.csv, order: sequential}}
users:
  u:
    think: 20ms
    sequence:
      - {{rendezvous: gate, users: 1}}
      - transaction: browse
        steps:
          - get: "/items/{{{{ ids.id }}}}"
            name: /items/[id]
            check: [{{status: 200}}]
"""


def _queried(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    return {name for expr in exprs for name in re.findall(r"\blrun_[a-z0-9_]+", expr)}


def test_the_dashboard_is_grafana_json_with_the_panels_a_tester_looks_at() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in ("Users", "Requests per second", "Response time percentiles (all requests)", "p95 by request",
                   "Transactions per second", "Host CPU"):  # fmt: skip
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


@pytest.mark.e2e
def test_every_metric_the_dashboard_queries_is_exposed(tmp_path: Path, demo_url: str) -> None:
    (tmp_path / "ids.csv").write_text("id\n" + "\n".join(str(i) for i in range(1, 10_000)) + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.format(host=demo_url))
    port = free_port()
    lrun = start_lrun(str(scenario), "-u", "2", "-t", "6", "--processes", "1", "--metrics-port", str(port))
    try:
        text = scrape_until(f"http://127.0.0.1:{port}/metrics", 'lrun_transactions_total{name="browse"}')
        lrun.communicate(timeout=90)
    finally:
        lrun.kill()
    exposed = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    remote = RemoteMonitor([("db", "http://127.0.0.1:1/metrics")], "http://127.0.0.1:1", {"q": "up"})
    exposed |= {family.name for family in remote.families()}  # gauges: the family name is the sample name
    missing = _queried(json.loads(DASHBOARD.read_text())) - exposed
    assert not missing, f"the dashboard queries metrics lrun does not expose: {sorted(missing)}"
