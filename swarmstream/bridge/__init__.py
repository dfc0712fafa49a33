"""Bridges between a swarm and the buses agents already use: ``swarmstream bridge``.

``jsonl``: the seed's JSON-lines bus file (``JsonlBridge``)."""

from swarmstream.bridge.bridge import BridgeOptions, BridgeSummary, JsonlBridge, bridge_name

__all__ = ["BridgeOptions", "BridgeSummary", "JsonlBridge", "bridge_name"]
