"""The Kubernetes manifests in deploy/k8s/, validated offline against the API schemas.

kubernetes-validate ships the schemas, so no cluster is needed. Beyond the schema, the
properties docs/scaling.md promises are checked: two replicas, ``maxUnavailable: 0``,
probes on /healthz and /readyz, secrets by reference, a Sentinel Redis, and a Service
and a PodDisruptionBudget that select the Deployment's pods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vechnost_bot.config import Settings, load_settings

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
# The oldest release whose schema has preStop.sleep (1.30) and the newest shipped.
VERSIONS = ["1.30.0", "1.37.0"]


def documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    """Each document passes kubernetes-validate's strict schema (unknown fields fail)."""
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_a_typo_is_caught() -> None:
    """The validation can fail: a misspelt field in the Deployment is rejected."""
    deployment = documents()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_deployment_keeps_a_replica_and_probes_the_right_paths() -> None:
    """2 replicas, never fewer ready during a rollout, liveness on /healthz (never Redis),
    readiness on /readyz, both on the health port."""
    deployment = documents()["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = spec["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item for item in container["env"]}
    assert ports == {"webhook": int(env["WEBHOOK_PORT"]["value"]), "health": 8080}
    assert int(env["HEALTH_PORT"]["value"]) == ports["health"]


def test_secrets_are_references_and_redis_is_sentinel() -> None:
    """The token, webhook secret and Redis password come from a Secret, never inline;
    the bot does not auto-start Redis and points at Sentinel."""
    container = documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "WEBHOOK_SECRET",
        "REDIS_PASSWORD",
        "REDIS_SENTINEL_PASSWORD",
    ):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "vechnost"
    assert env["BOT_MODE"]["value"] == "webhook"
    assert env["REDIS_AUTO_START"]["value"] == "false"
    assert "REDIS_URL" not in env
    sentinels = env["REDIS_SENTINELS"]["value"].split(",")
    assert len(sentinels) == 3
    assert all(entry.rsplit(":", 1)[1] == "26379" for entry in sentinels)
    assert env["REDIS_SENTINEL_MASTER"]["value"]


def test_the_deployments_redis_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's plain REDIS_* values pass the bot's own settings rules (Sentinel
    with auto-start off and no REDIS_URL) and name the sentinels as a typed target."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    container = documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    values = {
        item["name"].lower(): item["value"]
        for item in container["env"]
        if item["name"].startswith("REDIS_") and "value" in item
    }
    settings = load_settings(**values, redis_password="secret", redis_sentinel_password="s3cret")
    target = settings.redis_target
    assert target.sentinel is not None
    assert len(target.sentinel.addresses) == 3
    assert target.sentinel.master == values["redis_sentinel_master"]
    assert settings.redis_auto_start is False


def test_service_and_budget_select_the_deployment_pods() -> None:
    """The Service and the PodDisruptionBudget select exactly the pods' labels, and the
    budget keeps one replica through a voluntary disruption."""
    found = documents()
    labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert found["Deployment"]["spec"]["selector"]["matchLabels"] == labels
    assert found["Service"]["spec"]["selector"] == labels
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    targets = {port["targetPort"] for port in found["Service"]["spec"]["ports"]}
    assert targets == {"webhook", "health"}
