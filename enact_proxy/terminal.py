"""Showing agent-written text on a terminal: one line, no control characters.

Payload values, branch names and the reasons that quote them are written by the agent; printed raw, a
newline would forge a line of its own and an escape sequence would recolour or rewrite the screen.
"""

from __future__ import annotations

import json


def printable(text: object, limit: int = 2000) -> str:
    """``text`` (cut at ``limit`` characters) with every non-printable character JSON-escaped."""
    text = str(text)[:limit]
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)
