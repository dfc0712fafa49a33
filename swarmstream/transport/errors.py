"""redis-py's errors as swarmstream's: one line that names who (the ACL user), where
(the URL, password redacted) and what (the namespace), then Redis's own words.

``translate`` is called wherever a redis-py error leaves the library's reach (the
connection check, the CLI), so that no message carries redis-py's internals, such as
the "Command # 1 (XLEN ...) of pipeline caused error: (...)" its pipelines wrap
around an error reply.
"""

from __future__ import annotations

import ast
import re
from urllib.parse import parse_qs, unquote, urlsplit

from redis.exceptions import AuthenticationError, NoPermissionError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmstream.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    PermissionDenied,
    RedisCommandError,
    SwarmstreamError,
)
from swarmstream.settings import RedisSettings, Settings

#: the command a NOPERM reply names ("... no permissions to run the 'del' command")
_COMMAND = re.compile(r"run the '([^']+)' command")
#: redis-py's annotation of an error reply inside a pipeline or transaction
_PIPELINE = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: (?P<error>.*)$", re.S)


def redis_words(exc: RedisError) -> str:
    """What Redis said, with its error code (``NOPERM this user has no ...``) and
    without redis-py's pipeline annotation."""
    message = str(exc.args[0]) if exc.args else str(exc)
    match = _PIPELINE.match(message)
    if match:
        message = _unwrap(match["error"])
    code = getattr(exc, "status_code", None) or _code_of(exc, message)
    if code and not message.startswith(f"{code} "):
        message = f"{code} {message}"
    return message.strip()


def _unwrap(error: str) -> str:
    """The annotated error's text: redis-py 6+ writes the repr of its args tuple,
    older versions the message itself."""
    if error.startswith("(") and error.endswith(")"):
        try:
            args = ast.literal_eval(error)
        except (ValueError, SyntaxError):
            return error
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            return args[0]
    return error


def _code_of(exc: RedisError, message: str) -> str | None:
    """The error code of redis-py versions that do not keep it (``status_code``)."""
    if isinstance(exc, NoPermissionError):
        return "NOPERM"
    if isinstance(exc, AuthenticationError):
        return "NOAUTH" if "required" in message.lower() else "WRONGPASS"
    return None


def translate(
    exc: BaseException, settings: Settings | RedisSettings | None = None
) -> SwarmstreamError | None:
    """swarmstream's error for a redis-py error (None when ``exc`` is not one).

    AuthenticationError (WRONGPASS, NOAUTH) becomes AuthenticationFailed naming the
    user and the URL; NoPermissionError (NOPERM) becomes PermissionDenied naming the
    user, the namespace and the key pattern it needs; other error replies become
    RedisCommandError, a dropped connection or a timeout ConnectionFailed. Every
    message ends with Redis's own words, without redis-py's pipeline annotation.
    """
    if not isinstance(exc, RedisError):
        return None
    redis = settings.redis if isinstance(settings, Settings) else settings
    url = redis.redacted_url if redis is not None else "the configured Redis URL"
    user = _user(redis.url) if redis is not None else "default"
    words = redis_words(exc)
    if isinstance(exc, AuthenticationError):
        hint = ""
        if words.startswith("NOAUTH") and redis is not None and not _has_password(redis.url):
            hint = "; the URL has no password: give it as redis://[USER]:PASSWORD@HOST:PORT/DB"
        return AuthenticationFailed(
            f"authentication failed for user '{user}' at {url}: {words}{hint}"
        )
    if isinstance(exc, NoPermissionError):
        ns = redis.namespace if redis is not None else "NAMESPACE"
        command = _COMMAND.search(words)
        needs = (
            f"the command '{command[1]}', the other commands swarmstream uses and the key "
            f"pattern ~{ns}:*"
            if command
            else f"the key pattern ~{ns}:* and the commands swarmstream uses"
        )
        return PermissionDenied(
            f"permission denied for Redis user '{user}' on namespace '{ns}': it needs {needs} "
            f"(see README, ACL); Redis said: {words}"
        )
    if isinstance(exc, ResponseError):
        return RedisCommandError(f"Redis at {url} refused a command: {words}")
    if isinstance(exc, RedisTimeoutError):
        return ConnectionFailed(f"Redis at {url} did not answer in time: {words}")
    if isinstance(exc, RedisConnectionError):
        return ConnectionFailed(f"lost the connection to Redis at {url}: {words}")
    return SwarmstreamError(f"Redis error at {url}: {words}")


def _user(url: str) -> str:
    """The ACL user a URL logs in as (``default`` when it names none)."""
    parts = urlsplit(url)
    named = parts.username or parse_qs(parts.query).get("username", [""])[0]
    return unquote(named) or "default"


def _has_password(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.password or parse_qs(parts.query).get("password", [""])[0])
