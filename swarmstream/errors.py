"""The error hierarchy. Everything swarmstream raises derives from SwarmstreamError,
except the shutdown signal, which derives from BaseException so that a handler's
``except Exception`` cannot swallow it."""

from __future__ import annotations

from typing import Any


class SwarmstreamError(Exception):
    """Root of every error swarmstream raises on purpose."""


class ConfigError(SwarmstreamError):
    """A setting, URL, name or config file is invalid."""


class ConnectionFailed(SwarmstreamError):
    """Redis could not be reached at the configured URL."""


class AuthenticationFailed(ConnectionFailed):
    """Redis refused the credentials (wrong password or unknown/disabled ACL user)."""


class PermissionDenied(SwarmstreamError):
    """The ACL user lacks a command or the key pattern of the namespace (NOPERM)."""


class RedisCommandError(SwarmstreamError):
    """Redis answered a command with an error other than NOPERM (e.g. WRONGTYPE)."""


class NotDurable(SwarmstreamError):
    """A write reached the primary but not ``durable_replicas`` replicas in time."""

    def __init__(self, message: str, replies: list[Any] | None = None) -> None:
        super().__init__(message)
        #: the replies of the commands before the WAIT (the write did happen)
        self.replies = replies or []


class RedisVersionError(SwarmstreamError):
    """The Redis server is older than the minimum swarmstream supports (6.2)."""


class MalformedEntry(SwarmstreamError):
    """A stream entry cannot be decoded into a task; it goes to the dead-letter stream."""

    def __init__(self, reason: str, task_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id


class InvalidTask(SwarmstreamError, ValueError):
    """A task given to submit is invalid (bad id, max_attempts, timeout, shard...)."""


class HandlerError(SwarmstreamError):
    """A handler failed; the attempt counts as failed and may be retried."""


class UnencodableResult(HandlerError):
    """A handler returned something a finding cannot carry (the attempt fails)."""


class HandlerTimeout(HandlerError):
    """A handler ran past the task's timeout and was cancelled."""


class HandlerNotFound(ConfigError):
    """A handler name or ``module:function`` reference could not be resolved."""


class LeaseLost(SwarmstreamError):
    """Another worker reclaimed a task this worker was running (fencing)."""


class TaskNotFound(SwarmstreamError):
    """No task or finding exists for the given id."""


class WaitTimeout(SwarmstreamError):
    """A wait for a finding ran out of time."""


class EmbeddedServerError(SwarmstreamError):
    """The embedded redis-server could not be found, started or stopped."""


class Shutdown(BaseException):
    """Raised inside a worker to stop it; not an Exception on purpose."""
