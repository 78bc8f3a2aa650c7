"""A private Docker engine for the container end-to-end test.

These machines have no Docker engine and no Docker Hub, but Debian's package
registry answers and CI runs as root. So (see docs/operations.md → "Testing the
image"):

* the engine is Debian 12's ``docker.io`` (plus containerd, runc, tini, iptables),
  fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``: no install
  script runs, nothing under /usr or /etc changes; Compose v2 is Debian 13's
  ``docker-compose`` package, fetched with a private apt configuration;
* the base image ``python:3.11-slim-bookworm`` is a ``debootstrap --variant=minbase``
  of Debian 12 (its python3 is 3.11) imported with ``docker import``;
* a *builder* daemon (host network, no bridge, no iptables) builds the images, and a
  *runner* daemon inside its own network namespace runs them with ``docker compose``;
  both in a private mount namespace with an overlay on /etc.

Downloads, the base image and the builder's layer cache live in :data:`CACHE_DIR`
(outside the repository) so that later runs reuse them. Every daemon is stopped by its
pid file; the machine's network is left as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = [
    "CACHE_DIR",
    "Engine",
    "container_processes",
    "in_netns",
    "prepare",
    "unavailable_reason",
]

CACHE_DIR = Path(os.environ.get("VECHNOST_CONTAINER_CACHE", "/var/cache/vechnost-container"))
BASE_IMAGE = "python:3.11-slim-bookworm"

# Debian 12's engine and what it needs that a minimal host may lack.
_ENGINE_PACKAGES = (
    "docker.io", "containerd", "runc", "tini", "iptables", "libip6tc2", "libip4tc2",
    "libxtables12", "libnftnl11", "libnetfilter-conntrack3", "libnfnetlink0", "debootstrap",
)  # fmt: skip
# Compose v2 from Debian 13 (Debian 12 only has v1, which rejects the file's `name:`).
_COMPOSE_SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main\n"
)
_MIRROR = "http://deb.debian.org/debian"
_CACHE_VERSION = "1"
_CLONE_NEWNET = 0x40000000

T = TypeVar("T")


def unavailable_reason() -> str | None:
    """Why a private engine cannot run here (one line), or None when it can."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        return "needs Linux namespaces"
    if os.geteuid() != 0:
        return "needs root (a private Docker engine: namespaces, cgroups, mounts)"
    for tool in ("unshare", "nsenter", "apt-get", "dpkg-deb", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH"
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        return "needs cgroups mounted under /sys/fs/cgroup"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create namespaces: {probe.stderr.decode(errors='replace').strip()}"
    return None


def _run(args: Sequence[str], *, timeout: float = 300, **kwargs: object) -> str:
    """Run a command; raise with its output when it fails."""
    done = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:6])} … exited {done.returncode}:\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    return done.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock: one test run at a time uses the cache and the builder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the cache: engine binaries, base image ----------------------------------------------


def _download_engine(cache: Path) -> Path:
    """The unpacked engine under ``cache/engine`` (downloaded once)."""
    root = cache / "engine"
    marker = root / f".complete-{_CACHE_VERSION}"
    if marker.exists():
        return root
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    # apt's sandbox user cannot write into root's cache dir; we only download as root.
    sandbox = ["-o", "APT::Sandbox::User=root"]
    _run(["apt-get", *sandbox, "download", *_ENGINE_PACKAGES], cwd=debs)
    apt = cache / "apt-trixie"
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "etc" / "sources.list").write_text(_COMPOSE_SOURCE)
    private = [
        *sandbox,
        "-o", f"Dir::Etc::SourceList={apt / 'etc' / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={apt / 'lists'}",
        "-o", f"Dir::Cache={apt / 'cache'}",
    ]  # fmt: skip
    _run(["apt-get", "-q", *private, "update"])
    _run(["apt-get", *private, "download", "docker-compose"], cwd=debs)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    sbin = root / "usr" / "sbin"
    for name in ("iptables", "iptables-save", "iptables-restore", "ip6tables"):
        link = sbin / name
        link.unlink(missing_ok=True)
        link.symlink_to("xtables-legacy-multi")
    marker.touch()
    return root


