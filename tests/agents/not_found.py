"""Says the context does not answer the question."""

import standin

standin.task()
standin.emit(
    {
        "answer": "",
        "rationale": "nothing in this shard names the project",
        "confidence": 0.7,
        "found": False,
        "citations": [],
    }
)
