"""The deployment files parse, and agree with the gateway itself: topic names and partitions with
schemas/topics.json, variable names with gateway/settings.py (a misspelt one would be silently
ignored by the settings), probes with the app's routes, ports with the configured ones."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway.app import create_app
from gateway.bus.topics import TopicSpec, load_topics
from gateway.settings import SCHEMAS_DIR, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
REPLICAS, MIN_IN_SYNC = 3, 2
NOT_SETTINGS = {"GATEWAY_CONFIG_FILE"}  # read by the settings loader itself


def topics() -> dict[str, TopicSpec]:
    return {t.name: t for t in load_topics(SCHEMAS_DIR)}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kubernetes_objects() -> list[dict[str, Any]]:
    return [d for path in sorted(KUBERNETES.glob("*.yaml")) for d in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in kubernetes_objects() if d["kind"] == kind and d["metadata"]["name"] != "referrals-kafka"]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def is_setting(variable: str) -> bool:
    """Whether an environment variable names a field of the gateway's settings."""
    name = variable.lower()
    if name in Settings.model_fields or variable in NOT_SETTINGS:
        return True
    section, _, rest = name.partition("_")
    field = Settings.model_fields.get(section)
    model = field.annotation if field else None
    return isinstance(model, type) and issubclass(model, BaseModel) and rest in model.model_fields


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process with exactly this environment would run with (validators included)."""
    for variable in list(os.environ):
        if is_setting(variable):
            monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return Settings()


# -- every file parses --------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert documents(path), f"{path} is empty"


def test_kustomization_lists_every_manifest_but_the_example() -> None:
    listed = set(documents(KUBERNETES / "kustomization.yaml")[0]["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "kafka-cluster.example.yaml"}
    assert listed == present


# -- topics -------------------------------------------------------------------------------------


def test_strimzi_topics_are_the_gateways_topics() -> None:
    declared = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind("KafkaTopic")}
    assert set(declared) == set(topics())
    for name, topic in declared.items():
        spec = topic["spec"]
        assert spec["partitions"] == topics()[name].partitions, name
        assert spec["replicas"] == REPLICAS, name
        assert int(spec["config"]["min.insync.replicas"]) == MIN_IN_SYNC, name
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "referrals-kafka"


def test_compose_topic_job_creates_the_gateways_topics() -> None:
    script = compose()["services"]["topic-init"]["command"][0]
    created = {name: int(n) for name, n in re.findall(r"^\s*create (\S+) (\d+)\s*$", script, re.MULTILINE)}
    assert created == {name: t.partitions for name, t in topics().items()}
    assert f"--replication-factor {REPLICAS}" in script
    assert f"--config min.insync.replicas={MIN_IN_SYNC}" in script


def test_compose_runs_three_kraft_brokers_that_keep_two_replicas_in_sync() -> None:
    services = compose()["services"]
    brokers = {name: s["environment"] for name, s in services.items() if name.startswith("kafka-")}
    assert len(brokers) == REPLICAS
    assert len({env["KAFKA_NODE_ID"] for env in brokers.values()}) == REPLICAS
    assert len({env["CLUSTER_ID"] for env in brokers.values()}) == 1
    for name, env in brokers.items():
        assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
        voters = {v.split("@")[1].split(":")[0] for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
        assert voters == set(brokers), name
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == MIN_IN_SYNC
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == REPLICAS
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


# -- settings -----------------------------------------------------------------------------------


def compose_gateways() -> dict[str, dict[str, str]]:
    services = compose()["services"]
    return {name: s["environment"] for name, s in services.items() if s.get("image", "").startswith("referral-gateway")}


def interpolated(value: str) -> str:
    value = re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "secret", value)
    return re.sub(r"\$\{AUTH_SIGNING_KEY[^}]*\}", "k" * 32, value)


def test_compose_runs_two_gateway_replicas_with_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    gateways = compose_gateways()
    assert len(gateways) == 2
    brokers = {name for name in compose()["services"] if name.startswith("kafka-")}
    for name, env in gateways.items():
        assert [v for v in env if not is_setting(v)] == [], f"{name}: not settings of the gateway"
        settings = settings_from({k: interpolated(v) for k, v in env.items()}, monkeypatch)
        assert {s.split(":")[0] for s in (settings.kafka.bootstrap_servers or "").split(",")} == brokers
        assert settings.kafka.replicas == REPLICAS and settings.kafka.acks == "all"
        assert settings.store_url.startswith("postgresql+asyncpg://") and "@postgres:" in settings.store_url
        assert settings.api.host == "0.0.0.0" and settings.mllp.host == "0.0.0.0"
        assert settings.auth.signing_key is not None, "replicas must share one token signing key"


def kubernetes_env(monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, list[str]]:
    (config,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "referral-gateway"]
    (secret,) = of_kind("Secret")
    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    sources = {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref}
    sources |= {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref}
    assert sources == {config["metadata"]["name"], secret["metadata"]["name"]}
    env = {**config["data"], **secret["stringData"]} | {e["name"]: "from-a-secret" for e in container["env"]}
    return settings_from(env, monkeypatch), list(env)


def test_kubernetes_configuration_names_only_settings_and_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, names = kubernetes_env(monkeypatch)
    assert [n for n in names if not is_setting(n)] == []
    assert settings.kafka.replicas == REPLICAS and settings.kafka.acks == "all"
    assert settings.kafka.security_protocol == "SASL_SSL" and settings.kafka.sasl_password is not None
    assert settings.store_url.startswith("postgresql+asyncpg://")
    assert settings.auth.signing_key is not None, "replicas must share one token signing key"


# -- the Deployment and Service -----------------------------------------------------------------


def test_kubernetes_probes_use_the_apps_health_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    paths = create_app(kubernetes_env(monkeypatch)[0]).openapi()["paths"]
    assert "get" in paths["/healthz"] and "get" in paths["/readyz"]


def test_kubernetes_container_is_bounded_and_unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    (deployment,) = of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    settings = kubernetes_env(monkeypatch)[0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.api.port, "mllp": settings.mllp.port}


def test_kubernetes_service_reaches_the_pods() -> None:
    (deployment,) = of_kind("Deployment")
    (service,) = of_kind("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {p["name"] for p in container["ports"]}


# -- the image ----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_builds_in_stages_on_slim_python_311_and_runs_unprivileged() -> None:
    instructions = dockerfile()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    bases = [a.split()[0] for k, a in instructions if k == "FROM"]
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert image.startswith("python:3.11-slim"), image
    (user,) = [a for k, a in instructions if k == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert any(k == "RUN" and "pip install ." in a for k, a in instructions), "installs the package"


def test_dockerfile_serves_checks_health_and_sets_only_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    instructions = dockerfile()
    command = [a for k, a in instructions if k in ("ENTRYPOINT", "CMD")]
    assert "referral-gateway" in command[0] and "serve" in command[1]
    (health,) = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert "/healthz" in health
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in instructions if k == "ENV")))
    gateway_env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "PATH", "PIP"))}
    assert [k for k in gateway_env if not is_setting(k)] == []
    settings = settings_from(gateway_env, monkeypatch)
    exposed = {int(p) for k, a in instructions if k == "EXPOSE" for p in a.split()}
    assert exposed == {settings.api.port, settings.mllp.port}
    assert settings.api.host == "0.0.0.0"


def test_dockerfile_copies_what_exists_and_carries_the_schemas() -> None:
    root = DEPLOY.parent
    for kind, args in dockerfile():
        if kind == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            assert all((root / s).exists() for s in sources), args
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in dockerfile() if k == "ENV")))
    copied = [a.split() for k, a in dockerfile() if k == "COPY" and a.startswith("schemas")]
    assert copied and copied[0][-1] == env["SCHEMAS_DIR"]
