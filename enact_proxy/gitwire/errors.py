"""The one exception every gitwire parser and analyser raises."""

from __future__ import annotations


class GitWireError(Exception):
    """Input that cannot be understood or judged; callers refuse (fail closed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
