"""Clear errors at the edges (issue 10): a wrong password, an ACL user without the
namespace's keys or a command, and redis-py's pipeline wording. These tests start
their own server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
import typer
from test_cli import cli, one_line_error

from swarmstream import Settings
from swarmstream.cli.base import EXIT_AUTH, EXIT_PERMISSION, guarded
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RedisCommandError,
)
from swarmstream.keys import Keys
from swarmstream.transport.errors import translate

PASSWORD = "s3cret"
FAST = {"SWARMSTREAM_RETRIES": "0"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        dir=tmp_path_factory.mktemp("edges"), port=free_port(), password=PASSWORD
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin(secured: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(secured.url)
    yield client
    client.close()


@pytest.fixture
def ns() -> str:
    return f"e{uuid.uuid4().hex[:10]}"


def user(admin: redis.Redis, name: str, keys: str, *commands: str) -> str:
    """A fresh ACL user with password 'pw'; returns its name."""
    name = f"{name}{uuid.uuid4().hex[:6]}"
    admin.acl_setuser(
        name,
        enabled=True,
        passwords=["+pw"],
        keys=[keys],
        commands=["+@all", "-@admin", "-@dangerous", "+info", "+client", *commands],
    )
    return name


def url_of(secured: EmbeddedRedis, name: str, password: str = "pw") -> str:
    return f"redis://{name}:{password}@127.0.0.1:{secured.port}/0"


def settings_of(url: str, ns: str) -> Settings:
    return Settings.from_flat({"url": url, "namespace": ns})


def raised(call: Callable[[], object]) -> redis.RedisError:
    """The redis-py error a real command raises."""
    with pytest.raises(redis.RedisError) as info:
        call()
    return info.value


def ping(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.ping()


def get(url: str, key: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.get(key)


# -- translate: redis-py's errors as ours, with user, URL and namespace ----------


def test_translate_wrong_password_and_no_password(secured: EmbeddedRedis) -> None:
    url = f"redis://:wrong@127.0.0.1:{secured.port}/0"
    error = translate(raised(lambda: ping(url)), settings_of(url, "swarm"))
    assert isinstance(error, AuthenticationFailed)
    assert str(error) == (
        f"authentication failed for user 'default' at redis://:***@127.0.0.1:{secured.port}/0: "
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    anonymous = f"redis://127.0.0.1:{secured.port}/0"
    error = translate(raised(lambda: ping(anonymous)), settings_of(anonymous, "swarm"))
    assert isinstance(error, AuthenticationFailed) and "wrong" not in str(error)
    assert f"user 'default' at {anonymous}: NOAUTH" in str(error)
    assert "the URL has no password" in str(error)


def test_translate_permission_errors_name_user_namespace_and_pattern(
    admin: redis.Redis, secured: EmbeddedRedis, ns: str
) -> None:
    elsewhere = user(admin, "tenant", "~other:*")
    url = url_of(secured, elsewhere)
    error = translate(raised(lambda: get(url, f"{ns}:x")), settings_of(url, ns))
    assert isinstance(error, PermissionDenied)
    assert str(error).startswith(
        f"permission denied for Redis user '{elsewhere}' on namespace '{ns}': "
        f"it needs the key pattern ~{ns}:* and the commands swarmstream uses (see README, ACL); "
        "Redis said: NOPERM "
    )

    nodel = user(admin, "nodel", f"~{ns}:*", "-del")
    url = url_of(secured, nodel)
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(f"{ns}:s")
    pipe.delete(f"{ns}:s")
    error = translate(raised(pipe.execute), settings_of(url, ns))
    assert isinstance(error, PermissionDenied)
    text = str(error)
    assert "it needs the command 'del'" in text and f"~{ns}:*" in text
    assert "NOPERM" in text and "'del'" in text.split("Redis said:")[1]
    assert "Command #" not in text and "pipeline" not in text and "('" not in text
    client.close()


@pytest.mark.parametrize("transaction", [False, True])
def test_translate_strips_the_pipeline_annotation(
    admin: redis.Redis, ns: str, transaction: bool
) -> None:
    admin.set(f"{ns}:str", "x", ex=60)
    pipe = admin.pipeline(transaction=transaction)
    pipe.xlen(f"{ns}:str")
    exc = raised(pipe.execute)
    assert "Command # 1" in str(exc)  # what redis-py says
    error = translate(exc, None)
    assert isinstance(error, RedisCommandError)
    assert str(error).endswith(
        "refused a command: WRONGTYPE Operation against a key holding the wrong kind of value"
    )
    assert translate(ValueError("not redis"), None) is None


# -- the CLI: exit codes and one line ----------------------------------------------


@pytest.mark.parametrize(
    ("make", "code"),
    [
        ("raw-auth", EXIT_AUTH),
        ("raw-noperm", EXIT_PERMISSION),
        ("ours-auth", EXIT_AUTH),
        ("ours-noperm", EXIT_PERMISSION),
    ],
)
def test_guarded_exit_codes(
    make: str, code: int, secured: EmbeddedRedis, admin: redis.Redis, ns: str, capsys: object
) -> None:
    """Raw redis-py errors that escape a command get the same codes as ours."""
    url = url_of(secured, user(admin, "t", "~other:*"))
    errors: dict[str, Callable[[], object]] = {
        "raw-auth": lambda: ping(url_of(secured, "nobody", "nope")),
        "raw-noperm": lambda: get(url, f"{ns}:x"),
    }

    def command() -> None:
        if make == "ours-auth":
            raise AuthenticationFailed("authentication failed for user 'x'")
        if make == "ours-noperm":
            raise PermissionDenied("permission denied for Redis user 'x'")
        errors[make]()

    with pytest.raises(typer.Exit) as info:
        guarded(command)()
    assert info.value.exit_code == code
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert ("authentication failed" if code == EXIT_AUTH else "permission denied") in err


@pytest.mark.parametrize(
    "args",
    [("status",), ("worker", "research", "--once"), ("dead", "purge", "research", "--yes")],
)
def test_acl_user_without_the_namespace_exits_5_and_says_what_it_needs(
    admin: redis.Redis, secured: EmbeddedRedis, ns: str, args: tuple[str, ...]
) -> None:
    name = user(admin, "tenant", "~other:*")
    url = url_of(secured, name)
    r = cli(None, "--redis-url", url, "--namespace", ns, *args, env=FAST, timeout=30)
    line = one_line_error(r, EXIT_PERMISSION)
    assert line.startswith(
        f"error: permission denied for Redis user '{name}' on namespace '{ns}': "
        f"it needs the key pattern ~{ns}:*"
    )
    assert "Redis said: NOPERM" in line and "pw" not in line.replace(name, "")


def test_dead_purge_shows_only_redis_words(
    admin: redis.Redis, secured: EmbeddedRedis, ns: str
) -> None:
    name = user(admin, "nodel", f"~{ns}:*", "-del")
    r = cli(None, "--redis-url", url_of(secured, name), "--namespace", ns, "dead", "purge", "x")
    line = one_line_error(r, EXIT_PERMISSION)
    assert f"user '{name}' on namespace '{ns}': it needs the command 'del'" in line
    assert "Command #" not in line and "pipeline" not in line

    admin.set(Keys(ns).spec("x").dead, "not a stream", ex=60)
    r = cli(None, "--redis-url", secured.url, "--namespace", ns, "dead", "purge", "x")
    line = one_line_error(r, 1)
    assert line.endswith("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert "Command #" not in line and "pipeline" not in line and PASSWORD not in line


def test_the_documented_acl_rule_is_enough(
    admin: redis.Redis, secured: EmbeddedRedis, ns: str
) -> None:
    """README's rule for a confined user: status, submit and a worker all work."""
    url = url_of(secured, user(admin, "tenant", f"~{ns}:*"))
    base = ("--redis-url", url, "--namespace", ns)
    submitted = cli(None, *base, "submit", "research", "hi")
    assert submitted.returncode == 0, submitted.stderr
    worked = cli(None, *base, "worker", "research", "--once", timeout=30)
    assert worked.returncode == 0, worked.stderr
    status = cli(None, *base, "status", "--json")
    assert status.returncode == 0, status.stderr


def test_wrong_password_exits_4_at_once(secured: EmbeddedRedis, ns: str) -> None:
    url = f"redis://:wrong@127.0.0.1:{secured.port}/0"
    r = cli(None, "--redis-url", url, "--namespace", ns, "status", timeout=30)
    line = one_line_error(r, EXIT_AUTH)
    assert line == (
        f"error: authentication failed for user 'default' at redis://:***@127.0.0.1:"
        f"{secured.port}/0: WRONGPASS invalid username-password pair or user is disabled."
    )
