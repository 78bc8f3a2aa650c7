"""RedisManager against real redis-server processes: start, files, adopt, stop, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from tests.support.redis_server import free_port
from vechnost_bot.errors import RedisBinaryInvalidError, RedisStartError
from vechnost_bot.redis import manager as manager_module
from vechnost_bot.redis import process as process_module
from vechnost_bot.redis import server as server_module
from vechnost_bot.redis.autostart import RedisAutoStartManager
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.manager import RedisDataDirError, RedisManager
from vechnost_bot.redis.process import build_config, pid_alive, spawn_arguments

__all__ = ["data_dir"]


def _client(manager: RedisManager) -> redis.Redis:
    endpoint = manager.endpoint
    assert endpoint is not None
    return redis.Redis(
        host=endpoint.host, port=endpoint.port, password=endpoint.password, socket_timeout=2
    )


async def test_start_writes_private_files_and_binds_loopback(data_dir: Path) -> None:
    """start(): data dir 0700, config and password 0600, loopback, AOF everysec, protected."""
    settings = settings_for(data_dir, redis_max_memory="64mb")
    manager = RedisManager(settings)
    with capture_logs() as logs:
        await manager.start()
    try:
        assert manager.owned
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for name in ("redis.conf", "redis.password", "redis.json"):
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
        client = _client(manager)
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("protected-mode")["protected-mode"] == "yes"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
        assert Path(client.config_get("dir")["dir"]) == data_dir
        assert (data_dir / "redis.pid").read_text().strip() == str(manager.pid)
        password = (data_dir / "redis.password").read_text().strip()
        assert password not in repr(logs)
        with pytest.raises(redis.AuthenticationError):
            # No retries: redis-py retries an AuthenticationError (a ConnectionError) for ~4 s.
            redis.Redis(port=manager.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)).set(
                "k", "v"
            )
    finally:
        await manager.stop()


async def test_data_survives_stop_and_start(data_dir: Path) -> None:
    """Write, stop (SHUTDOWN SAVE), start again in the same data dir, read it back."""
    settings = settings_for(data_dir)
    first = RedisManager(settings)
    await first.start()
    _client(first).set("player:1", "level-3")
    await first.stop()
    assert not (data_dir / "redis.pid").exists()
    assert (data_dir / "appendonlydir").is_dir()
    second = RedisManager(settings)
    await second.start()
    try:
        assert _client(second).get("player:1") == b"level-3"
    finally:
        await second.stop()


async def test_stop_is_safe_twice_and_keeps_data(data_dir: Path) -> None:
    """stop() twice is fine; the server is gone; the data files stay."""
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    pid = manager.pid
    assert pid is not None
    with capture_logs() as logs:
        await manager.stop()
        await manager.stop()
    assert not pid_alive(pid)
    stopped = [entry for entry in logs if entry["event"] == "redis_server_stopped"]
    assert len(stopped) == 1
    assert stopped[0]["how"] == "shutdown-save"
    assert (data_dir / "dump.rdb").exists()
    assert (data_dir / "redis.password").exists()


async def test_context_manager_starts_and_stops(data_dir: Path) -> None:
    """async with RedisManager: started inside, stopped after."""
    async with RedisManager(settings_for(data_dir)) as manager:
        pid = manager.pid
        assert pid is not None
        assert await manager.health_check()
    assert not pid_alive(pid)


async def test_seed_api_start_redis_and_cleanup(data_dir: Path) -> None:
    """The seed's names: start_redis() -> True, health_check() -> True, cleanup() stops it."""
    manager = RedisManager(settings_for(data_dir))
    assert await manager.start_redis() is True
    assert await manager.health_check() is True
    pid = manager.pid
    assert pid is not None
    await manager.cleanup()
    assert not pid_alive(pid)
    assert await manager.health_check() is False


async def test_second_manager_adopts_and_leaves_it_running(data_dir: Path) -> None:
    """A second manager adopts the running server (same pid) and cleanup() leaves it."""
    settings = settings_for(data_dir)
    owner = RedisManager(settings)
    await owner.start()
    try:
        adopter = RedisManager(settings)
        assert await adopter.adopt() is True
        assert adopter.pid == owner.pid
        assert adopter.port == owner.port
        assert not adopter.owned
        await adopter.cleanup()
        assert owner.pid is not None
        assert pid_alive(owner.pid)
        assert await owner.health_check()
    finally:
        await owner.stop()


