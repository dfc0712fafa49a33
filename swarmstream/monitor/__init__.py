"""The monitor: ``collect()`` takes a snapshot, ``render()`` draws it (pure)."""

from swarmstream.monitor.snapshot import ShardStats, Snapshot, SpecStats, collect

__all__ = ["ShardStats", "Snapshot", "SpecStats", "collect"]
