"""The Prometheus alerting rules (deploy/prometheus/alerts.yml) hold: promtool accepts them and
passes their unit tests, every alert has a test that fires it and one that keeps it quiet, and every
metric, label and topic a rule names is one the gateway exports today, so the rules cannot drift
from gateway/observability/metrics.py unnoticed.

promtool comes from Debian's `prometheus` package, which `make test` installs
(scripts/install-promtool.sh); only where it cannot be found at all are the promtool tests skipped.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any, TypeVar

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from gateway.bus.topics import load_topics
from gateway.observability import metrics
from gateway.settings import SCHEMAS_DIR
from tests.conftest import RunningGateway

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
CONFIGMAP = PROMETHEUS.parent / "kubernetes" / "prometheus-alerts.yaml"
#: On the PATH, or where Debian puts it when the PATH is a short one.
PROMTOOL = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin:/usr/local/bin")
#: Labels Prometheus adds to every scraped series itself.
TARGET_LABELS = {"job", "instance"}
#: How each kind of metric appears in the exposition format.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is neither on the PATH nor in /usr/bin: `make promtool` installs Debian's prometheus package",
)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)


# -- promtool -----------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_alerting_rules() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in checked.stdout


@needs_promtool
def test_each_alert_fires_on_its_unit_test_series_and_stays_quiet_on_the_healthy_ones() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_expects_silence() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    assert yaml.safe_load(RULE_TESTS.read_text())["rule_files"] == [RULES.name]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no test fires it"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no test keeps it quiet"


def test_every_alert_says_how_bad_it_is_and_what_happened() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_has_a_runbook_line_in_the_readme() -> None:
    readme = (PROMETHEUS.parents[1] / "README.md").read_text()
    section = readme.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    for rule in alert_rules():
        assert f"`{rule['alert']}`" in section, f"{rule['alert']} is not in the README's Alerts section"


# -- the rules name what the gateway exports ----------------------------------------------------


def declared() -> dict[str, set[str]]:
    """Every series name gateway/observability/metrics.py declares, with the labels it carries."""
    found: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            labels = set(value._labelnames)  # not in describe(): a metric with no children yet has no samples
            found |= {family.name + suffix: labels for suffix in SUFFIXES[family.type]}
    return found


async def scrape(gateway: RunningGateway) -> str:
    async with gateway.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


async def served(gateway: RunningGateway) -> set[str]:
    """Every series name a running gateway's /metrics answers with, empty families included."""
    families = text_string_to_metric_families(await scrape(gateway))
    return {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, ("",))}


Node = TypeVar("Node")


def nodes(expr: str, kind: type[Node]) -> list[Node]:
    """The nodes of one kind in a PromQL expression's syntax tree, read by a PromQL parser, not by pattern."""
    found: list[Node] = []
    promql_parser.walk(promql_parser.parse(expr), lambda node: found.append(node) if isinstance(node, kind) else None)
    return found


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    return nodes(expr, promql_parser.VectorSelector)


def rule_metrics() -> dict[str, str]:
    return {s.name: rule["alert"] for rule in alert_rules() for s in selectors(rule["expr"])}


def test_the_rules_expressions_are_read_as_promql() -> None:
    names = rule_metrics()
    assert {"gateway_inbound_refused_total", "gateway_wait_breaches_open", "gateway_broker_up"} <= set(names)
    assert all(rule_metrics()), "every selector names its metric"


async def test_every_metric_a_rule_names_is_declared_by_the_gateway_and_served_at_metrics(
    running_gateway: RunningGateway,
) -> None:
    known, exposed = declared(), await served(running_gateway)
    unknown = {name: alert for name, alert in rule_metrics().items() if name not in known}
    assert unknown == {}, "rules name metrics gateway/observability/metrics.py does not declare"
    missing = {name: alert for name, alert in rule_metrics().items() if name not in exposed}
    assert missing == {}, "rules name metrics the app's /metrics does not serve"


@needs_promtool
async def test_promtool_finds_nothing_to_fault_in_what_metrics_serves(running_gateway: RunningGateway) -> None:
    assert PROMTOOL is not None
    text = await scrape(running_gateway)
    checking = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    said, _ = await asyncio.wait_for(checking.communicate(text.encode()), timeout=60)
    assert checking.returncode == 0 and not said.strip(), said.decode()


def test_every_label_a_rule_selects_or_groups_by_is_one_its_metrics_carry() -> None:
    known = declared()
    for rule in alert_rules():
        carried = TARGET_LABELS.union(*(known.get(s.name, set()) for s in selectors(rule["expr"])))
        for selector in selectors(rule["expr"]):
            labels = known.get(selector.name, set()) | TARGET_LABELS
            for matcher in selector.matchers.matchers:
                assert matcher.name in labels, f"{rule['alert']}: {selector.name} has no label {matcher.name}"
        for aggregation in nodes(rule["expr"], promql_parser.AggregateExpr):
            grouped = set(aggregation.modifier.labels) if aggregation.modifier else set()
            assert grouped <= carried, f"{rule['alert']}: groups by {grouped - carried}"


def test_every_topic_a_rule_names_is_one_of_the_gateways_topics() -> None:
    topics = {t.name for t in load_topics(SCHEMAS_DIR)}
    named = {
        m.value
        for rule in alert_rules()
        for s in selectors(rule["expr"])
        for m in s.matchers.matchers
        if m.name == "topic" and m.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual)
    }
    assert named and named <= topics, named - topics


# -- Kubernetes ---------------------------------------------------------------------------------


def test_the_kubernetes_configmap_carries_the_rules_file_as_it_is() -> None:
    (configmap,) = [d for d in yaml.safe_load_all(CONFIGMAP.read_text()) if d]
    assert configmap["kind"] == "ConfigMap"
    assert configmap["data"]["alerts.yml"] == RULES.read_text(), (
        "deploy/kubernetes/prometheus-alerts.yaml must carry deploy/prometheus/alerts.yml unchanged"
    )
