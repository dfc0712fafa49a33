"""swarmstream as an MCP server: an agent session (Claude Code, Gemini CLI, Codex)
coordinates the swarm and works in it as a worker, through tools.

- ``server``: the MCP server (``build_server``, ``serve``), stdio or streamable HTTP;
- ``tools``: the tools the agent calls, over the library API;
- ``desk``: the worker side of a session (claim, lease, report, fail, release), with
  ``ledger`` (what the session holds) and ``writes`` (dead letters, retries, releases);
- ``contexts``: a claimed task's shard context, inline or as a file;
- ``command``: the ``swarmstream mcp`` command.

Importing this package is cheap: the MCP SDK is imported by ``server`` and ``tools``.
"""

#: where ``swarmstream mcp --http`` listens by default
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: seconds without a tool call after which a session's claimed tasks go back
DEFAULT_HOLD = 600.0
