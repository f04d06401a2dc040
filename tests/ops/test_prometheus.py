"""ops/prometheus: the configs and rules pass promtool, the rules' unit tests pass, the rules
name only metrics a node exports, a live node's /metrics passes promtool's lint, and a real
Prometheus scrapes a devnet and answers chorus_system_health_score for every node."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from tests.helpers import PROJECT, NodeProcess, http_get, wait_until
from tests.ops import OPS, needs, run, start_devnet

PROMETHEUS = OPS / "prometheus"
CONFIGS = ("prometheus.yml", "prometheus-kubernetes.yml")

promtool = needs("promtool", "prometheus")


# The reference's alert rules ("Alert Rules"): Alertmanager routes and silences written
# for the Go package match these names and this group, so a rename breaks them silently.
REFERENCE_GROUP = "health_alerts"
# name: (for, severity, what the expression must test)
REFERENCE_ALERTS = {
    "HealthCheckFailing": (
        "5m",
        "critical",
        'chorus_health_checks_failed_total{check_name="database-connectivity"}',
    ),
    "LowSystemHealth": ("10m", "warning", "chorus_system_health_score < 0.75"),
    "ComponentDegraded": ("15m", "warning", "chorus_component_health_score < 0.5"),
}


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def test_the_reference_alerts_keep_their_names_group_and_thresholds() -> None:
    groups = {group["name"]: group for group in rule_groups()}
    assert REFERENCE_GROUP in groups, f"no group {REFERENCE_GROUP}: {sorted(groups)}"
    group = groups[REFERENCE_GROUP]
    assert group["interval"] == "30s"
    rules = {rule["alert"]: rule for rule in group["rules"] if "alert" in rule}
    assert set(REFERENCE_ALERTS) <= set(rules), sorted(rules)
    for name, (wait, severity, tested) in REFERENCE_ALERTS.items():
        rule = rules[name]
        assert (rule["for"], rule["labels"]["severity"]) == (wait, severity), name
        assert tested in rule["expr"], name
    # Each name once: a second rule of the same name would page twice for one cause.
    names = [rule["alert"] for rule in alert_rules() if "alert" in rule]
    assert len(names) == len(set(names))


@promtool
@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid(name: str) -> None:
    # promtool also checks the rule files a config names.
    done = run(["promtool", "check", "config", str(PROMETHEUS / name)])
    assert done.returncode == 0, done.stdout + done.stderr


@promtool
def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    done = run(["promtool", "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
    # Relative paths in alerts_test.yml are taken from the current directory.
    done = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_labelled_tested_and_documented() -> None:
    tested = (PROMETHEUS / "alerts_test.yml").read_text()
    # The operators' section is drafted in ops/ and merged into the README.
    documented = "".join(
        path.read_text()
        for path in (PROJECT / "README.md", OPS / "README-operators.md")
        if path.exists()
    )
    for rule in alert_rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"
        assert f"`{name}`" in documented, f"{name} has no runbook entry"


@pytest.mark.parametrize(
    ("address", "labels"),
    [
        (
            "chorus-health-2.chorus-health.chorus.svc.cluster.local:8081",
            {"instance": "chorus-health-2:8081", "pod": "chorus-health-2", "namespace": "chorus"},
        ),
        # Some resolvers leave the root's dot on SRV targets.
        (
            "chorus-health-0.chorus-health.ops.svc.cluster.local.:8081",
            {"instance": "chorus-health-0:8081", "pod": "chorus-health-0", "namespace": "ops"},
        ),
    ],
)
def test_kubernetes_relabeling_names_pods(address: str, labels: dict[str, str]) -> None:
    # Prometheus anchors relabel regexes at both ends, as fullmatch does; RE2 and Python
    # agree on this subset.
    config = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    got: dict[str, str] = {}
    for step in config["scrape_configs"][0]["relabel_configs"]:
        match = re.fullmatch(step["regex"], address)
        assert match, f"{step['regex']} does not match {address}"
        got[step["target_label"]] = match.expand(step["replacement"].replace("$", "\\"))
    assert got == labels


# --------------------------------------------------------------------------- live nodes


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    """Three node processes shared by this module's tests, none of which disturbs them."""
    started: list[NodeProcess] = []
    try:
        yield trio.run(start_devnet, tmp_path_factory.mktemp("devnet"), 3, started)
    finally:
        for node in started:
            node.stop()


def exported_names(exposition: str) -> set[str]:
    """Metric names in an exposition, counters both with and without ``_total``: a labelled
    counter that has never counted shows only its ``# TYPE`` line, without the suffix."""
    names = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    return names | {name + "_total" for name in names}


@promtool
async def test_live_metrics_pass_promtool_and_cover_the_rules(devnet: list[NodeProcess]) -> None:
    code, exposition = await http_get(devnet[0].url + "/metrics")
    assert code == 200
    done = await trio.run_process(
        ["promtool", "check", "metrics"],
        stdin=exposition.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    used = {
        name for rule in alert_rules() for name in re.findall(r"\bchorus_[a-z_]+\b", rule["expr"])
    }
    missing = used - exported_names(exposition)
    assert not missing, f"rules use metrics no node exports: {sorted(missing)}"


def free_port() -> int:
    # Prometheus cannot report a port it bound itself; the short race is harmless here.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs("prometheus", "prometheus")
@pytest.mark.slow
async def test_prometheus_scrapes_every_node(devnet: list[NodeProcess], tmp_path: Path) -> None:
    targets = [urllib.parse.urlsplit(node.url).netloc for node in devnet]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        # The real rules, so Prometheus itself (not only promtool) accepts them.
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "scrape_configs": [{"job_name": "chorus-health", "static_configs": [{"targets": targets}]}],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    api = f"http://127.0.0.1:{free_port()}/api/v1"
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        prometheus = await trio.lowlevel.open_process(
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={api.split('/')[2]}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        series: list[dict[str, Any]] = []

        async def every_node_scraped() -> bool:
            nonlocal series
            assert prometheus.poll() is None, log_path.read_text()
            try:
                code, body = await http_get(f"{api}/query?query=chorus_system_health_score", 2)
            except urllib.error.URLError:
                return False  # not listening yet
            series = body["data"]["result"] if code == 200 and isinstance(body, dict) else []
            return len(series) == len(targets)

        await wait_until(every_node_scraped, timeout=30, poll=0.5, what="a scrape of every node")
        assert sorted(s["metric"]["instance"] for s in series) == sorted(targets)
        assert all(0.0 <= float(s["value"][1]) <= 1.0 for s in series), json.dumps(series)
        _, rules = await http_get(f"{api}/rules")
        loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
        assert {rule.get("alert", rule.get("record")) for rule in alert_rules()} <= loaded
        # The reference's names, in the reference's group, as Prometheus itself loaded them.
        by_group = {
            group["name"]: {rule["name"] for rule in group["rules"]}
            for group in rules["data"]["groups"]
        }
        assert set(REFERENCE_ALERTS) <= by_group.get(REFERENCE_GROUP, set())
    finally:
        prometheus.terminate()
        with trio.move_on_after(10):
            await prometheus.wait()
        prometheus.kill()
