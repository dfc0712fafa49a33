"""Token usage and cost: one record for every provider and agent CLI.

* ``Usage`` - the record a finding carries (``Usage.to_dict()`` in ``Result.usage``);
* ``normalize`` - any provider's or agent's usage report as a Usage;
* ``parse_agent_output`` - the answer, usage and error in the stdout of Claude Code,
  Gemini CLI, Codex, or swarmstream's own JSON object;
* ``PriceTable`` - computes the cost of usage reported without one;
* ``metering`` / ``spend`` - what a failed attempt spent.
"""

from swarmstream.usage.agents import (
    CLAUDE,
    CODEX,
    GEMINI,
    OBJECT,
    AgentOutput,
    parse_agent_output,
    usage_so_far,
)
from swarmstream.usage.core import (
    COMPUTED,
    EMPTY,
    MIXED,
    REPORTED,
    Usage,
    normalize,
    token_counts,
    total,
)
from swarmstream.usage.meter import Meter, current_meter, metering, spend
from swarmstream.usage.prices import Price, PriceTable

__all__ = [
    "CLAUDE",
    "CODEX",
    "COMPUTED",
    "EMPTY",
    "GEMINI",
    "MIXED",
    "OBJECT",
    "REPORTED",
    "AgentOutput",
    "Meter",
    "Price",
    "PriceTable",
    "Usage",
    "current_meter",
    "metering",
    "normalize",
    "parse_agent_output",
    "spend",
    "token_counts",
    "total",
    "usage_so_far",
]
