"""Gives the right answer but cites a line that does not exist in the document."""

import standin

text = standin.task()
hit = standin.best_line(text)
assert hit is not None, "bad_line needs a context that holds the answer"
path, n, line = hit
code = standin.CODE.search(line)
assert code is not None
standin.emit(
    {
        "answer": f"The code is {code.group(0)}.",
        "rationale": "from memory",
        "confidence": 0.9,
        "found": True,
        "citations": [f'{path}:{n + 5000} "{code.group(0)}"'],
    }
)
