"""The check-and-claim algorithm both stores share; each store supplies the serialised transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from enact_proxy.state.claims import Claim, Conflict, Limit, Unique

# Limit claims are kept a little past their window so a longer window configured later still
# finds them; pruning is housekeeping, never what decides.
PRUNE_GRACE = timedelta(days=1)
PRUNE_EVERY = 500  # claims between two prunes


@dataclass(frozen=True)
class Row:
    key: str
    kind: str  # "limit" | "unique"
    at: float  # unix seconds
    expires: float | None  # None: held until released
    owner: str


def check(claims: Sequence[Claim], now: datetime, count_since: Callable[[str, float], int],
          unique_held: Callable[[str], bool]) -> Conflict | None:
    """The first claim that does not fit, counting what the store holds and this request's earlier claims."""
    in_request: Counter[str] = Counter()
    uniques: set[str] = set()
    for index, claim in enumerate(claims):
        if isinstance(claim, Limit):
            earlier = in_request[claim.key]
            held = count_since(claim.key, (now - claim.window).timestamp()) + earlier
            if held + 1 > claim.max:
                return Conflict(index=index, count=held, in_request=earlier > 0)
            in_request[claim.key] += 1
        elif isinstance(claim, Unique):
            if claim.key in uniques:
                return Conflict(index=index, count=1, in_request=True)
            if unique_held(claim.key):
                return Conflict(index=index, count=1, in_request=False)
            uniques.add(claim.key)
        else:  # pragma: no cover - the engine only builds the two kinds
            raise TypeError(f"not a claim: {type(claim).__name__}")
    return None


def rows(claims: Sequence[Claim], owner: str, now: datetime) -> list[Row]:
    at = now.timestamp()
    out = []
    for claim in claims:
        if isinstance(claim, Limit):
            out.append(Row(claim.key, "limit", at, at + (claim.window + PRUNE_GRACE).total_seconds(), owner))
        else:
            out.append(Row(claim.key, "unique", at, None, owner))
    return out
