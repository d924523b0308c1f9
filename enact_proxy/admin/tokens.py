"""Named bearer tokens for the admin listener. The name is the person recorded on approvals.

Tokens come from ``admin.tokens`` (each read from its environment variable) or, without that list,
from ``certs/admin.token`` (made on first run, mode 0600, named ``admin``). Comparison is constant
time; a token is never logged, echoed or written to a receipt.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

TOKEN_FILE = "admin.token"
DEFAULT_NAME = "admin"


class AdminTokens:
    def __init__(self, tokens: Mapping[str, str]):
        if not tokens:
            raise ValueError("the admin listener needs at least one token")
        self._tokens = [(name, token.encode("utf-8")) for name, token in tokens.items()]

    @classmethod
    def load(cls, configured: list[tuple[str, str]], certs_dir: Path, environ: Mapping[str, str] = os.environ
             ) -> AdminTokens:
        """``configured`` is ``[(name, token_env)]`` from ``admin.tokens``; empty means ``certs/admin.token``."""
        if configured:
            tokens = {}
            for name, env in configured:
                value = environ.get(env, "").strip()
                if len(value) < 16:
                    raise ValueError(f"admin.tokens: {env} (for {name}) must hold a token of at least 16 characters")
                tokens[name] = value
            return cls(tokens)
        return cls({DEFAULT_NAME: read_or_create(certs_dir / TOKEN_FILE)})

    def who(self, authorization: str | None) -> str | None:
        """The name whose token ``Authorization: Bearer <token>`` carries, else None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        offered = authorization[len("Bearer "):].strip().encode("utf-8")
        found = None
        for name, token in self._tokens:  # every token compared, so timing says nothing about which matched
            if hmac.compare_digest(offered, token):
                found = name
        return found


def read_or_create(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
