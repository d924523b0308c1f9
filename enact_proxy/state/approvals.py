"""A person's approval of one exact action (SPEC §8), as the state store keeps it.

An approval is bound to a digest: the SHA-256 of the canonical JSON of actor, action and payload.
It is ``pending`` until a person approves or denies it; an approval is a grant for exactly that
digest, ``used`` by the first identical retry (single use), and ``expired`` once ``expires_at`` passes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

STATUSES = ("pending", "approved", "denied", "used", "expired")


def approval_digest(actor: str, action: str, payload: Any) -> str:
    canonical = json.dumps({"actor": actor, "action": action, "payload": payload}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ApprovalNotPending(Exception):
    """Approving or denying an approval that is not pending (answered 409)."""

    def __init__(self, approval_id: str, status: str | None):
        self.approval_id, self.status = approval_id, status
        super().__init__(f"approval {approval_id} is {status or 'unknown'}, not pending")


@dataclass(frozen=True)
class Approval:
    id: str
    digest: str
    status: str
    actor: str
    action: str
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    used_at: datetime | None = None

    def as_of(self, now: datetime) -> Approval:
        """The status a reader sees at ``now``: a pending approval or an unused grant past its time is expired."""
        if self.status in ("pending", "approved") and now >= self.expires_at:
            return replace(self, status="expired")
        return self

    def to_json(self) -> dict[str, Any]:
        """The shape of ``GET /api/approvals`` (SPEC §8)."""
        return {"id": self.id, "status": self.status, "actor": self.actor, "action": self.action,
                "payload": self.payload, "digest": self.digest, "created_at": _iso(self.created_at),
                "expires_at": _iso(self.expires_at), "decided_by": self.decided_by, "reason": self.reason}

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.digest, self.status, self.actor, self.action,
                json.dumps(self.payload, sort_keys=True, ensure_ascii=False, default=str),
                self.created_at.timestamp(), self.expires_at.timestamp(), self.decided_by,
                self.decided_at.timestamp() if self.decided_at else None, self.reason,
                self.used_at.timestamp() if self.used_at else None)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Approval:
        (id_, digest, status, actor, action, payload, created, expires, decided_by, decided_at, reason, used) = row
        return cls(id=id_, digest=digest, status=status, actor=actor, action=action, payload=json.loads(payload),
                   created_at=_time(created), expires_at=_time(expires), decided_by=decided_by,
                   decided_at=_time(decided_at) if decided_at is not None else None, reason=reason,
                   used_at=_time(used) if used is not None else None)


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
