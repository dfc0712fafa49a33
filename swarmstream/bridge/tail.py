"""Following a file that other processes append lines to, as ``tail -F`` does.

``Tail.poll`` returns the complete lines appended since the last call, each with its
generation and byte range, and tells whether it reached the end of the file. It
keeps the file open, so a file renamed away (rotation) is read to its end before
the new file at the path is opened; a file that shrank below what was read
(truncation) is read again from its start. Either starts a new generation at
offset 0. As with ``tail -F``, a file truncated and refilled past the offset read
between two looks is not noticed as truncated. A line longer than ``max_line`` is
never held in memory: it comes back without its bytes, to be reported and skipped.

Nothing here talks to Redis; the position to resume from is given by the caller.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from swarmstream.errors import ConfigError
from swarmstream.transport.bridge_state import FilePosition

log = logging.getLogger(__name__)

#: bytes read per system call
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line: ``data`` without its newline, or None with a ``problem``
    (too long, or the unfinished end of a file that was rotated or truncated)."""

    gen: int
    start: int
    end: int
    data: bytes | None
    problem: str | None = None


class Tail:
    """Reads the lines appended to ``path``, from a saved position on."""

    def __init__(
        self,
        path: Path,
        position: FilePosition | None,
        max_line: int,
        from_end: bool = False,
    ) -> None:
        self.path = path
        self.max_line = max_line
        self.position = position or FilePosition()
        self._fresh = position is None
        self._from_end = from_end
        self._fd: int | None = None
        self._read_at = self.position.offset  # file offset of the next byte to read
        self._buf = bytearray()  # the unfinished line, while it is short enough
        self._skipping = False  # the unfinished line is too long: its bytes are dropped
        #: why each new generation started ("rotated", "truncated"), for the caller
        self.resets: list[str] = []

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def poll(self, max_lines: int = 1000) -> tuple[list[Line], bool]:
        """The complete lines appended since the last call (about ``max_lines`` at
        most) and whether the end of the file was reached."""
        if self._fd is None and not self._open():
            return [], True
        assert self._fd is not None
        lines: list[Line] = []
        while len(lines) < max_lines:
            chunk = os.pread(self._fd, CHUNK, self._read_at)
            if not chunk:
                break
            self._take(chunk, lines)
        if len(lines) >= max_lines:
            return lines, False
        return lines, self._settled(lines)

    # -- the file ------------------------------------------------------------

    def _open(self) -> bool:
        """Open the file at the path and find where to start in it; False if there
        is no file yet."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigError(f"cannot read the bus file {self.path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ConfigError(f"the bus file {self.path} is not a regular file")
        self._fd = fd
        pos = self.position
        if self._fresh:  # first start of this bridge
            self._fresh = False
            offset = st.st_size if self._from_end else 0
            self._move(FilePosition(st.st_dev, st.st_ino, 0, offset))
        elif (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
            self._new_generation("rotated", st)
        elif st.st_size < pos.offset:
            self._new_generation("truncated", st)
        return True

    def _settled(self, lines: list[Line]) -> bool:
        """At the end of the open file: True if the path still names it and it did
        not shrink; otherwise move to the new file or generation (False)."""
        assert self._fd is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True  # renamed away, the new file not there yet: keep this one
        if (st.st_dev, st.st_ino) != (self.position.dev, self.position.ino):
            self._drop_unfinished(lines, "rotated")
            os.close(self._fd)
            self._fd = None
            return not self._open()
        if os.fstat(self._fd).st_size < self._read_at:
            self._drop_unfinished(lines, "truncated")
            self._new_generation("truncated", os.fstat(self._fd))
            return False
        return True

    def _new_generation(self, why: str, st: os.stat_result) -> None:
        log.warning("%s was %s: reading it from the start", self.path, why)
        self.resets.append(why)
        self._move(FilePosition(st.st_dev, st.st_ino, self.position.gen + 1, 0))

    def _move(self, position: FilePosition) -> None:
        self.position = position
        self._read_at = position.offset
        self._buf.clear()
        self._skipping = False

    def _drop_unfinished(self, lines: list[Line], why: str) -> None:
        """The old file's last line never got its newline: report it."""
        pos = self.position
        if self._read_at > pos.offset:
            problem = f"unfinished line at the end of a file that was {why}"
            lines.append(Line(pos.gen, pos.offset, self._read_at, None, problem))

    # -- lines ---------------------------------------------------------------

    def _take(self, chunk: bytes, lines: list[Line]) -> None:
        """Split a chunk read at ``_read_at`` into lines (the unfinished one is kept)."""
        base = self._read_at
        self._read_at += len(chunk)
        gen, start = self.position.gen, self.position.offset
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                if not self._skipping:
                    self._buf += chunk[pos:]
                    if len(self._buf) > self.max_line:
                        self._skipping = True
                        self._buf.clear()
                break
            end = base + nl + 1
            data: bytes | None = None
            if not self._skipping:
                data = bytes(self._buf) + chunk[pos:nl] if self._buf else chunk[pos:nl]
                self._buf.clear()
                if len(data) > self.max_line:
                    data = None
            problem = None if data is not None else f"line longer than {self.max_line} bytes"
            lines.append(Line(gen, start, end, data, problem))
            self._skipping = False
            start, pos = end, nl + 1
        self.position = replace(self.position, offset=start)
