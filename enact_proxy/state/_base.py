"""What both stores share: the check-and-claim algorithm and the approvals, written once against a
small transaction interface (:class:`Tx`) that each store implements with its own atomicity."""

from __future__ import annotations

import json
import logging
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from enact_proxy.state.approvals import Approval, ApprovalNotPending
from enact_proxy.state.claims import Claim, Conflict, Limit, Unique, UseGrant

log = logging.getLogger("enact_proxy.state")

# Limit claims are kept a little past their window so a longer window configured later still
# finds them; pruning is housekeeping, never what decides.
PRUNE_GRACE = timedelta(days=1)
PRUNE_EVERY = 500  # claims between two prunes
MAX_LISTED = 500

# Every schema step, in order; the stores record how many they applied. `?` placeholders throughout.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS enact_claims (key TEXT NOT NULL, kind TEXT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION, owner TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS enact_claims_key ON enact_claims (key, kind, at)",
        "CREATE INDEX IF NOT EXISTS enact_claims_owner ON enact_claims (owner)",
    ],
    [
        "CREATE TABLE IF NOT EXISTS enact_approvals (id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
        "status TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, payload TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, decided_by TEXT, "
        "decided_at DOUBLE PRECISION, reason TEXT, used_at DOUBLE PRECISION)",
        "CREATE INDEX IF NOT EXISTS enact_approvals_digest ON enact_approvals (digest, created_at)",
        "CREATE INDEX IF NOT EXISTS enact_approvals_status ON enact_approvals (status, created_at)",
    ],
]
_APPROVAL_COLUMNS = ("id, digest, status, actor, action, payload, created_at, expires_at, decided_by, decided_at, "
                     "reason, used_at")


class Tx(Protocol):
    """One open transaction of a store; SQL uses ``?`` placeholders."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows it changed."""
        ...

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Rollback(Exception):
    """Raised inside a transaction to undo it (a claim that does not fit records nothing)."""


