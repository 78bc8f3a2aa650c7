"""TLS with Sentinel: a ``rediss://`` REDIS_URL reaches the master and the sentinels over
TLS, with its ``ssl_*`` parameters (a CA to trust, a client certificate).

Before, the Sentinel endpoint kept the db and the credentials of REDIS_URL but dropped
its TLS: the master connection was plain TCP whatever the URL said. Here every process
of a real topology listens on TLS only (``port 0``) and asks each client for a
certificate signed by the test CA, so a plain connection, a client that does not trust
the CA or one without the certificate cannot get an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from tests.support.redis_server import TlsFiles, make_tls_files
from tests.support.sentinel import MASTER_NAME, SentinelTopology
from vechnost_bot.config import RedisEndpoint, Settings, TlsOptions, load_settings, parse_redis_url
from vechnost_bot.errors import ConfigError
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.probe import probe
from vechnost_bot.redis.sentinel import SentinelWatch


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a certificate for 127.0.0.1 (openssl CLI)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_topology(tmp_path: Path, tls_files: TlsFiles) -> Iterator[SentinelTopology]:
    """1 master + 1 replica + 3 sentinels, TLS only, down-after 200 ms."""
    with SentinelTopology(tmp_path / "topo", replicas=1, down_after_ms=200, tls=tls_files) as topo:
        yield topo


def _settings(topo: SentinelTopology, url: str, data: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        redis_url=url,
        redis_sentinels=",".join(f"{h}:{p}" for h, p in topo.sentinel_addresses),
        redis_sentinel_master=MASTER_NAME,
        redis_data_dir=data,
    )


@pytest.mark.slow
async def test_master_and_sentinels_over_tls_through_a_failover(
    tls_topology: SentinelTopology, tls_files: TlsFiles, tmp_path: Path
) -> None:
    """With REDIS_URL=rediss://localhost:6379/0?ssl_ca_certs=…&ssl_certfile=…: the probe
    and the client reach the master, the watch reads the sentinels, and after a SIGKILL
    of the master the client writes to the elected one, all over TLS."""
    url = f"rediss://localhost:6379/0?{tls_files.url_query()}"
    endpoint = _settings(tls_topology, url, tmp_path / "data").redis_target
    assert endpoint.sentinel is not None
    assert endpoint.sentinel.tls is not None
    found = await probe(endpoint, 1.0)
    assert found.answers, found
    client = make_client(endpoint, timeout=0.5)
    watch = SentinelWatch(endpoint.sentinel)
    try:
        await watch.start()
        assert watch.master == ("127.0.0.1", tls_topology.master_port())
        await client.set("before", "1")
        assert await client.execute_command("WAIT", 1, 2000) == 1
        killed_at = time.monotonic()
        old = await asyncio.to_thread(tls_topology.kill_master)
        election = await tls_topology.wait_new_master(old, killed_at)
        while time.monotonic() - killed_at < 15:
            try:
                await client.set("after", "1")
                break
            except RedisError:  # the failover's, until the switch
                await asyncio.sleep(0.05)
        assert await client.get("before") == b"1"
        assert await client.get("after") == b"1"
        assert watch.master == ("127.0.0.1", election.new_port)
    finally:
        await watch.stop()
        await client.aclose()


@pytest.mark.slow
async def test_tls_without_its_parameters_gets_no_answer(
    tls_topology: SentinelTopology, tls_files: TlsFiles, tmp_path: Path
) -> None:
    """The parameters are what makes it work: through the sentinels, plain redis://,
    rediss:// without the CA (the system's trust fails the check) and rediss:// without
    the client certificate get no answer. One server without Sentinel: rediss:// with
    them answers, a plain connection to its TLS port does not."""
    ca_only = f"ssl_ca_certs={tls_files.ca}"
    for url in (
        "redis://localhost:6379/0",
        "rediss://localhost:6379/0",
        f"rediss://localhost:6379/0?{ca_only}",
    ):
        endpoint = _settings(tls_topology, url, tmp_path / "data").redis_target
        found = await probe(endpoint, 0.5)
        assert not found.answers, (url, found)
    master = tls_topology.server_on(tls_topology.master_port())
    assert master.url.startswith("rediss://127.0.0.1:")
    client = make_client(parse_redis_url(master.url), timeout=1.0)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    found = await probe(RedisEndpoint(host="127.0.0.1", port=master.port), 0.5)
    assert not found.answers


def test_tls_parameters_are_parsed_and_reach_the_sentinel_target() -> None:
    """``ssl_*`` parameters become TlsOptions (redis-py's names and defaults); with
    Sentinel they go to the master and to the sentinels."""
    endpoint = parse_redis_url(
        "rediss://localhost:6379/2?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_cert_reqs=optional&ssl_check_hostname=false"
    )
    options = TlsOptions("/ca.pem", "/c.pem", "/k.pem", "optional", check_hostname=False)
    assert endpoint.tls_options == options
    assert endpoint.tls_kwargs() == {
        "ssl": True,
        "ssl_ca_certs": "/ca.pem",
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
        "ssl_cert_reqs": "optional",
        "ssl_check_hostname": False,
    }
    assert parse_redis_url("rediss://h/0").tls_options == TlsOptions()
    assert parse_redis_url("redis://h/0").tls_kwargs() == {}
    settings = Settings(  # type: ignore[call-arg]
        redis_url="rediss://localhost:6379/2?ssl_ca_certs=/ca.pem",
        redis_sentinels="10.0.0.1:26379",
        redis_sentinel_master="main",
    )
    target = settings.redis_target
    assert (target.tls, target.db, target.tls_options.ca_certs) == (True, 2, "/ca.pem")
    assert target.sentinel is not None
    assert target.sentinel.tls == target.tls_options
    plain = Settings(  # type: ignore[call-arg]
        redis_sentinels="10.0.0.1:26379", redis_sentinel_master="main"
    ).redis_target
    assert plain.sentinel is not None
    assert (plain.tls, plain.sentinel.tls) == (False, None)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://h/0?ssl_ca_certs=/ca.pem", "no TLS: start it with rediss://"),
        ("rediss://h/0?ssl_ca_cert=/ca.pem", "has ssl_ca_cert: the TLS parameters are"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs=maybe: it must be required"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "it must be true or false"),
    ],
)
def test_a_wrong_tls_parameter_is_refused(url: str, words: str) -> None:
    """A typo or a parameter without TLS is an error, not a silently plain connection."""
    with pytest.raises(ValueError, match=words):
        parse_redis_url(url)


def test_sentinel_mode_refuses_a_redis_url_naming_a_server_and_says_tls_may_stay() -> None:
    """REDIS_URL may keep only TLS and the db with Sentinel; the message says so."""
    with pytest.raises(
        ConfigError, match=r"keep only TLS and the db in it \(rediss://loc"
    ) as caught:
        load_settings(
            redis_url="rediss://redis.example:6380/0",
            redis_sentinels="10.0.0.1:26379",
            redis_sentinel_master="main",
        )
    assert caught.value.variable == "REDIS_URL"
