"""Memory shards: context, collection, synthesis and scatter-gather."""

from swarmstream.context import (
    Context,
    Document,
    DocumentPart,
    Manifest,
    estimate_tokens,
    read_paths,
)
from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.scatter import Answer, Passage, ask, load_shards, split_corpus
from swarmstream.shard.shard import MemoryShard, SwarmMemoryShard
from swarmstream.shard.synthesis import (
    HandlerSynthesizer,
    Knowledge,
    KnowledgeItem,
    MergeSynthesizer,
    Synthesizer,
)

__all__ = [
    "Answer",
    "Context",
    "ContextCache",
    "Document",
    "DocumentPart",
    "HandlerSynthesizer",
    "Knowledge",
    "KnowledgeItem",
    "Manifest",
    "MemoryShard",
    "MergeSynthesizer",
    "Passage",
    "SwarmMemoryShard",
    "Synthesizer",
    "ask",
    "estimate_tokens",
    "load_shards",
    "read_paths",
    "split_corpus",
]
