"""Connections: passwords, ACL users confined to a namespace, TLS (rediss://),
and settings resolution. These tests start their own servers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from swarmstream import EphemeralWorker, Settings, Status, Swarm
from swarmstream.embedded import EmbeddedRedis, find_redis_server, free_port
from swarmstream.errors import AuthenticationFailed, ConfigError


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        dir=tmp_path_factory.mktemp("secured"), port=free_port(), password="s3cret"
    )
    server.start()
    yield server
    server.stop()


async def _round_trip(settings: Settings) -> None:
    async with Swarm(settings) as swarm:
        task = await swarm.submit("secure", "ping")
        worker = EphemeralWorker("secure", lambda t: t.text + "!", settings.with_worker(once=True))
        await asyncio.wait_for(worker.run(), 20)
        finding = await swarm.wait(task, timeout=5)
    assert finding.status is Status.OK and finding.content == "ping!"


async def test_password_url(secured: EmbeddedRedis) -> None:
    await _round_trip(Settings.from_flat({"url": secured.url, "namespace": "pw"}))


@pytest.mark.parametrize("protocol", [2, 3])
async def test_both_resp_protocols(secured: EmbeddedRedis, protocol: int) -> None:
    """The hot paths parse raw replies themselves: RESP2 lists and RESP3 maps alike."""
    url = f"{secured.url}?protocol={protocol}"
    settings = Settings.from_flat({"url": url, "namespace": f"resp{protocol}"})
    async with Swarm(settings) as swarm:
        conn = await swarm.client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        assert int(conn.protocol) == protocol  # redis-py 6.0 keeps the str of the URL
        await swarm.client.connection_pool.release(conn)
    await _round_trip(settings)


async def test_wrong_password_is_a_clear_error(secured: EmbeddedRedis) -> None:
    url = f"redis://:wrong@127.0.0.1:{secured.port}/0"
    settings = Settings.from_flat({"url": url, "namespace": "pw"})
    assert "wrong" not in settings.redis.redacted_url
    swarm = Swarm(settings)
    started = time.monotonic()
    with pytest.raises(
        AuthenticationFailed, match=r"authentication failed for user 'default' at redis://:\*\*\*@"
    ):
        await swarm.check()
    assert time.monotonic() - started < 1.0  # not retried like a connection error
    await swarm.aclose()


async def test_acl_user_confined_to_its_namespace(secured: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(secured.url)
    admin.acl_setuser(
        "tenant",
        enabled=True,
        passwords=["+tenantpw"],
        keys=["tenant:*"],
        commands=["+@all", "-@admin", "-@dangerous", "+info", "+client"],
    )
    admin.set("other:secret", "x")
    url = f"redis://tenant:tenantpw@127.0.0.1:{secured.port}/0"
    await _round_trip(Settings.from_flat({"url": url, "namespace": "tenant"}))
    confined = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        confined.get("other:secret")
    confined.close()
    admin.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    binary = find_redis_server()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("tls")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=swarmstream-test-ca",
    )
    ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            "srv.crt",
            "--tls-key-file",
            "srv.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
        ],
        cwd=d,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={d / 'ca.crt'}"
    try:
        client = redis.Redis.from_url(url)
        deadline = 50
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.skip(f"this redis-server has no TLS support: {out[-200:]}")
                deadline -= 1
                assert deadline > 0, "TLS server did not answer"
                import time

                time.sleep(0.1)
        client.close()
        yield port, d / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


async def test_rediss_url(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    await _round_trip(Settings.from_flat({"url": url, "namespace": "tls"}))


def test_bad_urls_and_names_are_config_errors() -> None:
    for url in ("http://x", "redis://", "redis://host:notaport", "localhost:6379"):
        with pytest.raises(ConfigError):
            Settings.from_flat({"url": url})
    with pytest.raises(ConfigError, match="namespace"):
        Settings.from_flat({"namespace": "a:b"})
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_flat({"concurency": 3})


def test_settings_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[redis]\nnamespace = "fromfile"\n[worker]\nconcurrency = 3\nclaim_idle = 9\n')
    env = {"SWARMSTREAM_CONCURRENCY": "5", "SWARMSTREAM_REDIS_URL": "redis://envhost:1/0"}
    s = Settings.load(toml, env=env, claim_idle=4.0)
    assert s.redis.namespace == "fromfile"
    assert s.redis.url == "redis://envhost:1/0"
    assert s.worker.concurrency == 5
    assert s.worker.claim_idle == 4.0
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(bad, env={})
    with pytest.raises(ConfigError, match="not a valid int"):
        Settings.load(None, env={"SWARMSTREAM_CONCURRENCY": "many"})
