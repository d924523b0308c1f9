"""What stateful policies ask the state store for: claims, checked and recorded in one atomic step.

A policy never reads a counter and later adds to it (two requests would both read "2 of 3" and both
pass). It states what the action *takes*:

- :class:`Limit` — one unit of a budget: at most ``max`` claims on ``key`` within ``window``;
- :class:`Unique` — the key itself: at most one holder, ever, until released.

The engine gathers every claim of every action of a request and hands them to the store at once:
either all fit (counting the earlier claims of the same request) and all are recorded, or none is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Limit:
    """At most ``max`` claims on ``key`` in any ``window``.

    ``message`` explains a refusal; ``{count}`` (claims already held, this request's included) and
    ``{max}`` are filled in.
    """

    key: str
    max: int
    window: timedelta
    message: str = "{count} claims on this key in the window (max {max})"

    def __post_init__(self) -> None:
        if self.max < 0:
            raise ValueError("Limit.max must be >= 0")
        if self.window <= timedelta(0):
            raise ValueError("Limit.window must be positive")


@dataclass(frozen=True)
class Unique:
    """``key`` may be held once: the second claim is refused until the first is released."""

    key: str
    message: str = "already claimed"


@dataclass(frozen=True)
class UseGrant:
    """Spend the approved grant ``approval_id`` (single use): fits only while it is approved, unused
    and unexpired. Stated by ``require_approval``; spent in the same atomic step as the other claims."""

    approval_id: str
    approved_by: str = ""
    message: str = "the approval was already used or has expired"

    @property
    def key(self) -> str:
        return f"grant:{self.approval_id}"


Claim = Limit | Unique | UseGrant


@dataclass(frozen=True)
class Conflict:
    """Why a set of claims was refused: the first claim (by position) that did not fit."""

    index: int
    count: int  # claims already held on its key (a Limit), or 1 (a Unique)
    in_request: bool  # the claims it collided with include earlier ones of the same request

    def explain(self, claim: Claim) -> str:
        text = claim.message.format(count=self.count, max=claim.max) if isinstance(claim, Limit) else claim.message
        return text + (" (counting this request)" if self.in_request else "")


class StateStoreError(Exception):
    """The store could not be reached or answered an error; the message names the store, never its password."""


__all__ = ["Claim", "Conflict", "Limit", "StateStoreError", "Unique", "UseGrant"]
