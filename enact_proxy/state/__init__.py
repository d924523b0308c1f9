"""State that holds under batches, concurrency and many sidecars (SPEC §7).

Stateful policies state *claims* (:class:`Limit`, :class:`Unique`); the engine hands every claim of a
request to the store, which checks and records them in one atomic step (:meth:`StateStore.claim`).

``state.url`` picks the store: ``sqlite:///REL`` (relative to the config's folder) or
``sqlite:////ABS`` for the embedded SQLite file that sidecars on one host may share, and
``postgresql://user@host/db`` for a fleet across hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from enact_proxy.state.approvals import Approval, ApprovalNotPending, approval_digest
from enact_proxy.state.claims import Claim, Conflict, Limit, StateStoreError, Unique, UseGrant
from enact_proxy.state.sqlite import SqliteStateStore


class StateStore(Protocol):
    url: str  # printable: never carries a password
    on_new_approval: Callable[[Approval], None] | None  # told of each approval made pending (the webhook)

    def claim(self, claims: Sequence[Claim], *, owner: str, now: datetime, enforce: bool = True) -> Conflict | None:
        """Record every claim under ``owner`` if all fit, else record none and return the first that
        does not. With ``enforce=False`` (shadow mode) record them all anyway and still report."""
        ...

    def release(self, owner: str) -> None:
        """Forget ``owner``'s claims (the upstream refused the action)."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...

    # approvals (SPEC §8)
    def request_approval(self, *, digest: str, actor: str, action: str, payload: dict[str, Any], now: datetime,
                         expires: timedelta) -> Approval: ...

    def latest_approval(self, digest: str) -> Approval | None: ...

    def get_approval(self, approval_id: str) -> Approval | None: ...

    def list_approvals(self, status: str | None = None, now: datetime | None = None) -> list[Approval]: ...

    def decide_approval(self, approval_id: str, *, approve: bool, by: str, reason: str, now: datetime,
                        grant_for: timedelta | None = None) -> Approval: ...

    def reopen_approval(self, approval_id: str) -> None: ...


def open_store(url: str, *, base_dir: Path | str = ".", password: str | None = None,
               timeout: float = 2.0) -> StateStore:
    """The store ``url`` names. Raises ValueError for a URL it does not understand."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"state.url: expected sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
        rest = rest[1:]
        if rest == ":memory:":
            return SqliteStateStore(":memory:", timeout=timeout, url=url)
        path = Path(rest) if rest.startswith("/") else Path(base_dir) / rest
        return SqliteStateStore(path, timeout=timeout, url=url)
    if url.startswith(("postgresql://", "postgres://")):
        from enact_proxy.state.postgres import PostgresStateStore

        return PostgresStateStore(url, password=password, timeout=timeout)
    raise ValueError(f"state.url: unknown scheme in {url.split('://')[0]!r}; use sqlite:/// or postgresql://")


__all__ = ["Approval", "ApprovalNotPending", "Claim", "Conflict", "Limit", "SqliteStateStore", "StateStore",
           "StateStoreError", "Unique", "UseGrant", "approval_digest", "open_store"]
