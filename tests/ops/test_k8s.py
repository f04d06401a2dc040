"""ops/k8s: the manifests validate against the Kubernetes schemas with no network, agree
with each other and with the node's options, and the discover-peers init script finds real
nodes and writes a bootstrap file the node accepts."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from mesh.config import NodeConfig
from mesh.config_options import OPTIONS
from mesh.config_sources import load_config
from tests.helpers import PROJECT, NodeProcess, http_get
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


# ---------------------------------------------------------------- the image (Dockerfile)
# Docker cannot run here, so the Dockerfile is read, not built: the checks are that the
# image and the StatefulSet make the same assumptions about each other and the node.

PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV, ...
    value: str  # the rest of the (joined) line


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per FROM (parser rules of the Dockerfile
    reference: a trailing backslash continues the line; comment lines are dropped, also
    inside a continuation)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(value.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{line!r} before the first FROM"
        stages[-1].append(instruction)
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    """A JSON-array argument; the shell form would be an error here (for ENTRYPOINT it
    puts /bin/sh at PID 1, which does not pass SIGTERM on)."""
    value = json.loads(instruction.value)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def pairs(stage: list[Instruction], keyword: str) -> dict[str, str]:
    """ENV or LABEL ``key=value`` pairs of one stage, later ones winning."""
    found: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == keyword:
            for word in shlex.split(instruction.value):
                key, sep, value = word.partition("=")
                assert sep, f"{keyword} {instruction.value!r}: use key=value"
                found[key] = value
    return found


def only(stage: list[Instruction], keyword: str) -> Instruction:
    (found,) = [i for i in stage if i.keyword == keyword]
    return found


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return dockerfile_stages((PROJECT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def image(stages: list[list[Instruction]]) -> list[Instruction]:
    """The final stage: what the image is."""
    return stages[-1]


def under(path: str, mounts: dict[str, str]) -> str | None:
    """The volume whose mount holds ``path``, if any."""
    for volume, mount in mounts.items():
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return volume
    return None


def test_dockerfile_parser_joins_continuations_and_splits_stages() -> None:
    text = 'FROM a AS b\n# c\nRUN x \\\n  # inside\n  && y\n\nFROM b\nENV K=v L="w z"\n'
    first, second = dockerfile_stages(text)
    assert first == [Instruction("FROM", "a AS b"), Instruction("RUN", "x && y")]
    assert pairs(second, "ENV") == {"K": "v", "L": "w z"}
    with pytest.raises(json.JSONDecodeError):
        exec_form(Instruction("ENTRYPOINT", "chorus-health --config x"))


def test_the_pod_runs_the_images_entry_point(image: list[Instruction]) -> None:
    entrypoint = exec_form(only(image, "ENTRYPOINT"))
    assert entrypoint == ["chorus-health"]
    assert PYPROJECT["scripts"]["chorus-health"] == "adapters.cli:main"
    node = container()
    # No command: Kubernetes then runs the image's ENTRYPOINT with the pod's args.
    assert "command" not in node or node["command"] == entrypoint
    from adapters.cli import build_parser

    parsed = vars(build_parser().parse_args(node["args"]))
    assert parsed["config"] == "/run/chorus/bootstrap.toml"
    # The init containers run the image's `python`: the virtualenv the package went into,
    # first on PATH.
    env = pairs(image, "ENV")
    venv = next(i.value.split()[-1] for i in image if i.keyword == "COPY" and "--from" in i.value)
    assert env["PATH"].split(":")[0] == f"{venv}/bin"
    for init in find("StatefulSet")["spec"]["template"]["spec"]["initContainers"]:
        assert init["command"][0] == "python", init["name"]


def test_the_image_user_is_the_pods(image: list[Instruction]) -> None:
    uid, _, gid = only(image, "USER").value.partition(":")
    assert (uid, gid) == ("10001", "10001")  # numeric: runAsNonRoot can verify it
    pod = find("StatefulSet")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (int(uid), int(gid), int(gid))
    # USER comes after every RUN: nothing is set up as root behind the user's back.
    keywords = [i.keyword for i in image]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_exposed_ports_are_the_pods_and_the_nodes_defaults(image: list[Instruction]) -> None:
    exposed = {
        word.lower() if "/" in word else f"{word}/tcp"
        for i in image
        if i.keyword == "EXPOSE"
        for word in i.value.split()
    }
    node = container()
    declared = {f"{p['containerPort']}/{p['protocol'].lower()}" for p in node["ports"]}
    defaults = NodeConfig()
    assert exposed == declared == {f"{defaults.health_port}/tcp", f"{defaults.p2p_port}/tcp"}
    # And the node is told to listen on them.
    env = {var["name"]: var.get("value") for var in node["env"]}
    ports = {p["name"]: str(p["containerPort"]) for p in node["ports"]}
    assert (env["CHORUS_HEALTH_PORT"], env["CHORUS_P2P_PORT"]) == (ports["health"], ports["p2p"])


def test_data_paths_agree(image: list[Instruction]) -> None:
    env = pairs(image, "ENV")
    (volume,) = exec_form(only(image, "VOLUME"))
    node = container()
    pod_env = {var["name"]: var.get("value") for var in node["env"]}
    mounts = {m["name"]: m["mountPath"] for m in node["volumeMounts"]}
    data = env["CHORUS_DATA_DIR"]
    assert data == volume == env["CHORUS_DISK_PATH"] == only(image, "WORKDIR").value
    assert data == pod_env["CHORUS_DATA_DIR"] == pod_env["CHORUS_DISK_PATH"] == mounts["data"]
    # The image makes its data directory, owned by its user and closed to others: a plain
    # `docker run` (a fresh volume copies it) keeps the key as private as the pod does.
    uid, _, gid = only(image, "USER").value.partition(":")
    (made,) = [i.value for i in image if i.keyword == "RUN" and data in i.value]
    assert re.search(rf"install -d -o {uid} -g {gid} -m 0700 {re.escape(data)}\b", made), made
    # The root filesystem is read-only: every path the node writes or reads from outside
    # the image is on a mounted volume.
    assert node["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["PYTHONDONTWRITEBYTECODE"] == pod_env["PYTHONDONTWRITEBYTECODE"] == "1"
    paths = {name: v for name, v in pod_env.items() if name.startswith("CHORUS_") and v}
    paths = {name: v for name, v in paths.items() if v.startswith("/")}
    assert set(paths) >= {
        "CHORUS_DATA_DIR",
        "CHORUS_HEALTH_TOKEN_FILE",
        "CHORUS_MEMBER_CERTIFICATE",
    }
    for name, path in {**paths, "--config": node["args"][1]}.items():
        assert under(path, mounts) is not None, f"{name}={path} is on no volume"


def test_mounted_files_come_from_where_they_are_made() -> None:
    spec = find("StatefulSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    node = container()
    mounts = {m["name"]: m["mountPath"] for m in node["volumeMounts"]}
    env = {var["name"]: var.get("value") for var in node["env"]}
    # The token file is a key of the token Secret.
    token = env["CHORUS_HEALTH_TOKEN_FILE"]
    secret = volumes[under(token, mounts) or ""]["secret"]
    assert secret["secretName"] == "chorus-health-token"
    assert token == f"{mounts['health-token']}/token"
    # The config file is the one discover-peers writes, on the volume both mount.
    discover = container("discover-peers", init=True)
    output = {var["name"]: var.get("value") for var in discover["env"]}["OUTPUT"]
    discover_mounts = {m["name"]: m["mountPath"] for m in discover["volumeMounts"]}
    assert output == node["args"][1]
    assert under(output, discover_mounts) == under(output, mounts) == "bootstrap"
    # The script it runs is in the ConfigMap mounted at its path.
    script = discover["command"][1]
    scripts = volumes[under(script, discover_mounts) or ""]["configMap"]["name"]
    assert script.rsplit("/", 1)[1] in find("ConfigMap", scripts)["data"]


def test_image_name_and_tag_are_the_package_and_its_version(image: list[Instruction]) -> None:
    expected = f"{PYPROJECT['name']}:{PYPROJECT['version']}"
    spec = find("StatefulSet")["spec"]["template"]["spec"]
    for each in [*spec["initContainers"], *spec["containers"]]:
        assert each["image"] == expected, each["name"]
    labels = pairs(image, "LABEL")
    assert labels["org.opencontainers.image.title"] == PYPROJECT["name"]
    assert labels["org.opencontainers.image.version"] == PYPROJECT["version"]
    assert f"docker build -t {expected} ." in (PROJECT / "Dockerfile").read_text()


def test_the_image_builds_from_what_the_package_needs(stages: list[list[Instruction]]) -> None:
    # Every stage on one Python (the virtualenv is copied between them) that the package
    # accepts.
    bases = {only(stage, "FROM").value.split()[0] for stage in stages}
    (base,) = bases
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", base)
    assert match, base
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["requires-python"])
    assert minimum
    assert tuple(map(int, match.groups())) >= tuple(map(int, minimum.groups()))
    # The build stage copies every package setuptools finds, and the files the build reads.
    build = stages[0]
    copied = {word for i in build if i.keyword == "COPY" for word in i.value.split()[:-1]}
    include = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {
        path.name
        for path in PROJECT.iterdir()
        if (path / "__init__.py").exists() and any(fnmatch(path.name, p) for p in include)
    }
    assert packages == {"mesh", "adapters", "probes", "devnet"}
    assert copied >= packages | {"pyproject.toml", PYPROJECT["readme"], *PYPROJECT["license-files"]}
    assert any(i.keyword == "RUN" and "pip install ." in i.value for i in build)
    # .dockerignore keeps none of them out of the build context.
    ignored = [
        line.strip()
        for line in (PROJECT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [(c, p) for c in copied for p in ignored if fnmatch(c, p)]
