"""What the Redis lifecycle says in Sentinel mode, on a real topology.

A Sentinel endpoint has no host or port of its own (the master is whichever server the
sentinels name), so the lifecycle's log lines once showed ``port=0``, and the warning
about a Redis without a password told the operator to put it in REDIS_URL, which
Sentinel mode refuses to name a server in. Now they name the master the sentinels name
(``host:port``) and the settings the passwords go in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.sentinel import MASTER_NAME, SentinelTopology
from vechnost_bot.config import RedisEndpoint, SentinelTarget, Settings
from vechnost_bot.redis.autostart import RedisAutoStartManager, passwordless_warning

SENTINELS = (("10.0.0.1", 26379), ("10.0.0.2", 26379))


@pytest.mark.slow
async def test_lifecycle_logs_name_the_master_the_sentinels_name(tmp_path: Path) -> None:
    """redis_connected and redis_state_changed carry ``master=127.0.0.1:<port>`` (the
    topology's master), never ``port=0``; the no-password warning in the log and in
    status names REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD, not REDIS_URL."""
    with SentinelTopology(tmp_path / "topo", replicas=1, sentinels=1) as topo:
        settings = Settings(  # type: ignore[call-arg]
            redis_sentinels=",".join(f"{h}:{p}" for h, p in topo.sentinel_addresses),
            redis_sentinel_master=MASTER_NAME,
            redis_data_dir=tmp_path / "data",
        )
        lifecycle = RedisAutoStartManager(settings)
        with capture_logs() as logs:
            await lifecycle.start()
            await lifecycle.stop()
        master = f"127.0.0.1:{topo.master_port()}"
    connected = [e for e in logs if e["event"] == "redis_connected"]
    running = [e for e in logs if e["event"] == "redis_state_changed" and e["state"] == "running"]
    assert [e.get("master") for e in connected] == [master], connected
    assert [e.get("master") for e in running] == [master], running
    assert all("port" not in e for e in connected + running)
    [warning] = [e for e in logs if e["event"] == "redis_without_password"]
    assert "REDIS_URL" not in warning["fix"]
    assert "REDIS_PASSWORD" in warning["fix"]
    assert "REDIS_SENTINEL_PASSWORD" in warning["fix"]


def test_passwordless_warning_names_the_settings_of_each_mode() -> None:
    """REDIS_URL for one server; REDIS_PASSWORD(_FILE) with Sentinel, plus
    REDIS_SENTINEL_PASSWORD only while the sentinels have none; the fix stays the part
    after the first "; " (doctor shows it alone)."""
    plain = passwordless_warning(RedisEndpoint(host="10.0.0.9", port=6380))
    assert "10.0.0.9:6380" in plain
    assert "REDIS_URL" in plain
    bare = passwordless_warning(RedisEndpoint(sentinel=SentinelTarget(SENTINELS, "main")))
    guarded = passwordless_warning(
        RedisEndpoint(sentinel=SentinelTarget(SENTINELS, "main", password="s-pass"))
    )
    for text in (bare, guarded):
        assert "main@10.0.0.1:26379,10.0.0.2:26379" in text
        assert "REDIS_URL" not in text
        assert "REDIS_PASSWORD (or REDIS_PASSWORD_FILE)" in text.split("; ", 1)[1]
    assert "REDIS_SENTINEL_PASSWORD" in bare
    assert "REDIS_SENTINEL_PASSWORD" not in guarded
