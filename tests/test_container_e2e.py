"""The image and docker-compose.yml for real, on a private Docker engine.

Built from the repository's Dockerfile, run with ``docker compose`` in both profiles,
played through the fake Bot API inside the engine's network namespace, Redis
SIGKILLed, then ``docker compose down``. See tests/support/container.py for how the
engine runs without Docker Hub or anything installed; it needs root, namespaces and
cgroups, and the test is skipped (one line why) where they are missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ruamel.yaml import YAML

from tests.support import container
from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi

ROOT = Path(__file__).resolve().parents[1]
API_PORT = 18081
HEALTH_PORT = 18080
CHAT = 4711
# Characters that broke the URL before: / # @ : and a $ Compose must not expand.
REDIS_PASSWORD = "p@ss/w#rd:$x%"

_reason = container.unavailable_reason()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(_reason is not None, reason=f"container engine: {_reason}"),
]

# The official redis image's entrypoint, as far as this test relies on it: redis-server
# started as root drops to the redis user.
_REDIS_ENTRYPOINT = """#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \\! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
exec "$@"
"""
_REDIS_DOCKERFILE = f"""FROM {container.BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/
WORKDIR /data
VOLUME /data
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
"""


def _compose_file() -> dict[str, Any]:
    data = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[container.Engine]:
    """The private engine with the bot image built from this checkout and a Redis
    stand-in under the compose file's tag, both loaded into the runner."""
    started = time.monotonic()
    with container.prepare() as engine:
        build_started = time.monotonic()
        engine.build(
            ROOT, "vechnost-bot:latest", "--build-arg", f"PYTHON_IMAGE={container.BASE_IMAGE}"
        )
        redis_image = _compose_file()["services"]["redis"]["image"]
        context = tmp_path_factory.mktemp("redis-image")
        (context / "Dockerfile").write_text(_REDIS_DOCKERFILE)
        entrypoint = context / "docker-entrypoint.sh"
        entrypoint.write_text(_REDIS_ENTRYPOINT)
        entrypoint.chmod(0o755)
        engine.build(context, redis_image)
        engine.builder.docker("image", "prune", "-f")
        engine.timings["build"] = time.monotonic() - build_started
        load_started = time.monotonic()
        engine.transfer("vechnost-bot:latest", redis_image)
        engine.timings["load"] = time.monotonic() - load_started
        engine.timings["setup_total"] = time.monotonic() - started
        yield engine
        engine.timings["total"] = time.monotonic() - started
        report = container.CACHE_DIR / "last-run.json"
        report.write_text(json.dumps({k: round(v, 1) for k, v in engine.timings.items()}))


def _project(tmp_path: Path, **settings: str) -> Path:
    """A compose project dir: the repository's compose file, a .env, and an override that
    lets the bots reach the fake Bot API in the engine's namespace."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    env = {
        "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
        "TELEGRAM_API_BASE_URL": f"http://fakeapi:{API_PORT}/bot",
        "TELEGRAM_FILE_BASE_URL": f"http://fakeapi:{API_PORT}/file/bot",
        "REDIS_HEALTH_CHECK_INTERVAL": "0.5",
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "HEALTH_PORT": str(HEALTH_PORT),
        "RATE_LIMIT_UPDATES": "1000",
        "LOG_FORMAT": "json",
        **settings,
    }
    # Single quotes: Compose takes the value literally ($ included).
    lines = [f"{key}='{value}'" if value else f"{key}=" for key, value in env.items()]
    (project / ".env").write_text("\n".join(lines) + "\n")
    hosts = {"extra_hosts": ["fakeapi:host-gateway"]}
    override = {"services": {"vechnost-bot": hosts, "vechnost-bot-external": hosts}}
    (project / "docker-compose.override.yml").write_text(json.dumps(override))
    return project


def _down(engine: container.Engine, project: Path) -> None:
    engine.compose(
        "--profile", "auto", "--profile", "redis-external", "down", "--timeout", "20",
        project=project,
    )  # fmt: skip


class Player:
    """One chat playing through the fake Bot API."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.digests: list[str] = []

    async def step(self, action: str, value: str) -> ApiCall:
        since = len(self.api.calls)
        if action == "say":
            await self.api.send_message(CHAT, value, language="en")
        else:
            await self.api.press(CHAT, value, language="en")
        return await self.api.wait_reply(CHAT, since=since, timeout=30)

    async def begin(self) -> None:
        reply = await self.step("say", "/start")
        assert "Acquaintance" in str(FakeBotApi.buttons(reply))
        await self.step("tap", "T:a")
        reply = await self.step("tap", "V:a:1")
        assert "0/" in reply.params["text"]

    async def draw(self) -> None:
        reply = await self.step("tap", "N:a:1:q")
        assert reply.method == "sendPhoto"
        match = re.search(r"(\d+)/(\d+)", reply.params.get("caption", ""))
        assert match, reply.params
        assert int(match.group(1)) == len(self.digests) + 1, "a card was lost or repeated"
        await asyncio.sleep(0.05)
        digest = self.api.photo_digest(reply)
        assert digest is not None
        self.digests.append(digest)
        assert len(set(self.digests)) == len(self.digests)


async def _status(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"http://127.0.0.1:{HEALTH_PORT}/status") as response:
        data: dict[str, Any] = await response.json()
        return data


async def _wait_status(
    http: aiohttp.ClientSession, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = await _status(http)
            if predicate(last):
                return last
        except (aiohttp.ClientError, ValueError, OSError):
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"status never matched within {timeout}s: {last}")


def _play(
    engine: container.Engine,
    scenario: Callable[[FakeBotApi, aiohttp.ClientSession], Awaitable[None]],
) -> None:
    """Run ``scenario`` with the fake Bot API and an HTTP client inside the runner's
    network namespace (where the containers and their published ports are)."""

    async def main() -> None:
        async with (
            FakeBotApi(host="0.0.0.0", port=API_PORT) as api,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        ):
            await scenario(api, http)

    container.in_netns(engine.runner.pid, lambda: asyncio.run(main()))


def _play_or_show_logs(
    engine: container.Engine,
    project: Path,
    scenario: Callable[[FakeBotApi, aiohttp.ClientSession], Awaitable[None]],
) -> None:
    """:func:`_play`; when it fails, the containers' last log lines say why."""
    try:
        _play(engine, scenario)
    except AssertionError as error:
        logs = engine.compose(
            "--profile", "auto", "--profile", "redis-external", "logs", "--tail", "30",
            project=project,
        )  # fmt: skip
        raise AssertionError(f"{error}\n--- docker compose logs ---\n{logs}") from None


def _container(engine: container.Engine, service: str, project: Path) -> dict[str, Any]:
    ids = engine.compose("ps", "-q", service, project=project).split()
    assert len(ids) == 1, f"{service}: {ids}"
    return container.inspect(engine.runner, ids[0])


def _healthcheck(engine: container.Engine, bot: dict[str, Any]) -> int:
    """Run the image's HEALTHCHECK command in the bot's container; its exit code."""
    test = bot["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    done = engine.runner.docker("exec", bot["Id"], *test[1:], check=False)
    return done.returncode


def _restarted(engine: container.Engine, project: Path) -> bool:
    """Docker restarted the killed Redis container and it runs again."""
    redis = _container(engine, "redis", project)
    return bool(redis["RestartCount"] >= 1 and redis["State"]["Running"])


def _zombies(init_pid: int) -> list[tuple[int, str, str, int]]:
    return [proc for proc in container.container_processes(init_pid) if proc[1] == "Z"]


def _volume_files(engine: container.Engine, volume: str) -> dict[str, bytes]:
    """Every file in a named volume (read from the runner's data root on the host)."""
    mountpoint = Path(
        engine.runner.docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    )
    return {
        str(path.relative_to(mountpoint)): path.read_bytes()
        for path in mountpoint.rglob("*")
        if path.is_file()
    }


def _holds_the_game(files: dict[str, bytes]) -> bool:
    """The Redis data (AOF) in a volume names the player's session."""
    return any(
        name.startswith("appendonlydir") and str(CHAT).encode() in data
        for name, data in files.items()
    )


def test_auto_profile_survives_a_redis_kill(engine: container.Engine, tmp_path: Path) -> None:
    """`docker compose up -d vechnost-bot`: the bot auto-starts Redis inside its container,
    a player draws cards, Redis is SIGKILLed and restarted with nothing lost or repeated,
    no zombie is left (tini reaps), and after `down` the volume still holds the game."""
    project = _project(tmp_path)
    started = time.monotonic()
    engine.compose("up", "-d", "--no-build", "vechnost-bot", project=project)
    try:
        bot = _container(engine, "vechnost-bot", project)
        init_pid = int(bot["State"]["Pid"])

        async def scenario(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
            first = await _wait_status(
                http, lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "redis", 90
            )
            engine.timings["auto_ready"] = time.monotonic() - started
            assert first["redis"]["source"] == "auto-started"
            player = Player(api)
            await player.begin()
            for _ in range(3):
                await player.draw()
            for kill in range(2):
                redis = [
                    proc
                    for proc in container.container_processes(init_pid)
                    if "redis" in proc[2] and proc[1] != "Z"
                ]
                assert len(redis) == 1, redis
                os.kill(redis[0][0], signal.SIGKILL)
                await player.draw()  # served whether or not Redis is back yet
                await _wait_status(
                    http,
                    lambda s, k=kill: (
                        s["storage"]["mode"] == "redis"
                        and s["redis"]["restarts"] >= k + 1
                        # whatever went to the local store meanwhile is back in Redis
                        and s["storage"]["failbacks"] == s["storage"]["failovers"]
                        and s["storage"]["journal_size"] == 0
                    ),
                    60,
                )
                await player.draw()
            await asyncio.sleep(1)
            # Without an init as PID 1 each kill leaves one (the bot never reaps them).
            assert _zombies(init_pid) == [], "a killed redis-server was never reaped"
            assert all(proc[3] != 0 for proc in container.container_processes(init_pid))

        _play_or_show_logs(engine, project, scenario)
        bot = _container(engine, "vechnost-bot", project)
        assert bot["RestartCount"] == 0
        assert bot["HostConfig"]["LogConfig"]["Config"]["max-size"] == "10m"
        # The image's HEALTHCHECK follows HEALTH_PORT (not 8080 here).
        assert _healthcheck(engine, bot) == 0
        assert bot["Config"]["User"] not in ("", "0", "root")
    finally:
        _down(engine, project)
    assert engine.runner.docker("ps", "-aq").stdout.strip() == ""
    assert _holds_the_game(_volume_files(engine, "vechnost_vechnost-data"))


def test_external_profile_survives_a_redis_container_kill(
    engine: container.Engine, tmp_path: Path
) -> None:
    """`--profile redis-external up -d`: Redis (not published on the host, running as its
    own user) and a bot using it through a password with URL-breaking characters; Redis
    SIGKILLed, restarted by Docker, the bot fails over to memory and reconciles back."""
    project = _project(tmp_path)
    engine.compose("--profile", "redis-external", "up", "-d", "--no-build", project=project)
    try:
        redis = _container(engine, "redis", project)
        assert redis["HostConfig"]["PortBindings"] in ({}, None), "6379 must not be published"
        redis_pid = int(redis["State"]["Pid"])
        uid = next(p[3] for p in container.container_processes(redis_pid) if p[0] == redis_pid)
        assert uid != 0, "redis-server runs as root"
        assert REDIS_PASSWORD not in json.dumps(redis["Config"]["Healthcheck"])

        async def scenario(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
            first = await _wait_status(
                http, lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "redis", 90
            )
            assert first["redis"]["source"] == "external"
            assert REDIS_PASSWORD not in json.dumps(first)
            player = Player(api)
            await player.begin()
            for _ in range(2):
                await player.draw()
            os.kill(redis_pid, signal.SIGKILL)
            # At once: Docker brings Redis back within a second, so this draw usually
            # meets the dead connection and is kept locally, then reconciled.
            await player.draw()
            await _wait_status(http, lambda s: _restarted(engine, project), 60)
            back = await _wait_status(
                http,
                lambda s: (
                    s["storage"]["mode"] == "redis"
                    and s["storage"]["failbacks"] == s["storage"]["failovers"]
                    and s["storage"]["journal_size"] == 0
                ),
                60,
            )
            assert back["redis"]["source"] == "external"
            if back["storage"]["failovers"]:  # the usual case: the draw was kept locally
                assert back["storage"]["records_reconciled"] >= 1
            await player.draw()

        _play_or_show_logs(engine, project, scenario)
        redis = _container(engine, "redis", project)
        assert redis["RestartCount"] >= 1
        bot = _container(engine, "vechnost-bot-external", project)
        assert bot["RestartCount"] == 0
        assert _zombies(int(bot["State"]["Pid"])) == []
    finally:
        _down(engine, project)
    assert engine.runner.docker("ps", "-aq").stdout.strip() == ""
    assert _holds_the_game(_volume_files(engine, "vechnost_redis-data"))


def test_missing_token_does_not_restart_loop(engine: container.Engine, tmp_path: Path) -> None:
    """No token: the container says once what to fix and stays up (unhealthy) instead of
    being restarted again and again."""
    project = _project(tmp_path, TELEGRAM_BOT_TOKEN="")
    engine.compose("up", "-d", "--no-build", "vechnost-bot", project=project)
    try:
        deadline = time.monotonic() + 30
        logs = ""
        while time.monotonic() < deadline and "not restarting" not in logs:
            time.sleep(0.5)
            logs = engine.compose("logs", "vechnost-bot", project=project)
        assert "TELEGRAM_BOT_TOKEN is not set" in logs
        assert "not restarting" in logs
        time.sleep(3)
        bot = _container(engine, "vechnost-bot", project)
        assert bot["State"]["Running"] is True
        assert bot["RestartCount"] == 0
        assert _healthcheck(engine, bot) != 0, "a bot that is not running reports healthy"
        stop_started = time.monotonic()
    finally:
        _down(engine, project)
    assert time.monotonic() - stop_started < 15, "the waiting container ignored SIGTERM"


# Found by this test after the local store landed: storage/local.py creates /data/store
# and a PermissionError ends the bot (a restart loop again). Strict: when the storage
# side fixes it, this XPASSes and fails, so the marker goes with the fix.
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="storage/local.py _claim_files: PermissionError on an unwritable data dir",
)
def test_unwritable_data_dir_degrades_instead_of_crashing(
    engine: container.Engine, tmp_path: Path
) -> None:
    """/data bind-mounted from a root-owned folder the bot's user cannot write: no
    traceback and no restart loop; the bot runs from memory, logging to the console, and
    says why."""
    project = _project(tmp_path)
    readonly = tmp_path / "root-owned-data"
    readonly.mkdir(mode=0o755)
    os.chown(readonly, 0, 0)
    override = json.loads((project / "docker-compose.override.yml").read_text())
    override["services"]["vechnost-bot"]["volumes"] = [f"{readonly}:/data"]
    (project / "docker-compose.override.yml").write_text(json.dumps(override))
    engine.compose("up", "-d", "--no-build", "vechnost-bot", project=project)
    try:

        async def scenario(api: FakeBotApi, http: aiohttp.ClientSession) -> None:
            status = await _wait_status(
                http, lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "memory", 60
            )
            assert status["status"] == "degraded"
            player = Player(api)
            await player.begin()
            await player.draw()

        _play_or_show_logs(engine, project, scenario)
        bot = _container(engine, "vechnost-bot", project)
        assert bot["RestartCount"] == 0
        logs = engine.compose("logs", "vechnost-bot", project=project)
        assert "Traceback" not in logs
        assert "PermissionError" not in logs
    finally:
        _down(engine, project)
    assert list(readonly.iterdir()) == []
