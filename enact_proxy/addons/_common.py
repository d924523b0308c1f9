"""Small pieces the addons share: metadata keys and decision headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from enact_proxy.engine import Verdict
from enact_proxy.models import Decision

CALL = "enact.call"
WIRE = "enact.wire"
ACTIONS = "enact.actions"
REFUSAL = "enact.refusal"
VERDICTS = "enact.verdicts"
TICKETS = "enact.tickets"
JUDGEMENT = "enact.judgement"
PASSTHROUGH = "enact.passthrough"

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
