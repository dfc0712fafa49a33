"""Composes an answer from the numbered passages on stdin: cites the passage holding a
code by number (with a quote), the code's line inside it (with a quote), a line inside
it with a quote that is not there, and a source that is no passage at all."""

import json
import re
import sys

text = sys.stdin.read()
passages: list[tuple[int, str, list[str]]] = []
for line in text.splitlines():
    head = re.match(r"^\[(\d+)\] (\S+) \(", line)
    if head:
        passages.append((int(head.group(1)), head.group(2), []))
    elif line.startswith("    ") and passages:
        passages[-1][2].append(line[4:])
for n, source, lines in passages:
    for i, row in enumerate(lines):
        code = re.search(r"\b\d{4}-[A-Z]+\b", row)
        if code:
            path, span = source.rsplit(":", 1)
            first = int(span.split("-")[0])
            print(
                json.dumps(
                    {
                        "answer": code.group(0),
                        "rationale": f"passage {n} names it",
                        "confidence": 0.8,
                        "found": True,
                        "citations": [
                            {"source": f"[{n}]", "quote": code.group(0)},
                            {"source": f"{path}:{first + i}", "quote": row.strip()},
                            f'{path}:{first} "a sentence nobody wrote"',
                            "elsewhere.md:3",
                        ],
                    }
                )
            )
            sys.exit(0)
print(json.dumps({"answer": "", "found": False, "confidence": 0.5, "citations": []}))
