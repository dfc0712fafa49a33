"""Prometheus metrics: the whole swarm from the monitor's snapshot, and each worker's own.

- ``swarmstream metrics`` (``server.run_exporter``) serves ``/metrics`` for one
  namespace: a ``SwarmCollector`` (``swarm``) over snapshots a ``SnapshotSource``
  (``source``) takes on an event loop of its own, at most one per ``min_interval``,
  in two pipelined round trips whatever the number of tasks;
- ``swarmstream worker --metrics-port`` serves a ``WorkerMetrics`` hook's registry
  (``worker``): outcomes, handler durations, lease events, reconnects, state.

Both keep their metrics on registries of their own, never prometheus_client's global
one. ``configs/grafana-dashboard.json`` is a dashboard over both. The submodules
import prometheus_client; this package does not, so the CLI starts without it.
"""

#: where ``swarmstream metrics`` listens by default: loopback only, as the endpoint
#: has no authentication
DEFAULT_PORT = 9464
DEFAULT_HOST = "127.0.0.1"