def _debootstrap_base(cache: Path, engine: Path) -> Path:
    """``python:3.11-slim-bookworm`` as a rootfs tarball (debootstrap once)."""
    tarball = cache / f"base-{_CACHE_VERSION}.tar"
    if tarball.exists():
        return tarball
    rootfs = cache / "base-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    env = {**os.environ, "DEBOOTSTRAP_DIR": str(engine / "usr" / "share" / "debootstrap")}
    _run(
        [
            str(engine / "usr" / "sbin" / "debootstrap"),
            "--variant=minbase",
            "--include=python3,python3-pip,python-is-python3,ca-certificates",
            "bookworm",
            str(rootfs),
            _MIRROR,
        ],
        env=env,
        timeout=600,
    )
    # pip inside `docker build` must trust what this machine trusts (an egress proxy's CA).
    extra = rootfs / "usr" / "local" / "share" / "ca-certificates"
    extra.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, extra / cert.name)
    _run(["chroot", str(rootfs), "update-ca-certificates"])
    for managed in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        managed.unlink()
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(rootfs, arcname=".")
    partial.rename(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


# --- the daemons ----------------------------------------------------------------------------


@dataclass
class Daemon:
    """One dockerd with its own data root, exec root and socket under ``work``."""

    name: str
    work: Path
    data_root: Path
    netns: bool
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.work / f"{self.name}.sock"

    @property
    def pid_file(self) -> Path:
        return self.work / f"{self.name}.pid"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def start(self, timeout: float = 60) -> None:
        etc = self.work / f"{self.name}-etc"
        for sub in ("upper", "work"):
            (etc / sub).mkdir(parents=True, exist_ok=True)
        (self.work / f"{self.name}.json").write_text("{}")
        flags = [
            "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.work / (self.name + '-exec')}",
            f"--pidfile={self.pid_file}",
            f"-H={self.host}",
            f"--config-file={self.work / (self.name + '.json')}",
            "--storage-driver=overlay2",
            "--log-level=warn",
            f"--cgroup-parent=/vechnost-test-{self.name}",
        ]
        if not self.netns:
            flags += [
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ]
        # The daemon's key files land in an overlay of /etc that only its mount ns sees.
        script = (
            "set -e; "
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={etc}/upper,"
            f"workdir={etc}/work /etc; "
            + ("ip link set lo up; " if self.netns else "")
            + 'exec "$@"'
        )
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if self.netns:
            unshare.append("--net")
        log = (self.work / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            [*unshare, "sh", "-c", script, "dockerd-in-ns", *flags],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd ({self.name}) exited: {self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd ({self.name}) did not answer in {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.work / f"{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def docker(
        self, *args: str, check: bool = True, timeout: float = 300, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", "-H", self.host, *args],
            env=self.env,
            capture_output=True,
            text=input_bytes is None,
            input=input_bytes,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:4])} exited {done.returncode}: {done}")
        return done  # type: ignore[return-value]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM by pid file, bounded wait, then SIGKILL; then its containerd."""
        pids = []
        if self.pid_file.exists():
            with contextlib.suppress(ValueError):
                pids.append(self.pid)
        if self.process is not None:
            pids.append(self.process.pid)
        containerd = self.work / f"{self.name}-exec" / "containerd" / "containerd.pid"
        for pid in dict.fromkeys(pids):
            _terminate(pid, timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if containerd.exists():
            with contextlib.suppress(ValueError):
                _terminate(int(containerd.read_text().strip()), 10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(pid: int, timeout: float) -> None:
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line names ``text`` (our unique work dir): leftovers of ours."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


@dataclass
class Engine:
    """The builder and the runner, their environment, and what they were given."""

    work: Path
    env: dict[str, str]
    builder: Daemon
    runner: Daemon
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, project: Path, timeout: float = 180) -> str:
        """``docker compose`` against the runner, in ``project``."""
        env = {**self.env, "DOCKER_HOST": self.runner.host}
        return _run(["docker", "compose", *args], cwd=project, env=env, timeout=timeout)

    def build(self, context: Path, tag: str, *build_args: str) -> None:
        """``docker build`` on the builder (host network: pip and apt reach the registries)."""
        self.builder.docker(
            "build", "--network", "host", "-t", tag, *build_args, str(context), timeout=600
        )

    def transfer(self, *images: str) -> None:
        """Move images from the builder to the runner (docker save | docker load)."""
        saved = subprocess.run(
            ["docker", "-H", self.builder.host, "save", *images],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
        self.runner.docker("load", input_bytes=saved)


def _engine_env(engine_root: Path, work: Path) -> dict[str, str]:
    usr = engine_root / "usr"
    libs = [str(engine_root / "lib" / "x86_64-linux-gnu"), str(usr / "lib" / "x86_64-linux-gnu")]
    config = work / "docker-config"
    plugins = config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    plugin = plugins / "docker-compose"
    if not plugin.exists():
        plugin.symlink_to(usr / "libexec" / "docker" / "cli-plugins" / "docker-compose")
    xtables = usr / "lib" / "x86_64-linux-gnu" / "xtables"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCKER_", "COMPOSE_", "TELEGRAM_", "REDIS_", "HEALTH_"))
    }
    env.update(
        PATH=os.pathsep.join([str(usr / "bin"), str(usr / "sbin"), env.get("PATH", "")]),
        LD_LIBRARY_PATH=os.pathsep.join(libs),
        XTABLES_LIBDIR=str(xtables),
        DOCKER_CONFIG=str(config),
        DOCKER_BUILDKIT="0",
        COMPOSE_DOCKER_CLI_BUILD="0",
    )
    return env


@contextlib.contextmanager
def prepare(cache: Path = CACHE_DIR) -> Iterator[Engine]:
    """Both daemons running, the base image on the builder; everything stopped afterwards.

    Holds the cache lock for the whole use: one run at a time on this machine.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / "lock"):
        _clean_stale_runs(cache)
        timings: dict[str, float] = {}
        started = time.monotonic()
        engine_root = _download_engine(cache)
        timings["engine_download"] = time.monotonic() - started
        started = time.monotonic()
        base = _debootstrap_base(cache, engine_root)
        timings["base_image"] = time.monotonic() - started
        work = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
        env = _engine_env(engine_root, work)
        builder = Daemon("builder", work, cache / "builder-root", netns=False, env=env)
        runner = Daemon("runner", work, work / "runner-root", netns=True, env=env)
        engine = Engine(work, env, builder, runner, timings)
        try:
            started = time.monotonic()
            _start_builder(builder)
            digest = hashlib.sha256(base.name.encode()).hexdigest()[:12]
            if builder.docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
                with base.open("rb") as stream:
                    subprocess.run(
                        [
                            "docker", "-H", builder.host, "import",
                            "--change", "ENV LANG=C.UTF-8",
                            "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:"
                            "/usr/sbin:/usr/bin:/sbin:/bin",
                            "--change", 'CMD ["python3"]',
                            "--message", f"debootstrap bookworm {digest}",
                            "-", BASE_IMAGE,
                        ],
                        env=env, stdin=stream, capture_output=True, check=True, timeout=300,
                    )  # fmt: skip
            runner.start()
            timings["daemons"] = time.monotonic() - started
            yield engine
        finally:
            runner.stop()
            builder.stop()
            for pid in _processes_mentioning(str(work)):
                _terminate(pid, 5)
            shutil.rmtree(work, ignore_errors=True)


def _clean_stale_runs(cache: Path) -> None:
    """A run that was killed (its session ended) may have left daemons and its work dir;
    under the lock no other run uses them. Its daemons are found by their command lines,
    which name that dir (a pid file alone could name a reused pid), and ended by pid."""
    for stale in cache.glob("run-*"):
        for pid in _processes_mentioning(str(stale)):
            _terminate(pid, 20)
        shutil.rmtree(stale, ignore_errors=True)


def _start_builder(builder: Daemon) -> None:
    """The builder keeps its data root (layer cache) between runs; a broken one is reset."""
    try:
        builder.start()
    except RuntimeError:
        builder.stop()
        shutil.rmtree(builder.data_root, ignore_errors=True)
        builder.start()


# --- inside the runner's network namespace --------------------------------------------------


def in_netns(pid: int, function: Callable[[], T]) -> T:
    """Call ``function`` in a thread that joined the network namespace of ``pid``.

    Sockets it opens (servers and clients) live in that namespace; so do the
    processes it starts. The rest of this process stays where it was.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            result.append(function())
        except BaseException as error:  # handed to the caller's thread
            errors.append(error)

    thread = threading.Thread(target=target, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def container_processes(init_pid: int) -> list[tuple[int, str, str, int]]:
    """``(host pid, state, command, uid)`` of every process in the pid namespace of
    ``init_pid`` (a container's first process)."""
    target = Path(f"/proc/{init_pid}/ns/pid").readlink()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if (entry / "ns" / "pid").readlink() != target:
                continue
            stat = (entry / "stat").read_text()
            command = stat[stat.index("(") + 1 : stat.rindex(")")]
            state = stat.rsplit(")", 1)[1].split()[0]
            uid = next(
                int(line.split()[1])
                for line in (entry / "status").read_text().splitlines()
                if line.startswith("Uid:")
            )
            found.append((int(entry.name), state, command, uid))
    return found


def inspect(daemon: Daemon, name: str) -> dict[str, object]:
    """``docker inspect`` of one container as a dict."""
    data = json.loads(daemon.docker("inspect", name).stdout)
    assert isinstance(data, list)
    first = data[0]
    assert isinstance(first, dict)
    return first