async def test_port_owned_by_foreign_server_is_left_alone(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """The REDIS_URL port is taken by another Redis: we use a free port and never touch it."""
    foreign = redis_factory(password="not-ours")
    manager = RedisManager(settings_for(data_dir, port=foreign.port))
    await manager.start()
    try:
        assert manager.port != foreign.port
        assert foreign.client().ping()
        assert foreign.process is not None
        assert foreign.process.poll() is None
    finally:
        await manager.stop()
    assert foreign.client().ping()


async def test_address_in_use_is_reported_and_next_attempt_uses_free_port(
    data_dir: Path, redis_factory: RedisFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port taken between check and spawn: the reason comes from redis' own log, then a retry."""
    foreign = redis_factory(password="not-ours")
    checks = iter([True])
    monkeypatch.setattr(manager_module, "is_port_free", lambda *_a, **_k: next(checks, False))
    manager = RedisManager(settings_for(data_dir, port=foreign.port))
    with capture_logs() as logs:
        await manager.start()
    try:
        failed = [entry for entry in logs if entry["event"] == "redis_startup_attempt_failed"]
        assert len(failed) == 1
        assert "Address already in use" in failed[0]["reason"]
        attempts = [entry for entry in logs if entry["event"] == "redis_startup_attempt"]
        assert [entry["attempt"] for entry in attempts] == [1, 2]
        assert manager.port != foreign.port
    finally:
        await manager.stop()


async def test_bad_config_line_is_reported_from_redis_output(data_dir: Path) -> None:
    """A bad config value makes redis-server exit early; the reason is its own message.

    (Settings refuse REDIS_MAX_MEMORY=lots up front; a value redis-server alone rejects
    is written into the config here, past that check.)"""
    settings = settings_for(data_dir, redis_max_startup_attempts=2).model_copy(
        update={"redis_max_memory": "lots"}
    )
    manager = RedisManager(settings)
    with capture_logs() as logs, pytest.raises(RedisStartError) as caught:
        await manager.start()
    assert "maxmemory lots" in str(caught.value)
    assert "argument must be a memory value" in str(caught.value)
    attempts = [entry for entry in logs if entry["event"] == "redis_startup_attempt"]
    assert attempts == [
        {"event": "redis_startup_attempt", "attempt": 1, "max_attempts": 2, "log_level": "info"},
        {"event": "redis_startup_attempt", "attempt": 2, "max_attempts": 2, "log_level": "info"},
    ]
    assert await RedisManager(settings).start_redis() is False
    assert redis_pids_in(data_dir) == []


async def test_stale_pid_file_of_other_program_is_not_adopted_or_killed(data_dir: Path) -> None:
    """redis.pid names a live `sleep` process: it is neither adopted nor signalled."""
    settings = settings_for(data_dir)
    first = RedisManager(settings)
    await first.start()
    await first.stop()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (data_dir / "redis.pid").write_text(f"{sleeper.pid}\n")
        manager = RedisManager(settings)
        with capture_logs() as logs:
            assert await manager.adopt() is False
        assert any(
            entry["event"] == "redis_stale_pid_file" and "another program" in entry["reason"]
            for entry in logs
        )
        await manager.start()
        try:
            assert manager.pid != sleeper.pid
            assert sleeper.poll() is None
        finally:
            await manager.stop()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_stale_pid_file_of_dead_process_is_removed(data_dir: Path) -> None:
    """redis.pid names a process that no longer exists: removed, nothing adopted."""
    settings = settings_for(data_dir)
    first = RedisManager(settings)
    await first.start()
    await first.stop()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (data_dir / "redis.pid").write_text(f"{gone.pid}\n")
    assert await RedisManager(settings).adopt() is False
    assert not (data_dir / "redis.pid").exists()


async def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    """A data dir under a regular file cannot be created: RedisDataDirError says what to do."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    manager = RedisManager(settings_for(blocker / "sub"))
    with pytest.raises(RedisDataDirError) as caught:
        await manager.start()
    assert "REDIS_DATA_DIR" in str(caught.value)
    assert await manager.start_redis() is False


async def test_existing_data_dir_is_never_chmodded(data_dir: Path) -> None:
    """An existing data dir of ours with 0755 is used as it is: the bot did not create it,
    so it never changes its mode; the files in it are private (0600, server umask 077)."""
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755
        for name in ("redis.conf", "redis.password", "redis.json", "redis.log", "redis.pid"):
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    finally:
        await manager.stop()


async def test_hung_server_is_killed_by_kill(data_dir: Path) -> None:
    """kill() SIGKILLs even a SIGSTOPped server (restart of a hang)."""
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    pid = manager.pid
    assert pid is not None
    os.kill(pid, 19)  # SIGSTOP
    await asyncio.wait_for(manager.kill(), 10)
    assert not pid_alive(pid)
    await manager.start()
    try:
        assert manager.pid != pid
        assert await manager.health_check()
    finally:
        await manager.stop()


def test_config_text_per_platform(tmp_path: Path) -> None:
    """POSIX config daemonizes; Windows does not; the password is quoted; paths are quoted."""
    posix = build_config(
        data_dir=tmp_path / "my data",
        port=7000,
        password='p"w',
        max_memory=None,
        platform="linux",
    )
    assert "bind 127.0.0.1\n" in posix
    assert "daemonize yes" in posix
    assert 'requirepass "p\\"w"' in posix
    assert f'dir "{tmp_path / "my data"}"' in posix
    assert "maxmemory" not in posix
    windows = build_config(
        data_dir=Path("C:/data"), port=7000, password="pw", max_memory="1gb", platform="win32"
    )
    assert "daemonize" not in windows
    assert "maxmemory 1gb" in windows


def test_spawn_arguments_per_platform(tmp_path: Path) -> None:
    """POSIX spawns in a new session; Windows in a new process group, detached."""
    argv, extra = spawn_arguments("linux", "/usr/bin/redis-server", tmp_path / "redis.conf")
    assert argv == ["/usr/bin/redis-server", str(tmp_path / "redis.conf")]
    assert extra == {"start_new_session": True}
    argv, extra = spawn_arguments("win32", r"C:\Redis\redis-server.exe", Path("redis.conf"))
    assert argv[0] == r"C:\Redis\redis-server.exe"
    assert extra == {"creationflags": 0x00000200 | 0x00000008}


def test_free_port_helper_matches_bind_check() -> None:
    """is_port_free says False for a listening port and True for a free one."""
    port = free_port()
    assert process_module.is_port_free(port)


async def test_adopts_through_symlinked_data_dir(data_dir: Path, tmp_path: Path) -> None:
    """A data dir reached through a symlink or `..` is the same folder: adopted, not doubled."""
    data_dir.mkdir()
    link = tmp_path / "link"
    link.symlink_to(data_dir)
    owner = RedisManager(settings_for(link))
    await owner.start()
    try:
        assert owner.data_dir == data_dir
        assert Path(_client(owner).config_get("dir")["dir"]) == data_dir
        for spelling in (link, data_dir, tmp_path / "elsewhere" / ".." / "link"):
            adopter = RedisManager(settings_for(spelling))
            assert await adopter.adopt() is True, spelling
            assert adopter.pid == owner.pid
            await adopter.detach()
        assert redis_pids_in(data_dir) == [owner.pid]
    finally:
        await owner.stop()


async def test_adopt_waits_for_a_second_missed_ping(data_dir: Path) -> None:
    """A server that misses one PING (paused for 0.8 s; timeout 0.5 s) is adopted, not killed."""
    settings = settings_for(data_dir)
    owner = RedisManager(settings)
    await owner.start()
    pid = owner.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(0.8, os.kill, pid, signal.SIGCONT)
        adopter = RedisManager(settings)
        with capture_logs() as logs:
            assert await adopter.adopt() is True
        assert [e["miss"] for e in logs if e["event"] == "redis_adopt_ping_failed"] == [1]
        assert adopter.pid == pid
        await adopter.detach()
    finally:
        os.kill(pid, signal.SIGCONT)
        await owner.stop()


async def test_hung_server_is_reported_by_adopt_and_stopped_by_sigterm(data_dir: Path) -> None:
    """SIGSTOPped: adopt() leaves it alive and reports it; stop_unresponsive() ends it."""
    settings = settings_for(data_dir)
    owner = RedisManager(settings)
    await owner.start()
    pid, port = owner.pid, owner.port
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    manager = RedisManager(settings)
    with capture_logs() as logs:
        assert await manager.adopt() is False
    assert [e["miss"] for e in logs if e["event"] == "redis_adopt_ping_failed"] == [1, 2]
    assert pid_alive(pid)  # two missed PINGs are reported, nothing is killed
    hung = manager.unresponsive
    assert hung is not None
    assert (hung.pid, hung.port) == (pid, port)
    stopped = await asyncio.wait_for(manager.stop_unresponsive(), 15)
    assert stopped is not None
    assert stopped.how in {"sigterm", "sigkill"}
    assert stopped.answered is False
    assert not pid_alive(pid)
    assert not (data_dir / "redis.pid").exists()
    await manager.start()  # its replacement takes the same port
    try:
        assert manager.port == port
        assert redis_pids_in(data_dir) == [manager.pid]
    finally:
        await manager.stop()
    await owner.detach()


async def test_stop_of_sigstopped_server_falls_back_to_sigterm(data_dir: Path) -> None:
    """stop() of an owned server that does not answer: SIGCONT + SIGTERM, no SHUTDOWN wait."""
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    pid = manager.pid
    assert pid is not None
    _client(manager).set("kept", "yes")
    os.kill(pid, signal.SIGSTOP)
    started = asyncio.get_running_loop().time()
    stopped = await manager.stop()
    assert stopped is not None
    assert (stopped.how, stopped.answered) == ("sigterm", False)
    assert asyncio.get_running_loop().time() - started < 5
    assert not pid_alive(pid)
    # SIGTERM lets Redis save: the data is there on the next start.
    await manager.start()
    try:
        assert _client(manager).get("kept") == b"yes"
    finally:
        await manager.stop()


async def test_stop_falls_back_to_sigkill_when_sigterm_does_not_end_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server stuck in a Lua loop defers SIGTERM: SIGKILL after the bounded wait."""
    monkeypatch.setattr(server_module, "_TERM_WAIT", 0.5)
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    pid = manager.pid
    assert pid is not None
    endpoint = manager.endpoint
    assert endpoint is not None
    busy = make_client(endpoint, timeout=30)
    script = asyncio.create_task(busy.eval("while true do end", 0))
    try:
        await asyncio.sleep(0.2)
        stopped = await asyncio.wait_for(manager.stop(), 15)
        assert stopped is not None
        assert (stopped.how, stopped.answered) == ("sigkill", False)
        assert not pid_alive(pid)
    finally:
        with contextlib.suppress(redis.RedisError):
            await script
        await busy.aclose()


async def test_configured_binary_is_checked_before_files_are_written(data_dir: Path) -> None:
    """REDIS_SERVER_BIN=/bin/false fails before redis.conf or redis.password exist."""
    manager = RedisManager(settings_for(data_dir, redis_server_bin=Path("/bin/false")))
    with pytest.raises(RedisBinaryInvalidError):
        await manager.start()
    assert not (data_dir / "redis.conf").exists()
    assert not (data_dir / "redis.password").exists()


async def test_own_server_refusing_the_stored_password_is_not_doubled(data_dir: Path) -> None:
    """Our data dir's server whose password was changed is neither adopted nor joined by a
    second server in the same folder: adopt fails saying what to do, the bot goes to memory."""
    settings = settings_for(data_dir)
    owner = RedisManager(settings)
    await owner.start()
    try:
        endpoint = owner.endpoint
        assert endpoint is not None
        admin = make_client(endpoint)
        try:
            await admin.config_set("requirepass", "changed-by-someone")
        finally:
            await admin.aclose()
        with pytest.raises(RedisStartError) as caught:
            await RedisManager(settings).adopt()
        assert f"kill {owner.pid}" in str(caught.value)
        bot = RedisAutoStartManager(settings)
        assert await bot.initialize() is False
        assert bot.state == "unavailable"
        await bot.cleanup()
        assert redis_pids_in(data_dir) == [owner.pid]
    finally:
        assert owner.pid is not None
        os.kill(owner.pid, signal.SIGTERM)
