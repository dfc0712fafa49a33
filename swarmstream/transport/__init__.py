"""The transport layer: the only code that sends Redis commands.

It speaks in domain objects (tasks, findings, dead letters, worker infos) and
bytes; nothing above it knows a key name or a command.
"""

from swarmstream.transport.connection import connect, server_version
from swarmstream.transport.streams import Streams

__all__ = ["Streams", "connect", "server_version"]
