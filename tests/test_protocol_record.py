"""NS:protocol: the first worker publishes the protocol version, the scripts' SHA1s
and the shared settings; a later worker compares (issue 12)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis
from typer.testing import CliRunner

from swarmstream import EphemeralWorker, Settings
from swarmstream.cli.app import app
from swarmstream.errors import ConfigError
from swarmstream.keys import Keys
from swarmstream.transport.protocol import PROTOCOL_VERSION


async def _start_and_stop(settings: Settings) -> None:
    worker = EphemeralWorker(["proto"], lambda t: t.text, settings)
    run = asyncio.create_task(worker.run())
    for _ in range(500):
        if worker.state.value != "starting" or run.done():
            break
        await asyncio.sleep(0.01)
    worker.stop()
    await run


async def test_first_worker_publishes_later_ones_compare(
    settings: Settings, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key = Keys(settings.redis.namespace).protocol
    await _start_and_stop(settings)
    record = {k.decode(): v.decode() for k, v in raw.hgetall(key).items()}
    assert record["version"] == PROTOCOL_VERSION
    assert record["claim_idle_ms"] == str(int(settings.worker.claim_idle * 1000))
    assert len(record["script:complete"]) == 40
    caplog.set_level(logging.WARNING)
    await _start_and_stop(settings.with_worker(claim_idle=settings.worker.claim_idle * 2))
    assert "claim_idle_ms is" in caplog.text and "in the swarm" in caplog.text
    after = {k.decode(): v.decode() for k, v in raw.hgetall(key).items()}
    assert after == record, "a later worker never overwrites the record"


async def test_another_major_version_refuses_to_start(settings: Settings, raw: redis.Redis) -> None:
    raw.hset(Keys(settings.redis.namespace).protocol, mapping={"version": "2.0"})
    worker = EphemeralWorker(["proto"], lambda t: t.text, settings)
    with pytest.raises(ConfigError, match=r"protocol 1\.2 but the swarm .* uses 2\.0"):
        await worker.run()


def test_protocol_command_shows_and_republishes(settings: Settings, tmp_path: object) -> None:
    env = {
        "SWARMSTREAM_REDIS_URL": settings.redis.url,
        "SWARMSTREAM_NAMESPACE": settings.redis.namespace,
    }
    runner = CliRunner()
    shown = runner.invoke(app, ["protocol"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["published"] is None
    again = runner.invoke(app, ["protocol", "--publish"], env=env)
    assert json.loads(again.stdout)["published"]["version"] == PROTOCOL_VERSION
