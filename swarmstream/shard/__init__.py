"""Memory shards: context, collection, synthesis, workflows and scatter-gather."""

from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.context import Context, Document, Manifest, estimate_tokens
from swarmstream.shard.shard import MemoryShard, SwarmMemoryShard
from swarmstream.shard.synthesis import (
    HandlerSynthesizer,
    Knowledge,
    KnowledgeItem,
    MergeSynthesizer,
    Synthesizer,
)

__all__ = [
    "Context",
    "ContextCache",
    "Document",
    "HandlerSynthesizer",
    "Knowledge",
    "KnowledgeItem",
    "Manifest",
    "MemoryShard",
    "MergeSynthesizer",
    "SwarmMemoryShard",
    "Synthesizer",
    "estimate_tokens",
]
