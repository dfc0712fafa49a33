"""A shard's context: documents with provenance, stored as one text blob plus a
manifest, so that any passage can be cited as ``path:line`` or ``path:start-end``."""

from __future__ import annotations

import bisect
import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmstream.codec import pack, unpack
from swarmstream.errors import ConfigError

#: Characters per token, for the estimate shown next to every context.
CHARS_PER_TOKEN = 4
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".ruff_cache"}


def estimate_tokens(chars: int) -> int:
    """A model-agnostic estimate: about four characters per token."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass(frozen=True, slots=True)
class Document:
    """One source document inside a context blob: ``text[start:end]``.

    ``first_line`` is the line number of its first line in the original file: 1,
    unless the document is a later part of a file split across shards.
    """

    path: str
    start: int
    end: int
    first_line: int = 1


class DocumentPart(tuple[str, str]):
    """A ``(path, text)`` pair that is a part of a larger file, starting at line
    ``first_line`` of it, so citations into the part keep the file's line numbers.

    It unpacks and compares like a plain pair; ``build`` records the offset."""

    first_line: int

    def __new__(cls, path: str, text: str, first_line: int = 1) -> DocumentPart:
        if first_line < 1:
            raise ValueError("first_line must be at least 1")
        part = super().__new__(cls, (path, text))
        part.first_line = first_line
        return part

    def __getnewargs__(self) -> tuple[str, str, int]:
        return (self[0], self[1], self.first_line)  # copy and pickle keep the offset

    def __repr__(self) -> str:
        return f"DocumentPart({self[0]!r}, <{len(self[1])} chars>, first_line={self.first_line})"


@dataclass(frozen=True, slots=True)
class Manifest:
    """Describes one context version: its documents and sizes."""

    documents: tuple[Document, ...]
    chars: int
    tokens: int
    sha256: str
    created: float

    def to_bytes(self) -> bytes:
        return pack(
            {
                "docs": [_doc_row(d) for d in self.documents],
                "chars": self.chars,
                "tokens": self.tokens,
                "sha256": self.sha256,
                "created": self.created,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        m: dict[str, Any] = unpack(raw)
        return cls(
            documents=tuple(Document(*row) for row in m["docs"]),
            chars=int(m["chars"]),
            tokens=int(m["tokens"]),
            sha256=str(m["sha256"]),
            created=float(m["created"]),
        )


def _doc_row(d: Document) -> list[str | int]:
    """A document in the manifest: ``[path, start, end]``, plus ``first_line`` if not 1
    (manifests written before line offsets existed read back unchanged)."""
    row: list[str | int] = [d.path, d.start, d.end]
    return row if d.first_line == 1 else [*row, d.first_line]


def build(docs: Sequence[tuple[str, str]]) -> tuple[str, Manifest]:
    """Concatenate ``(path, text)`` pairs into one blob and describe it.

    A ``DocumentPart`` keeps the line numbers of the file it was cut from."""
    parts: list[str] = []
    documents: list[Document] = []
    pos = 0
    for item in docs:
        path, text = item
        first_line = item.first_line if isinstance(item, DocumentPart) else 1
        if text and not text.endswith("\n"):
            text += "\n"
        documents.append(Document(path, pos, pos + len(text), first_line))
        parts.append(text)
        pos += len(text)
    blob = "".join(parts)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    manifest = Manifest(
        tuple(documents), len(blob), estimate_tokens(len(blob)), digest, time.time()
    )
    return blob, manifest


def read_paths(
    paths: Iterable[str | Path], root: str | Path | None = None
) -> list[tuple[str, str]]:
    """Read files and directories (recursively, sorted) as ``(path, text)`` pairs.

    Paths are recorded relative to ``root`` (default: each argument's parent
    folder, so ``docs/`` gives ``docs/a.md``). Binary files are skipped.
    """
    out: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ConfigError(f"context path not found: {p}")
        base = Path(root) if root is not None else p.parent
        files = [p] if p.is_file() else sorted(_walk(p))
        for f in files:
            data = f.read_bytes()
            if b"\x00" in data[:4096]:
                continue
            rel = os.path.relpath(f, base)
            out.append((rel, data.decode("utf-8", "replace")))
    return out


def _walk(d: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = sorted(n for n in dirnames if n not in _SKIP_DIRS and not n.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


@dataclass(eq=False)
class Context:
    """A borrowed context version: the text, its documents, and citations.

    The text is decoded from the stored bytes on first use.
    """

    shard: str
    version: int
    blob: bytes
    manifest: Manifest
    _text: str | None = field(default=None, repr=False)
    _line_starts: dict[int, list[int]] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.blob.decode("utf-8")
        return self._text

    @property
    def tokens(self) -> int:
        return self.manifest.tokens

    @property
    def documents(self) -> tuple[Document, ...]:
        return self.manifest.documents

    def document_at(self, offset: int) -> int:
        """Index of the document holding character ``offset``."""
        starts = [d.start for d in self.manifest.documents]
        return max(0, bisect.bisect_right(starts, offset) - 1)

    def line_of(self, doc_index: int, offset: int) -> int:
        """Line number of ``offset`` in document ``doc_index``'s original file
        (1-based; a document that is a later part of a file starts past line 1)."""
        doc = self.manifest.documents[doc_index]
        starts = self._line_starts.get(doc_index)
        if starts is None:
            text = self.text
            starts = [doc.start]
            i = text.find("\n", doc.start, doc.end)
            while i != -1 and i + 1 < doc.end:
                starts.append(i + 1)
                i = text.find("\n", i + 1, doc.end)
            self._line_starts[doc_index] = starts
        return bisect.bisect_right(starts, offset) + doc.first_line - 1

    def cite(self, start: int, end: int) -> str:
        """Citation of the characters ``[start, end)``: ``path:line`` or ``path:a-b``."""
        i = self.document_at(start)
        doc = self.manifest.documents[i]
        a = self.line_of(i, start)
        b = self.line_of(i, max(start, min(end, doc.end) - 1))
        return f"{doc.path}:{a}" if a == b else f"{doc.path}:{a}-{b}"

    def document_text(self, index: int) -> str:
        d = self.manifest.documents[index]
        return self.text[d.start : d.end]
