"""contrib/prometheus and contrib/grafana: the alert rules and the dashboard parse, and every
metric their expressions name is one a running server's /metrics exports."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from msnp6.testing import ServerProcess, md5_hex

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "contrib" / "prometheus" / "msnp6-alerts.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "msnp6-dashboard.json"

#: Series Prometheus makes itself for every scrape target.
PROMETHEUS_OWN = {"up"}
#: PromQL words that are not series: aggregations, their modifiers, operators.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "stdvar"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", ""),
            "gauge": ("",), "untyped": ("",), "info": ("_info",)}


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels and Grafana's
    $variables left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and other strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or word in KEYWORDS or (m.start() > 0 and text[m.start() - 1].isdigit()):
            continue  # a function call, a keyword, or a duration/number suffix
        names.add(word)
    return names


def test_series_names_reads_promql():
    assert series_names('histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x="y"}[5m]))) > 1') == {"a_bucket"}
    assert series_names("process_open_fds / process_max_fds > 0.8") == {"process_open_fds", "process_max_fds"}
    assert series_names('sum(rate(x_total{instance=~"$instance"}[$__rate_interval])) or up == 0') == {"x_total", "up"}


@pytest.fixture(scope="module")
def alerts() -> dict[str, Any]:
    return yaml.safe_load(ALERTS.read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def alert_exprs(alerts: dict[str, Any]) -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for group in alerts["groups"] for rule in group["rules"]}


def dashboard_exprs(dashboard: dict[str, Any]) -> dict[str, str]:
    exprs = {f"{p['title']} {t['refId']}": t["expr"] for p in dashboard["panels"] for t in p["targets"]}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(METRIC, label): the metric must exist too.
            metric = re.match(r"label_values\((\w+),", variable["definition"])
            assert metric, variable
            exprs[f"${variable['name']}"] = metric.group(1)
    return exprs


def test_alert_rules_are_well_formed(alerts):
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_dashboard_is_well_formed(dashboard):
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p["targets"] and p["datasource"]["type"] == "prometheus", p["title"]
        x, w = p["gridPos"]["x"], p["gridPos"]["w"]
        assert 0 <= x and x + w <= 24, p["title"]
    spots = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    assert len(spots) == len(set(spots))


def exported_names(metrics_text: str) -> set[str]:
    """Every series name /metrics can show: each family's name with its type's suffixes."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            names.update(family + suffix for suffix in SUFFIXES[kind])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def test_every_metric_they_name_is_exported(alerts, dashboard, database, key_file, accounts, tmp_path):
    handle = accounts.create(password="pw")
    proc = ServerProcess(database.url, key_file, tmp_path, admin=True)
    proc.start()
    try:
        with proc.client() as c:
            c.login(handle, "pw")  # store calls, so the latency histogram has its series
        with proc.client() as c:  # a wrong answer: 911, so the error counter has a series
            c.negotiate()
            salt = c.request_salt(handle)
            c.send(f"USR 4 MD5 S {md5_hex(salt + 'wrong')}")
            c.expect("911 4")
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.ports['admin']}/metrics", timeout=10) as r:
            exported = exported_names(r.read().decode())
    finally:
        proc.stop()
    assert {"msnp6_logins_total", "msnp6_store_seconds_bucket", "process_open_fds"} <= exported
    used: dict[str, set[str]] = {}
    for where, exprs in (("alert", alert_exprs(alerts)), ("panel", dashboard_exprs(dashboard))):
        for name, expr in exprs.items():
            for series in series_names(expr):
                used.setdefault(series, set()).add(f"{where} {name}")
    missing = {series: sorted(places) for series, places in used.items()
               if series not in exported and series not in PROMETHEUS_OWN}
    assert not missing, missing
    assert {"msnp6_connections", "msnp6_sessions", "msnp6_errors_sent_total", "msnp6_limited_total",
            "msnp6_messages_relayed_total"} <= set(used)  # the dashboard shows each family
