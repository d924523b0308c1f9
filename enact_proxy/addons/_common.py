"""Small pieces the addons share: metadata keys, decision headers, awaiting durable receipts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from enact_proxy.engine import Verdict
from enact_proxy.models import Decision

CALL = "enact.call"
WIRE = "enact.wire"
ACTIONS = "enact.actions"
REFUSAL = "enact.refusal"
VERDICTS = "enact.verdicts"
TICKETS = "enact.tickets"
PASSTHROUGH = "enact.passthrough"

T = TypeVar("T")


async def durable(future: Future[T]) -> T:
    return await asyncio.wrap_future(future)


def decision_headers(verdicts: Sequence[Verdict]) -> dict[str, str]:
    """``X-Enact-Decision`` (what the policies decided), ``X-Enact-Receipt`` and, in shadow, ``X-Enact-Mode``."""
    blocked = any(v.decision is Decision.BLOCK for v in verdicts)
    headers = {"X-Enact-Decision": "BLOCK" if blocked else "PASS",
               "X-Enact-Receipt": ",".join(v.run_id for v in verdicts)}
    if verdicts and verdicts[0].mode == "shadow":
        headers["X-Enact-Mode"] = "shadow"
    return headers



def strip_enact_headers(headers: Any) -> None:
    for name in [n for n in headers if n.lower().startswith("x-enact-")]:
        del headers[name]
