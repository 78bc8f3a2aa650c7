"""RedisAutoStartManager.initialize(): external, adopt, start, fallback, shared servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from vechnost_bot.config import load_settings
from vechnost_bot.errors import ConfigError
from vechnost_bot.ops.snapshot import RedisSnapshot
from vechnost_bot.redis import RedisAutoStartManager, RedisEvent
from vechnost_bot.redis import discovery as discovery_module
from vechnost_bot.redis.manager import RedisManager
from vechnost_bot.redis.process import pid_alive

__all__ = ["data_dir"]

_SEED_EVENTS = [
    "initializing_redis_auto_start",
    "starting_redis_instance",
    "redis_startup_attempt",
    "redis_started_successfully",
]


def _write_read(manager: RedisAutoStartManager, key: str, value: str) -> bytes | None:
    endpoint = manager.endpoint
    assert endpoint is not None
    client = redis.Redis(
        host=endpoint.host, port=endpoint.port, password=endpoint.password, socket_timeout=2
    )
    client.set(key, value)
    result: bytes | None = client.get(key)
    client.close()
    return result


async def test_auto_start_logs_seed_events_in_order(data_dir: Path) -> None:
    """Nothing on REDIS_URL: the seed's events in order, then a usable auto-started server."""
    manager = RedisAutoStartManager(settings_for(data_dir))
    with capture_logs() as logs:
        assert await manager.initialize() is True
    try:
        names = [entry["event"] for entry in logs if entry["event"] in _SEED_EVENTS]
        assert names == _SEED_EVENTS
        attempt = next(entry for entry in logs if entry["event"] == "redis_startup_attempt")
        assert (attempt["attempt"], attempt["max_attempts"]) == (1, 3)
        assert manager.state == "running"
        assert manager.source == "auto-started"
        assert _write_read(manager, "k", "v") == b"v"
    finally:
        await manager.stop()
    assert manager.state == "stopped"


async def test_external_redis_is_used_and_nothing_started(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL answers PING with its credentials: source external, no server started."""
    external = redis_factory(password="ext-pass-1")
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=external.url))
    assert await manager.initialize() is True
    assert manager.source == "external"
    assert manager.endpoint is not None
    assert manager.endpoint.port == external.port
    assert redis_pids_in(data_dir) == []
    assert manager.status()["pid"] == external.pid
    await manager.stop()
    assert external.client().ping()


async def test_machine_redis_on_6379_is_used_read_only(data_dir: Path) -> None:
    """If this machine's own Redis answers on 6379, it is used as external (PING/INFO only)."""
    probe = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5)
    try:
        probe.ping()
    except redis.RedisError:
        pytest.skip("no Redis answers on 127.0.0.1:6379 without a password")
    finally:
        probe.close()
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url="redis://127.0.0.1:6379/0"))
    assert await manager.initialize() is True
    assert manager.source == "external"
    await manager.stop()
    assert redis_pids_in(data_dir) == []


