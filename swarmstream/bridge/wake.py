"""A wake-up hint when a file may have changed: Linux inotify on its folder.

The bridge polls its file at a fixed interval whatever happens; this only lets it
look at once when something in the file's folder was written, created, renamed or
deleted. Correctness never depends on it (an event lost, a platform without
inotify, a network file system whose remote writes raise no event: the poll still
finds the lines), so every failure here just means "poll only".
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# <sys/inotify.h>
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x8, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_MASK |= IN_DELETE_SELF | IN_MOVE_SELF


class FolderWatch:
    """Calls ``on_change`` (in the event loop) when the folder of ``path`` changes."""

    def __init__(self, path: Path, on_change: Callable[[], None]) -> None:
        self.folder = os.path.dirname(os.path.abspath(path)) or "."
        self.on_change = on_change
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Start watching; False where inotify is not available (poll only)."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            if int(libc.inotify_add_watch(fd, os.fsencode(self.folder), _MASK)) < 0:
                err = ctypes.get_errno()
                os.close(fd)
                raise OSError(err, f"inotify_add_watch {self.folder}")
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(fd, self._drain)
        except (OSError, AttributeError) as exc:
            log.info("no inotify on %s (%s): polling only", self.folder, exc)
            return False
        self._fd = fd
        return True

    def _drain(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._fd, 65536):
                pass
        self.on_change()

    def close(self) -> None:
        if self._fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
