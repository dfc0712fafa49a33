"""Answers with verified citations.

- ``citations``: parse citations (``path:12``, ``path:12-18``, with a quote) and check
  them against the shard context version they came from (``CitationChecker``).
- ``tasks``: tasks that record their shard's context version; the shard-answer
  prompt (question, context map, answer-object instructions).
- ``shard_answers``: the answer object a worker prints, parsed (``ShardAnswer``).
- ``merge``: shard answers grouped by agreement, scored, disagreements reported.
- ``consult``: ``ask_shards``, all of it end to end.
- ``compose``: ``compose_answer``, one worker composing an answer from passages.
"""

from swarmstream.answers.citations import (
    Citation,
    CitationCheck,
    CitationChecker,
    CitationStatus,
    ContextView,
    check_citation,
    parse_citation,
    parse_citations,
)
from swarmstream.answers.compose import ComposedAnswer, compose_answer, compose_task
from swarmstream.answers.consult import ask_shards
from swarmstream.answers.merge import (
    AnswerGroup,
    MergedAnswer,
    agreement,
    group_answers,
    merge_answers,
)
from swarmstream.answers.shard_answers import ShardAnswer, parse_answer, verify_answers
from swarmstream.answers.tasks import (
    ANSWER_FORMAT,
    answer_instructions,
    answer_tasks,
    finding_version,
    task_version,
    versioned_tasks,
)

__all__ = [
    "ANSWER_FORMAT",
    "AnswerGroup",
    "Citation",
    "CitationCheck",
    "CitationChecker",
    "CitationStatus",
    "ComposedAnswer",
    "ContextView",
    "MergedAnswer",
    "ShardAnswer",
    "agreement",
    "answer_instructions",
    "answer_tasks",
    "ask_shards",
    "check_citation",
    "compose_answer",
    "compose_task",
    "finding_version",
    "group_answers",
    "merge_answers",
    "parse_answer",
    "parse_citation",
    "parse_citations",
    "task_version",
    "verify_answers",
    "versioned_tasks",
]
