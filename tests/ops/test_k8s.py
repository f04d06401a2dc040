"""ops/k8s: the manifests validate against the Kubernetes schemas with no network, agree
with each other and with the node's options, and the discover-peers init script finds real
nodes and writes a bootstrap file the node accepts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from mesh.config import OPTIONS, NodeConfig, load_config
from tests.helpers import NodeProcess, http_get
from tests.ops import DEVNET_FLAGS, OPS

K8S = OPS / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# The oldest Kubernetes still commonly run, and the newest the package bundles schemas for.
VERSIONS = ("1.30.0", latest_version())


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind: str, name: str = "chorus-health") -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve or connect fails the test: validation must be offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during validation: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_offline_against_the_schemas(version: str) -> None:
    assert {path.name for path in MANIFESTS} >= {
        "statefulset.yaml",
        "service.yaml",
        "configmap.yaml",
        "pdb.yaml",
    }
    for doc in documents():
        # strict: unknown fields (a misspelt probe setting) are errors too. Unlike the
        # CLI, which only warns, a kind without a schema raises here and fails the test.
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_misspelt_field_fails_validation() -> None:
    statefulset = find("StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["periodSecond"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSIONS[0], strict=True)


def container(name: str = "chorus-health", *, init: bool = False) -> dict[str, Any]:
    pod = find("StatefulSet")["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = [
        c for c in pod["initContainers" if init else "containers"] if c["name"] == name
    ]
    assert len(found) == 1, name
    return found[0]


def test_the_pieces_fit_together() -> None:
    statefulset, service, pdb = find("StatefulSet"), find("Service"), find("PodDisruptionBudget")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    for selector in (
        service["spec"]["selector"],
        statefulset["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    node = container()
    ports = {port["name"]: port["containerPort"] for port in node["ports"]}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert ports["health"] == NodeConfig().health_port


def test_probes_use_the_health_endpoints() -> None:
    node = container()
    assert node["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert node["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert node["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    # The reference's figures for the two it shows.
    assert (node["livenessProbe"]["periodSeconds"], node["livenessProbe"]["timeoutSeconds"]) == (
        10,
        5,
    )
    assert (node["readinessProbe"]["periodSeconds"], node["readinessProbe"]["timeoutSeconds"]) == (
        5,
        3,
    )


def test_environment_names_real_options_and_keeps_the_key_on_the_volume() -> None:
    statefulset = find("StatefulSet")
    node = container()
    env = {var["name"]: var.get("value") for var in node["env"]}
    known = {option.env for option in OPTIONS}
    assert {name for name in env if name.startswith("CHORUS_")} <= known
    mounts = {m["name"]: m["mountPath"] for m in node["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert env["CHORUS_DATA_DIR"] == mounts["data"] and "data" in claims
    # Kubernetes' SIGKILL must come after the node's own shutdown limit and watchdog.
    defaults = NodeConfig()
    grace = statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > defaults.shutdown_timeout + 10
    assert node["args"] == ["--config", "/run/chorus/bootstrap.toml"]


# ---------------------------------------------------------------- discover-peers script


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def discover(tmp_path: Path, pod: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "discover-peers.py"
    script.write_text(find("ConfigMap", "chorus-health-scripts")["data"]["discover-peers.py"])
    return subprocess.run(
        [sys.executable, str(script)],
        env={
            **os.environ,
            "POD_NAME": pod,
            "OUTPUT": str(tmp_path / f"{pod}.toml"),
            # Seed <n> listens on 127.0.1.<n>: one fixed port on distinct loopback
            # addresses, as pods share a port on distinct IPs.
            "SEED_HOST": "127.0.1.{index}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def bootstrap_of(toml: Path) -> tuple[str, ...]:
    """What the node itself reads from the file discover-peers wrote."""
    return load_config({}, {}, str(toml)).bootstrap_peers


@pytest.mark.network
async def test_discover_peers_finds_a_seed_and_writes_bootstrap_config(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    seed_ip = "127.0.1.0"
    health, p2p = free_port(seed_ip), free_port(seed_ip)
    seed = NodeProcess(
        tmp_path / "seed",
        *DEVNET_FLAGS,
        *("--health-host", seed_ip, "--health-port", str(health)),
        *("--p2p-host", seed_ip, "--p2p-port", str(p2p)),
    )
    processes.append(seed)
    seed.start()
    await seed.wait_listening()
    ports = {"CHORUS_HEALTH_PORT": str(health), "CHORUS_P2P_PORT": str(p2p)}

    # The first pod of a new cluster asks once and starts alone.
    first = discover(tmp_path, "chorus-health-0", **ports)
    assert first.returncode == 0, first.stderr
    assert bootstrap_of(tmp_path / "chorus-health-0.toml") == ()

    # Pod 2 finds seed 0 (seed 1 is not there) and writes its address with its peer ID.
    joined = discover(tmp_path, "chorus-health-2", **ports)
    assert joined.returncode == 0, joined.stderr
    peers = bootstrap_of(tmp_path / "chorus-health-2.toml")
    assert peers == (f"/ip4/{seed_ip}/tcp/{p2p}/p2p/{seed.peer_id}",) == (seed.p2p_addr,)
    code, _ = await http_get(seed.url + "/health/live")
    assert code == 200

    # No seed answering: a later pod fails (Kubernetes retries it) rather than start alone.
    seed.stop()
    alone = discover(tmp_path, "chorus-health-3", **ports, DISCOVERY_SECONDS="1")
    assert alone.returncode != 0
    assert "no seed" in alone.stderr


def test_members_are_admitted_by_the_cluster_authority() -> None:
    spec = find("StatefulSet")["spec"]["template"]["spec"]
    node = container()
    env = {var["name"]: var for var in node["env"]}
    assert env["CHORUS_AUTHORITY_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "authority.pub"
    cert = env["CHORUS_MEMBER_CERTIFICATE"]["value"]
    (issuer,) = [c for c in spec["initContainers"] if c["name"] == "issue-certificate"]
    args = issuer["args"]
    assert args[args.index("--out") + 1] == cert
    assert args[args.index("--identity") + 1] == f"{env['CHORUS_DATA_DIR']['value']}/identity.key"
    # The issuer runs the real CLI with these arguments.
    from adapters.authority_cli import build_parser

    parsed = build_parser().parse_args([*issuer["command"][3:], *args])
    assert parsed.key_from_env == "CHORUS_AUTHORITY_KEY"
    assert spec["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
