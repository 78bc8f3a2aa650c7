"""docker-compose.scale.yml: 2 webhook bot replicas on a Sentinel Redis, checked offline.

The file validates against the Compose spec; beyond the schema, the properties
docs/scaling.md promises: 2 bot replicas in webhook mode pointed at 3 sentinels with no
auto-start, a master and 2 replicas with min-replicas-to-write 1, sentinels with
down-after 1000 ms and a quorum of 2, secrets from files, nothing published on the host,
and every server's shell script parses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.scale.yml"


def _compose() -> dict[str, Any]:
    from ruamel.yaml import YAML  # comes with check-jsonschema

    data = YAML(typ="safe").load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _script(service: dict[str, Any]) -> str:
    command = service["command"]
    assert command[:2] == ["sh", "-c"]
    return str(command[2]).replace("$$", "$")


def test_scale_compose_matches_the_compose_spec() -> None:
    """docker-compose.scale.yml validates against the Compose spec schema (offline)."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_webhook_replicas_point_at_three_sentinels() -> None:
    """The bot: 2 replicas, webhook mode, REDIS_SENTINELS naming the 3 sentinel services,
    auto-start off, no REDIS_URL, passwords and the webhook secret as files."""
    compose = _compose()
    services = compose["services"]
    bot = services["vechnost-bot"]
    env = bot["environment"]
    assert bot["deploy"]["replicas"] == 2
    assert "container_name" not in bot
    assert env["BOT_MODE"] == "webhook"
    assert env["REDIS_AUTO_START"] == "false"
    assert "REDIS_URL" not in env
    sentinels = env["REDIS_SENTINELS"].split(",")
    assert sorted(entry.split(":")[0] for entry in sentinels) == sorted(
        name for name in services if name.startswith("redis-sentinel-")
    )
    assert all(entry.endswith(":26379") for entry in sentinels)
    assert env["REDIS_SENTINEL_MASTER"] == "vechnost"
    for variable in ("REDIS_PASSWORD_FILE", "REDIS_SENTINEL_PASSWORD_FILE", "WEBHOOK_SECRET_FILE"):
        secret = env[variable].removeprefix("/run/secrets/")
        assert secret in bot["secrets"]
        assert secret in compose["secrets"]
    assert "WEBHOOK_SECRET" not in env
    assert env["WEBHOOK_URL"].startswith("${WEBHOOK_URL:?")


def test_redis_servers_have_the_recommended_settings() -> None:
    """A master and 2 replicas of it, each with min-replicas-to-write 1, lag 2 s, AOF,
    its own volume and its service name announced; the password from the secret file."""
    services = _compose()["services"]
    servers = {name: s for name, s in services.items() if name.startswith("redis-") and
               not name.startswith("redis-sentinel-")}  # fmt: skip
    assert sorted(servers) == ["redis-master", "redis-replica-1", "redis-replica-2"]
    for name, server in servers.items():
        script = _script(server)
        assert "--min-replicas-to-write 1" in script
        assert "--min-replicas-max-lag 2" in script
        assert "--appendonly yes" in script
        assert "/run/secrets/redis_password" in script
        assert "exec docker-entrypoint.sh redis-server" in script
        assert server["environment"]["ANNOUNCE"] == name
        assert server["environment"].get("REPLICA_OF") == (
            None if name == "redis-master" else "redis-master"
        )
        assert any(volume.endswith(":/data") for volume in server["volumes"])


def test_sentinels_watch_the_master_with_down_after_1000() -> None:
    """3 sentinels, quorum 2, down-after 1000 ms, failover-timeout 10 s, the data
    servers' password, hostnames announced; their config lives in their volume."""
    services = _compose()["services"]
    sentinels = {name: s for name, s in services.items() if name.startswith("redis-sentinel-")}
    assert len(sentinels) == 3
    for name, sentinel in sentinels.items():
        script = _script(sentinel)
        assert "sentinel monitor vechnost redis-master 6379 2" in script
        assert "sentinel down-after-milliseconds vechnost 1000" in script
        assert "sentinel failover-timeout vechnost 10000" in script
        assert "sentinel auth-pass vechnost $password" in script
        assert "sentinel resolve-hostnames yes" in script
        assert "requirepass $password" in script
        assert sentinel["environment"]["ANNOUNCE"] == name
        assert "exec docker-entrypoint.sh redis-server /data/sentinel.conf --sentinel" in script


def test_nothing_is_published_and_logs_are_bounded() -> None:
    """No service publishes a port on the host (Telegram reaches the bots through the
    operator's proxy); every service has bounded logs and restarts."""
    for service in _compose()["services"].values():
        assert "ports" not in service
        assert service["logging"]["options"]["max-size"]
        assert service["restart"] == "unless-stopped"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")
def test_every_server_script_parses() -> None:
    """`sh -n` accepts each service's shell script (a quoting slip would fail here)."""
    for name, service in _compose()["services"].items():
        if "command" not in service:
            continue
        done = subprocess.run(
            ["sh", "-n", "-c", _script(service)],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        assert done.returncode == 0, (name, done.stderr)
