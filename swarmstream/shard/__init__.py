"""Memory shards: context, collection, synthesis, workflows and scatter-gather."""

from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.context import (
    Context,
    Document,
    DocumentPart,
    Manifest,
    estimate_tokens,
    read_paths,
)
from swarmstream.shard.runner import PassSummary, Progress, WorkflowRunner, WorkflowSummary
from swarmstream.shard.scatter import Answer, Passage, ask, load_shards, split_corpus
from swarmstream.shard.shard import MemoryShard, SwarmMemoryShard
from swarmstream.shard.synthesis import (
    HandlerSynthesizer,
    Knowledge,
    KnowledgeItem,
    MergeSynthesizer,
    Synthesizer,
)
from swarmstream.shard.workflow import (
    PassSpec,
    Workflow,
    WorkflowAborted,
    WorkflowError,
    load_workflow,
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
    "PassSpec",
    "PassSummary",
    "Passage",
    "Progress",
    "SwarmMemoryShard",
    "Synthesizer",
    "Workflow",
    "WorkflowAborted",
    "WorkflowError",
    "WorkflowRunner",
    "WorkflowSummary",
    "ask",
    "estimate_tokens",
    "load_shards",
    "load_workflow",
    "read_paths",
    "split_corpus",
]