class SqlStore(ABC):
    url: str
    # Called with each approval this store newly made pending (after it committed); the sidecar
    # points it at the webhook (SPEC §8). It must return at once: it runs on the deciding thread.
    on_new_approval: Callable[[Approval], None] | None = None

    def __init__(self) -> None:
        self._claims_since_prune = 0

    @abstractmethod
    def _tx(self, lock_keys: Sequence[str] = ()) -> AbstractContextManager[Tx]:
        """A transaction that commits on success, rolls back on any exception (``Rollback`` is
        swallowed), holds every ``lock_keys`` lock exclusively, and turns store failures into
        ``StateStoreError`` naming the store."""

    @abstractmethod
    def close(self) -> None: ...

    # -- claims --------------------------------------------------------------------------------
    def claim(self, claims: Sequence[Claim], *, owner: str, now: datetime, enforce: bool = True) -> Conflict | None:
        conflict: Conflict | None = None
        with self._tx(sorted({_lock_key(c) for c in claims})) as tx:
            conflict = check(claims, now, tx)
            if conflict is not None and enforce:
                raise Rollback  # a grant used by an earlier claim of this request is not used after all
            tx.run_many("INSERT INTO enact_claims (key, kind, at, expires, owner) VALUES (?, ?, ?, ?, ?)",
                        rows(claims, owner, now))
            self._claims_since_prune += 1
            if self._claims_since_prune >= PRUNE_EVERY:
                self._claims_since_prune = 0
                tx.run("DELETE FROM enact_claims WHERE expires IS NOT NULL AND expires < ?", (now.timestamp(),))
        return conflict

    def release(self, owner: str) -> None:
        with self._tx() as tx:
            # A grant this owner used is spent for good: an approval is single use even if the upstream refused.
            tx.run("DELETE FROM enact_claims WHERE owner = ? AND kind <> 'grant'", (owner,))

    def ping(self) -> None:
        with self._tx() as tx:
            tx.query("SELECT 1")

    # -- approvals -----------------------------------------------------------------------------
    def request_approval(self, *, digest: str, actor: str, action: str, payload: dict[str, Any], now: datetime,
                         expires: timedelta) -> Approval:
        """The pending approval for ``digest``, made now unless one is already pending."""
        with self._tx([f"approval:{digest}"]) as tx:
            found = _approvals(tx, "WHERE digest = ? AND status = 'pending' AND expires_at > ? "
                                   "ORDER BY created_at DESC LIMIT 1", (digest, now.timestamp()))
            if found:
                return found[0]
            approval = Approval(id=str(uuid.uuid4()), digest=digest, status="pending", actor=actor, action=action,
                                payload=payload, created_at=now, expires_at=now + expires)
            tx.run(f"INSERT INTO enact_approvals ({_APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   approval.row())
        self._announce(approval)  # committed and new: tell whoever listens (the webhook)
        return approval

    def _announce(self, approval: Approval) -> None:
        """Call ``on_new_approval``; it must not block, and its failure never fails the decision."""
        hook = self.on_new_approval
        if hook is None:
            return
        try:
            hook(approval)
        except Exception:  # noqa: BLE001 - a notice is best effort; the approval stands
            log.exception("announcing new approval %s failed", approval.id)

    def latest_approval(self, digest: str) -> Approval | None:
        with self._tx() as tx:
            found = _approvals(tx, "WHERE digest = ? ORDER BY created_at DESC LIMIT 1", (digest,))
        return found[0] if found else None

    def get_approval(self, approval_id: str) -> Approval | None:
        with self._tx() as tx:
            found = _approvals(tx, "WHERE id = ?", (approval_id,))
        return found[0] if found else None

    def list_approvals(self, status: str | None = None, now: datetime | None = None) -> list[Approval]:
        with self._tx() as tx:
            if status is None:
                found = _approvals(tx, f"ORDER BY created_at DESC LIMIT {MAX_LISTED}", ())
            else:
                found = _approvals(tx, f"WHERE status = ? ORDER BY created_at DESC LIMIT {MAX_LISTED}", (status,))
        moment = now or datetime.now(UTC)
        listed = [a.as_of(moment) for a in found]
        return [a for a in listed if status is None or a.status == status]

    def decide_approval(self, approval_id: str, *, approve: bool, by: str, reason: str, now: datetime,
                        grant_for: timedelta | None = None) -> Approval:
        """Approve or deny a pending approval; ApprovalNotPending otherwise. A grant is valid for
        ``grant_for``, by default as long as the pending approval was (``expires_minutes``)."""
        with self._tx([f"grant:{approval_id}"]) as tx:
            found = _approvals(tx, "WHERE id = ?", (approval_id,))
            if not found or found[0].as_of(now).status != "pending":
                raise ApprovalNotPending(approval_id, found[0].as_of(now).status if found else None)
            status = "approved" if approve else "denied"
            lifetime = grant_for if grant_for is not None else found[0].expires_at - found[0].created_at
            expires_at = (now + lifetime) if approve else found[0].expires_at
            tx.run("UPDATE enact_approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ?, expires_at = ? "
                   "WHERE id = ?", (status, by, now.timestamp(), reason, expires_at.timestamp(), approval_id))
            found = _approvals(tx, "WHERE id = ?", (approval_id,))
        return found[0]


    def reopen_approval(self, approval_id: str) -> None:
        """Undo a decision whose receipt could not be written: approved or denied becomes pending again;
        a grant already used stays used."""
        with self._tx([f"grant:{approval_id}"]) as tx:
            tx.run("UPDATE enact_approvals SET status = 'pending', decided_by = NULL, decided_at = NULL, "
                   "reason = NULL WHERE id = ? AND status IN ('approved', 'denied')", (approval_id,))


def _lock_key(claim: Claim) -> str:
    return f"grant:{claim.approval_id}" if isinstance(claim, UseGrant) else claim.key


def check(claims: Sequence[Claim], now: datetime, tx: Tx) -> Conflict | None:
    """The first claim that does not fit, counting what the store holds and this request's earlier claims.
    A :class:`UseGrant` is spent here, inside the transaction (undone if a later claim does not fit)."""
    in_request: Counter[str] = Counter()
    uniques: set[str] = set()
    at = now.timestamp()
    for index, claim in enumerate(claims):
        if isinstance(claim, Limit):
            earlier = in_request[claim.key]
            found = tx.query("SELECT count(*) FROM enact_claims WHERE key = ? AND kind = 'limit' AND at > ?",
                             (claim.key, (now - claim.window).timestamp()))
            held = int(found[0][0]) + earlier
            if held + 1 > claim.max:
                return Conflict(index=index, count=held, in_request=earlier > 0)
            in_request[claim.key] += 1
        elif isinstance(claim, Unique):
            if claim.key in uniques:
                return Conflict(index=index, count=1, in_request=True)
            if tx.query("SELECT 1 FROM enact_claims WHERE key = ? AND kind = 'unique' LIMIT 1", (claim.key,)):
                return Conflict(index=index, count=1, in_request=False)
            uniques.add(claim.key)
        elif isinstance(claim, UseGrant):
            # RETURNING, not a row count: a pipelined transaction has its results only once fetched.
            used = tx.query("UPDATE enact_approvals SET status = 'used', used_at = ? "
                            "WHERE id = ? AND status = 'approved' AND expires_at > ? RETURNING id",
                            (at, claim.approval_id, at))
            if len(used) != 1:
                return Conflict(index=index, count=1, in_request=False)
        else:  # pragma: no cover - the engine only builds these kinds
            raise TypeError(f"not a claim: {type(claim).__name__}")
    return None


def rows(claims: Sequence[Claim], owner: str, now: datetime) -> list[tuple[Any, ...]]:
    at = now.timestamp()
    out: list[tuple[Any, ...]] = []
    for claim in claims:
        if isinstance(claim, Limit):
            out.append((claim.key, "limit", at, at + (claim.window + PRUNE_GRACE).total_seconds(), owner))
        elif isinstance(claim, Unique):
            out.append((claim.key, "unique", at, None, owner))
        else:  # a grant: spent in enact_approvals; the row only says which request spent it
            out.append((f"grant:{claim.approval_id}", "grant", at, at + PRUNE_GRACE.total_seconds(), owner))
    return out


def _approvals(tx: Tx, where: str, params: Sequence[Any]) -> list[Approval]:
    return [Approval.from_row(row) for row in tx.query(f"SELECT {_APPROVAL_COLUMNS} FROM enact_approvals {where}",
                                                       params)]


def dumps(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def iter_migrations(applied: int) -> Iterator[tuple[int, list[str]]]:
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version > applied:
            yield version, statements
