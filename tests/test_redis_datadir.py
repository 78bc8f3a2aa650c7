"""The data dir and its files, safely: real other users (setpriv, as root), real symlinks.

Never chmod a folder the bot did not create; refuse one owned by another user or
writable by group or others; write files through O_EXCL | O_NOFOLLOW temporaries;
an unwritable data dir or log degrades to memory mode and the console in every
command, with one clear line and no traceback.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from vechnost_bot.datadir import ensure_data_dir, write_private
from vechnost_bot.errors import RedisDataDirError
from vechnost_bot.redis import RedisAutoStartManager
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.manager import RedisManager

__all__ = ["data_dir"]

NOBODY = 65534
_SETPRIV = shutil.which("setpriv")
needs_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or _SETPRIV is None,
    reason="needs root and setpriv to act as another user",
)


def _as_nobody(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert _SETPRIV is not None
    return subprocess.run(
        [_SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@needs_root
async def test_data_dir_of_another_user_is_refused_untouched(data_dir: Path) -> None:
    """A data dir owned by another user (even 0700, which root could write) is refused with
    one line saying what to do; its mode is unchanged and no file is written into it."""
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, NOBODY, NOBODY)
    manager = RedisAutoStartManager(settings_for(data_dir))
    assert await manager.initialize() is False
    try:
        assert manager.state == "unavailable"
        reason = str(manager.status()["last_error"])
        assert f"uid {NOBODY}" in reason
        assert "REDIS_DATA_DIR" in reason
        assert "\n" not in reason
        assert list(data_dir.iterdir()) == []
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert redis_pids_in(data_dir) == []
    finally:
        await manager.cleanup()


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o770])
async def test_shared_or_group_writable_data_dir_is_refused_never_chmodded(
    data_dir: Path, mode: int
) -> None:
    """A shared 1777 folder, a 0777 one, a group-writable one: refused (others could plant
    or swap files), and never chmodded (that would lock the other users out)."""
    data_dir.mkdir()
    data_dir.chmod(mode)
    with pytest.raises(RedisDataDirError) as caught:
        ensure_data_dir(data_dir)
    assert "chmod go-w" in str(caught.value)
    with pytest.raises(RedisDataDirError):
        await RedisManager(settings_for(data_dir)).start()
    assert stat.S_IMODE(data_dir.stat().st_mode) == mode
    assert list(data_dir.iterdir()) == []


async def test_planted_config_symlink_is_replaced_not_followed(
    data_dir: Path, tmp_path: Path
) -> None:
    """A redis.conf symlink pointing at a file of the bot user's is replaced by the real
    config; the file it pointed at is untouched (writes never follow symlinks)."""
    data_dir.mkdir(mode=0o700)
    victim = tmp_path / "precious.txt"
    victim.write_text("mine\n")
    (data_dir / "redis.conf").symlink_to(victim)
    (data_dir / "redis.json").symlink_to(victim)
    async with RedisManager(settings_for(data_dir)):
        assert victim.read_text() == "mine\n"
        assert not (data_dir / "redis.conf").is_symlink()
        assert "requirepass" in (data_dir / "redis.conf").read_text()
        assert not (data_dir / "redis.json").is_symlink()


def test_write_private_creates_0600_and_replaces_atomically(tmp_path: Path) -> None:
    """New files are 0600; an existing one is replaced whole (no temporary left behind)."""
    target = tmp_path / "secret"
    write_private(target, "one\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_private(target, "two\n")
    assert target.read_text() == "two\n"
    assert [path.name for path in tmp_path.iterdir()] == ["secret"]


@needs_root
async def test_other_users_cannot_read_the_servers_files(data_dir: Path) -> None:
    """In a readable (0755) data dir of ours, another user reads none of the password, the
    config, the state, the pid file, the server's log, AOF or RDB (umask 077, 0600)."""
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    async with RedisManager(settings_for(data_dir)) as manager:
        assert manager.endpoint is not None
        admin = make_client(manager.endpoint)
        try:
            await admin.set("k", "v")
            await admin.save()
        finally:
            await admin.aclose()
        names = ["redis.password", "redis.conf", "redis.json", "redis.pid", "redis.log"]
        names.append("dump.rdb")
        names += [f"appendonlydir/{p.name}" for p in (data_dir / "appendonlydir").iterdir()]
        for name in names:
            result = _as_nobody("cat", str(data_dir / name))
            assert result.returncode != 0, name
            assert "Permission denied" in result.stderr, name


def _without_dac_override(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run as root without CAP_DAC_OVERRIDE: files of other users are as closed to it as
    to anyone (the venv's Python stays usable, unlike under another uid)."""
    assert _SETPRIV is not None
    return subprocess.run(
        [_SETPRIV, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _cli_env(tmp: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "LOG_", "HEALTH_"))}
    env.update(HOME=str(tmp), **settings)
    return env


@needs_root
def test_unwritable_data_dir_and_log_never_traceback_in_any_command(tmp_path: Path) -> None:
    """With REDIS_DATA_DIR and LOG_FILE in a folder of another user that this one cannot
    write (a container's /data): every command prints clear lines, never a traceback;
    doctor FAILs the data dir, `redis start` exits 1, the rest say what they can."""
    locked = tmp_path / "data"
    locked.mkdir(mode=0o755)
    os.chown(locked, NOBODY, NOBODY)
    env = _cli_env(
        tmp_path,
        REDIS_DATA_DIR=str(locked / "vechnost"),
        LOG_FILE=str(locked / "logs" / "vechnost.log"),
        REDIS_URL=settings_for(tmp_path).redis_url,
        HEALTH_PORT="1",
    )
    python = [sys.executable, "-m", "vechnost_bot"]
    outcomes: dict[str, int] = {}
    for command in (["doctor"], ["redis", "status"], ["redis", "start"], ["status"], ["logs"]):
        result = _without_dac_override(*python, *command, env=env)
        text = result.stdout + result.stderr
        assert "Traceback" not in text, (command, text)
        assert "log_file_unwritable" in text, (command, text)
        outcomes[" ".join(command)] = result.returncode
        if command == ["doctor"]:
            assert "FAIL  data dir" in result.stdout
        if command == ["redis", "start"]:
            assert "vechnost: Redis data dir" in result.stderr
    assert outcomes["redis start"] == 1
    assert outcomes["doctor"] == 1
    assert outcomes["status"] == 3
