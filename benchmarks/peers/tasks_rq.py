"""The no-op task of the peer benchmark for RQ (imported by the work horse)."""

from __future__ import annotations


def noop() -> None:
    """The benchmark's task: does nothing."""
    return None
