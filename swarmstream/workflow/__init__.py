"""Pass workflows: passes of tasks over a memory shard, described in TOML, run by a
resumable coordinator (``WorkflowRunner``).

``model`` holds the frozen model, the loader and the task planner; ``runner``
posts each pass, waits for its findings and synthesizes them on the shard.
"""

from swarmstream.workflow.model import (
    PassSpec,
    Workflow,
    WorkflowAborted,
    WorkflowError,
    load_workflow,
)
from swarmstream.workflow.runner import PassSummary, Progress, WorkflowRunner, WorkflowSummary

__all__ = [
    "PassSpec",
    "PassSummary",
    "Progress",
    "Workflow",
    "WorkflowAborted",
    "WorkflowError",
    "WorkflowRunner",
    "WorkflowSummary",
    "load_workflow",
]
