"""The engine's decision pipeline as the sidecar's front doors (HTTP addons, git push, the Postgres
listener) run it on their event loop. Library mode runs the same engine calls synchronously.

1. :func:`judge` — the request's actions judged together and their claims taken; off the event loop
   whenever a policy may wait on a system lookup or the state store.
2. :func:`open_intents` — every pass made durable before anything is forwarded, all or none.
3. The front door forwards, then closes each ticket with what happened and calls
   ``engine.settle(judgement, status)``; or :func:`record_refusals` writes the BLOCK receipts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from enact_proxy.engine import Engine, Judgement, Verdict
from enact_proxy.models import ActionRequest, ActionResult
from enact_proxy.receipts.store import Ticket
from enact_proxy.receipts.waiting import durable

NOT_FORWARDED = {"outcome": "not forwarded"}
Lookup = Callable[[], Mapping[str, Any]]


class NotDurable(Exception):
    """An intent could not be made durable: the judgement is now BLOCK. ``opened`` names the run_ids
    whose receipts were written anyway (as not forwarded); the rest still need their BLOCK receipts."""

    def __init__(self, opened: set[str]):
        super().__init__("intent not durable")
        self.opened = opened


async def judge(engine: Engine, actions: Sequence[ActionRequest], lookup: Lookup | None = None) -> Judgement:
    """Judge a request. ``lookup`` builds the systems policies may ask; it is called only when some
    policy may need them, and then off the event loop together with the whole judgement."""
    if engine.may_block(actions):
        return await asyncio.to_thread(judge_now, engine, actions, lookup)
    return engine.judge_request(actions, {})


def judge_now(engine: Engine, actions: Sequence[ActionRequest], lookup: Lookup | None = None) -> Judgement:
    try:
        systems = lookup() if lookup is not None else {}
    except Exception as exc:  # noqa: BLE001 - no lookup, no pass
        return engine.refuse_request(actions, f"system lookup unavailable: {exc}")
    return engine.judge_request(actions, systems)


async def open_intents(engine: Engine, judgement: Judgement) -> list[Ticket]:
    """One durable intent per verdict, in order; raises :class:`NotDurable` (claims released, every
    verdict BLOCK with the reason) when any cannot be written: nothing is forwarded then."""
    futures = []
    failure: BaseException | None = None
    for verdict in judgement.verdicts:
        try:
            futures.append(engine.open(verdict))
        except Exception as exc:  # noqa: BLE001 - no receipt, no action
            failure = exc
            break
    tickets: list[Ticket] = []
    for future in futures:
        try:
            tickets.append(await durable(future))
        except Exception as exc:  # noqa: BLE001 - no receipt, no action
            failure = failure or exc
    if failure is None:
        return tickets
    engine.unclaim(judgement)
    close_unforwarded(engine, tickets)
    judgement.refuse(f"receipt could not be written: {failure}")
    raise NotDurable({t.run_id for t in tickets})


def close_unforwarded(engine: Engine, tickets: Sequence[Ticket]) -> None:
    for ticket in tickets:
        engine.close(ticket, [ActionResult(action="forward", success=False, output=NOT_FORWARDED)])


async def record_refusals(engine: Engine, verdicts: Sequence[Verdict],
                          skip: Collection[str] = ()) -> BaseException | None:
    """Write the BLOCK receipts (all of them, even when one fails); returns the first failure."""
    futures = [engine.record(v) for v in verdicts if v.run_id not in skip]
    error: BaseException | None = None
    for future in futures:
        try:
            await durable(future)
        except Exception as exc:  # noqa: BLE001 - refused either way; the caller says so
            error = error or exc
    return error


__all__ = ["NOT_FORWARDED", "NotDurable", "close_unforwarded", "judge", "judge_now", "open_intents",
           "record_refusals"]
