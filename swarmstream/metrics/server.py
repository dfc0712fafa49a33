"""Serving metrics over HTTP: the swarm exporter (``swarmstream metrics``) and a
worker's own endpoint (``worker --metrics-port``).

Both use prometheus_client's threaded WSGI server on a daemon thread, one thread per
request, so a slow scrape never holds up another. The endpoint has no
authentication: it listens on 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` to
let a Prometheus on another machine scrape it, behind a firewall or a proxy).
"""

from __future__ import annotations

import errno
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from swarmstream.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RedisVersionError,
    SwarmstreamError,
)
from swarmstream.metrics import DEFAULT_HOST, DEFAULT_PORT
from swarmstream.metrics.source import SnapshotSource, summary
from swarmstream.metrics.swarm import SwarmCollector
from swarmstream.settings import Settings

log = logging.getLogger(__name__)

#: errors no waiting can fix: the exporter stops at start instead of serving up 0
FATAL: tuple[type[BaseException], ...] = (
    AuthenticationFailed,
    PermissionDenied,
    RedisVersionError,
)


class MetricsServer:
    """An HTTP endpoint serving one registry (every path answers with the metrics)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            self._httpd: WSGIServer
            self._httpd, self._thread = start_http_server(port, host, registry=registry)
        except OSError as exc:
            raise SwarmstreamError(_listen_error(host, port, exc)) from None
        self.host = host
        self.port: int = self._httpd.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        why = "the port is in use (another exporter or program listens on it); choose another"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges); choose another"
    else:
        why = exc.strerror or str(exc)
    return f"cannot serve metrics on {host}:{port}: {why}"


def swarm_registry(source: SnapshotSource) -> CollectorRegistry:
    """A registry of its own holding the swarm collector (never the global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(source))
    return registry


def run_exporter(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    min_interval: float = 1.0,
    timeout: float = 5.0,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the swarm's metrics until SIGINT or SIGTERM (call from the main thread).

    The port is taken first (a port in use fails at once). Then one snapshot is
    taken: Redis refusing the credentials or a permission, or too old, stops the
    exporter with that error; Redis away does not (``swarmstream_up 0`` is served
    until it answers). ``announce`` gets one line saying where it serves."""
    source = SnapshotSource(settings, min_interval=min_interval, timeout=timeout).start()
    try:
        server = MetricsServer(swarm_registry(source), host, port)
    except BaseException:
        source.close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        first = source.get()
        if isinstance(first.error, FATAL):
            raise first.error
        if announce is not None:
            state = ""
            if first.error is not None:
                state = f"; serving swarmstream_up 0 until Redis answers ({summary(first.error)})"
            announce(
                f"serving {server.url} for namespace {source.namespace} at "
                f"{settings.redis.redacted_url}{state}"
            )
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        source.close()