async def test_wrong_password_for_external_server_falls_back_to_memory(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL carries a password the server rejects: clear message, memory mode, no rival."""
    external = redis_factory(password="right-pass")
    url = f"redis://:wrong-pass@127.0.0.1:{external.port}/0"
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=url))
    with capture_logs() as logs:
        assert await manager.initialize() is False
    assert manager.state == "unavailable"
    failed = next(entry for entry in logs if entry["event"] == "redis_connection_failed")
    assert "rejected the password in REDIS_URL" in failed["reason"]
    assert "wrong-pass" not in repr(logs)
    assert any(e["event"] == "redis_auto_start_failed_fallback_to_memory" for e in logs)
    assert redis_pids_in(data_dir) == []


async def test_foreign_server_without_our_credentials_is_left_alone(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """A password-protected Redis owns the REDIS_URL port: we auto-start on another port."""
    foreign = redis_factory(password="someone-else")
    manager = RedisAutoStartManager(
        settings_for(data_dir, redis_url=f"redis://127.0.0.1:{foreign.port}/0")
    )
    assert await manager.initialize() is True
    try:
        assert manager.source == "auto-started"
        assert manager.endpoint is not None
        assert manager.endpoint.port != foreign.port
        assert foreign.client().ping()
    finally:
        await manager.stop()
    assert foreign.client().ping()


async def test_auto_start_disabled_means_memory(data_dir: Path) -> None:
    """REDIS_AUTO_START=false and nothing on REDIS_URL: unavailable (memory), logged."""
    manager = RedisAutoStartManager(settings_for(data_dir, redis_auto_start=False))
    with capture_logs() as logs:
        assert await manager.initialize() is False
    assert manager.state == "unavailable"
    assert manager.endpoint is None
    fallback = next(e for e in logs if e["event"] == "redis_auto_start_failed_fallback_to_memory")
    assert "REDIS_AUTO_START is false" in fallback["reason"]
    assert redis_pids_in(data_dir) == []


async def test_binary_not_found_logs_seed_message(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No binary anywhere: redis_server_not_found with the seed's message, then memory."""
    monkeypatch.setattr(discovery_module, "candidates", lambda *_a, **_k: [])
    manager = RedisAutoStartManager(settings_for(data_dir))
    with capture_logs() as logs:
        assert await manager.initialize() is False
    found = next(e for e in logs if e["event"] == "redis_server_not_found")
    assert found["message"] == "Redis server binary not found. Please install Redis or use Docker."
    assert found["log_level"] == "error"
    assert logs[-1]["event"] == "redis_state_changed"
    assert manager.state == "unavailable"


@pytest.mark.parametrize("kind", ["bin-false", "text-file"])
async def test_redis_server_bin_not_redis_falls_back(data_dir: Path, kind: str) -> None:
    """REDIS_SERVER_BIN=/bin/false or a text file: clear error logged, memory fallback."""
    if kind == "bin-false":
        binary = Path("/bin/false")
    else:
        binary = data_dir.parent / "redis-server.txt"
        binary.write_text("not a program\n")
    manager = RedisAutoStartManager(settings_for(data_dir, redis_server_bin=binary))
    with capture_logs() as logs:
        assert await manager.initialize() is False
    failed = next(e for e in logs if e["event"] == "redis_auto_start_failed")
    assert "is not a usable Redis server" in failed["error"]
    assert manager.state == "unavailable"


async def test_unwritable_data_dir_falls_back(tmp_path: Path) -> None:
    """A data dir that cannot be created: the message names REDIS_DATA_DIR; memory mode."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    manager = RedisAutoStartManager(settings_for(blocker / "data"))
    with capture_logs() as logs:
        assert await manager.initialize() is False
    fallback = next(e for e in logs if e["event"] == "redis_auto_start_failed_fallback_to_memory")
    assert "REDIS_DATA_DIR" in fallback["reason"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:6379", "REDIS_URL"),
        ("redis://localhost:70000/0", "port"),
        ("redis://localhost:0x1/0", "port"),
        ("redis://:6379/0", "host"),
    ],
)
def test_malformed_redis_url_is_a_config_error(url: str, expected: str) -> None:
    """A malformed REDIS_URL or a port out of range: ConfigError naming REDIS_URL, exit code 2."""
    with pytest.raises(ConfigError) as caught:
        load_settings(redis_url=url)
    assert "REDIS_URL" in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


async def test_second_instance_adopts(data_dir: Path) -> None:
    """A second manager on the same data dir adopts the running server (one server)."""
    settings = settings_for(data_dir)
    first = RedisAutoStartManager(settings)
    second = RedisAutoStartManager(settings)
    assert await first.initialize()
    try:
        assert await second.initialize()
        assert second.source == "adopted"
        assert second.status()["pid"] == first.status()["pid"]
        assert len(redis_pids_in(data_dir)) == 1
        await second.stop()
        assert first.status()["pid"] is not None
        assert await first.manager.health_check()
    finally:
        await first.stop()


async def test_hung_server_in_data_dir_is_stopped_and_replaced_on_its_port(
    data_dir: Path,
) -> None:
    """At start, our SIGSTOPped server (two missed PINGs) is stopped, then replaced."""
    settings = settings_for(data_dir)
    owner = RedisManager(settings)
    await owner.start()
    old, port = owner.pid, owner.port
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    manager = RedisAutoStartManager(settings)
    try:
        with capture_logs() as logs:
            assert await manager.initialize() is True
        assert manager.source == "auto-started"
        assert not pid_alive(old)
        assert manager.endpoint is not None
        assert manager.endpoint.port == port
        assert redis_pids_in(data_dir) == [manager.status()["pid"]]
        replaced = next(e for e in logs if e["event"] == "redis_hung_server_replaced")
        assert replaced["pid"] == old
        assert replaced["how"] in {"sigterm", "sigkill"}
    finally:
        await manager.stop()
        await owner.detach()


async def test_data_survives_cleanup_and_new_start(data_dir: Path) -> None:
    """Write, cleanup (server shut down with SAVE), initialize again, read the value back."""
    settings = settings_for(data_dir)
    first = RedisAutoStartManager(settings)
    assert await first.initialize()
    _write_read(first, "deck:7", "card-12")
    await first.cleanup()
    assert redis_pids_in(data_dir) == []
    again = RedisAutoStartManager(settings)
    assert await again.initialize()
    try:
        assert again.source == "auto-started"
        endpoint = again.endpoint
        assert endpoint is not None
        client = redis.Redis(port=endpoint.port, password=endpoint.password, socket_timeout=2)
        assert client.get("deck:7") == b"card-12"
        client.close()
    finally:
        await again.stop()


def test_status_is_json_safe_and_masks_password(data_dir: Path) -> None:
    """status() serialises to JSON; the URL masks the password; the password is nowhere."""

    async def scenario() -> dict[str, object]:
        manager = RedisAutoStartManager(settings_for(data_dir))
        await manager.initialize()
        try:
            return manager.status()
        finally:
            await manager.stop()

    status = asyncio.run(scenario())
    text = json.dumps(status)
    password = (data_dir / "redis.password").read_text().strip()
    assert password not in text
    assert status["url"] == f"redis://:***@127.0.0.1:{status['port']}/0"
    assert set(status) == set(RedisSnapshot.__annotations__)


async def test_observers_sync_async_and_failing(data_dir: Path) -> None:
    """Observers (plain and async) see each change; one that raises is logged, not fatal."""
    seen: list[tuple[str, str]] = []
    seen_async: list[str] = []

    def plain(event: RedisEvent) -> None:
        seen.append((event.previous, event.state))

    async def coroutine(event: RedisEvent) -> None:
        seen_async.append(event.state)

    def broken(_event: RedisEvent) -> None:
        raise RuntimeError("observer bug")

    manager = RedisAutoStartManager(settings_for(data_dir))
    manager.subscribe(broken)
    manager.subscribe(plain)
    manager.subscribe(coroutine)
    with capture_logs() as logs:
        await manager.start()
        await manager.stop()
    assert seen == [("initializing", "running"), ("running", "stopped")]
    assert seen_async == ["running", "stopped"]
    assert sum(1 for e in logs if e["event"] == "redis_observer_failed") == 2


_RACER = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from vechnost_bot.config import Settings
    from vechnost_bot.redis import RedisAutoStartManager
    import redis.asyncio as aioredis

    async def main() -> None:
        settings = Settings(
            redis_url=sys.argv[1], redis_data_dir=Path(sys.argv[2]), redis_startup_timeout=10
        )
        manager = RedisAutoStartManager(settings)
        ok = await manager.initialize()
        endpoint = manager.endpoint
        client = aioredis.Redis(
            host=endpoint.host, port=endpoint.port, password=endpoint.password
        )
        await client.set(f"racer:{os.getpid()}", "ok")
        await client.aclose()
        status = manager.status()
        print(json.dumps({"ok": ok, "source": status["source"], "pid": status["pid"]}))

    asyncio.run(main())
    """
)


