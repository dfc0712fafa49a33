"""An incremental RESP2/RESP3 frame scanner: where do the top-level frames end?

It does not decode values; it only follows the framing of a byte stream so that a
caller (the fault-injecting proxy, :mod:`swarmstream.netproxy`) can cut a server's
reply stream into whole replies, however the stream was split into chunks::

    scanner = RespScanner()
    for chunk in chunks:
        ends = scanner.feed(chunk)  # offsets in `chunk` just past each complete frame

Types handled: simple ``+ - : _ # , (``, bulk ``$ ! =`` (with the ``$-1`` null),
aggregates ``* ~ >`` (with the ``*-1`` null) and ``%`` (2n elements), and
attributes ``|`` which precede a value and are part of the same frame, at the top
level or nested. RESP3 streamed strings and aggregates (``$?``/``*?``), which Redis
never sends, raise :class:`RespError`.
"""

from __future__ import annotations

_SIMPLE = frozenset(b"+-:_#,(")
_BULK = frozenset(b"$!=")
_AGGREGATE = frozenset(b"*~>")
_MAP = ord("%")
_ATTRIBUTE = ord("|")


class RespError(ValueError):
    """The bytes are not a RESP stream the scanner understands."""


class RespScanner:
    """Finds frame boundaries in a RESP byte stream fed in arbitrary chunks."""

    __slots__ = ("_bulk", "_line", "_stack", "_started")

    def __init__(self) -> None:
        self._line = bytearray()  # a header line cut by the end of a chunk
        self._bulk = 0  # payload bytes (CRLF included) of a bulk string still to skip
        # The open aggregates, innermost last: [elements still expected, is an attribute].
        self._stack: list[list[int]] = []
        self._started = False  # some bytes of the current frame have been seen

    @property
    def at_boundary(self) -> bool:
        """True between frames: everything fed so far ends with a complete frame."""
        return not self._started

    def feed(self, data: bytes) -> list[int]:
        """Scans ``data`` (the stream's next bytes); returns the offsets in ``data``
        just past every top-level frame that ends in it, in order."""
        ends: list[int] = []
        pos, size = 0, len(data)
        while pos < size:
            self._started = True
            if self._bulk:
                step = min(self._bulk, size - pos)
                self._bulk -= step
                pos += step
                if self._bulk == 0 and self._element_done():
                    ends.append(pos)
                continue
            eol = data.find(b"\n", pos)
            if eol < 0:
                self._line += data[pos:]
                break
            if self._line:
                self._line += data[pos:eol]
                line = bytes(self._line)
                self._line.clear()
            else:
                line = data[pos:eol]
            pos = eol + 1
            if self._header(line):
                ends.append(pos)
        return ends

    def _header(self, line: bytes) -> bool:
        """Takes a header line (up to its LF); True when it completes a frame."""
        if len(line) < 2 or line[-1] != 0x0D:  # a type byte and the CR at least
            raise RespError(f"malformed RESP line {line[:40]!r}")
        kind = line[0]
        if kind in _SIMPLE:
            return self._element_done()
        count = self._length(line)
        if kind in _BULK:
            if count < 0:
                return self._element_done()
            self._bulk = count + 2
            return False
        if kind == _ATTRIBUTE:
            if count > 0:
                self._stack.append([2 * count, 1])
            return False  # an attribute is followed by the value it describes
        if kind == _MAP:
            count *= 2
        elif kind not in _AGGREGATE:
            raise RespError(f"unknown RESP type {line[:40]!r}")
        if count <= 0:
            return self._element_done()
        self._stack.append([count, 0])
        return False

    @staticmethod
    def _length(line: bytes) -> int:
        try:
            return int(line[1:-1])
        except ValueError:
            raise RespError(f"bad RESP length in {line[:40]!r}") from None

    def _element_done(self) -> bool:
        """One value is complete; True when that completes a top-level frame."""
        stack = self._stack
        while stack:
            top = stack[-1]
            top[0] -= 1
            if top[0]:
                return False
            stack.pop()
            if top[1]:  # a finished attribute is not an element of its parent
                return False
        self._started = False
        return True