async def test_four_processes_race_to_one_server(data_dir: Path) -> None:
    """4 bot processes start at once: exactly one redis-server results, all 4 can write."""
    settings = settings_for(data_dir)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACER,
            settings.redis_url,
            str(data_dir),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), 60
    )
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert all(result["ok"] for result in results)
    assert sorted(result["source"] for result in results) == [
        "adopted",
        "adopted",
        "adopted",
        "auto-started",
    ]
    assert len({result["pid"] for result in results}) == 1
    pids = redis_pids_in(data_dir)
    assert pids == [results[0]["pid"]]
    manager = RedisAutoStartManager(settings)
    assert await manager.initialize()
    endpoint = manager.endpoint
    assert endpoint is not None
    client = redis.Redis(port=endpoint.port, password=endpoint.password, socket_timeout=2)
    keys = client.keys("racer:*")
    client.close()
    assert len(keys) == 4
    await manager.stop()
    assert not pid_alive(pids[0])


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import structlog
    from vechnost_bot.config import Settings
    from vechnost_bot.redis import RedisAutoStartManager

    async def main() -> None:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        settings = Settings(redis_url=sys.argv[1], redis_data_dir=Path(sys.argv[2]))
        manager = RedisAutoStartManager(settings)
        await manager.initialize()
        assert await manager.manager.health_check()
        print(manager.source, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await manager.cleanup()
        print("done", flush=True)

    asyncio.run(main())
    """
)


async def test_owner_stop_leaves_shared_server_for_other_clients(data_dir: Path) -> None:
    """The owner stops while another bot process still uses the server: it keeps running.

    When that last user stops, the server is shut down.
    """
    settings = settings_for(data_dir)
    owner = RedisAutoStartManager(settings)
    assert await owner.initialize()
    pid = owner.status()["pid"]
    assert isinstance(pid, int)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        settings.redis_url,
        str(data_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 20)
        assert line.decode().strip() == "adopted"
        with capture_logs() as logs:
            await owner.stop()
        assert any(e["event"] == "redis_left_running_for_other_clients" for e in logs)
        assert pid_alive(pid)
        holder.stdin.write(b"\n")
        await holder.stdin.drain()
        assert (await asyncio.wait_for(holder.stdout.readline(), 20)).strip() == b"done"
        await asyncio.wait_for(holder.wait(), 20)
        assert not pid_alive(pid)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
