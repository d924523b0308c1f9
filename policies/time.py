"""Time policies: act only inside a maintenance window."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from enact_proxy.models import PolicyResult, WorkflowContext
from enact_proxy.policy import factory, failed, passed, pure

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _whole_minutes(offset: timedelta | None) -> bool:
    return offset is not None and offset.seconds % 60 == 0


@factory
def within_maintenance_window(start: str = "09:00", end: str = "17:00", timezone: str = "UTC",  # type: ignore[no-untyped-def]
                              days: list[str] = list(DAYS)):  # noqa: B006
    """Only within [start, end) local time on ``days``; a window that crosses midnight belongs to the
    day it starts on (fri 22:00-02:00 covers Saturday 01:00)."""
    opens, closes = _parse_time(start), _parse_time(end)
    zone = ZoneInfo(timezone)
    allowed = frozenset(d.lower()[:3] for d in days)
    unknown = allowed - set(DAYS)
    if unknown:
        raise ValueError(f"unknown day(s) {sorted(unknown)}; use {list(DAYS)}")

    def in_window(local: datetime) -> bool:
        now, today = local.time(), DAYS[local.weekday()]
        if opens <= closes:
            return today in allowed and opens <= now < closes
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        return (today in allowed and now >= opens) or (yesterday in allowed and now < closes)

    def judged(local: datetime) -> PolicyResult:
        stamp = f"{DAYS[local.weekday()]} {local:%H:%M} {timezone}"
        if in_window(local):
            return passed(name, f"{stamp} is inside {start}-{end}")
        return failed(name, f"{stamp} is outside the window {start}-{end} on {','.join(sorted(allowed))}")

    name = "within_maintenance_window"
    # Every decision within one minute gets the same answer: kept for the last minute seen (a zone
    # offset with seconds — only historical LMT ones — would make a UTC minute straddle two local ones).
    # One (minute, result) pair, replaced whole: threads judging at once never see a half-updated one.
    last: list[tuple[Any, PolicyResult | None]] = [(None, None)]

    @pure
    def within_maintenance_window(ctx: WorkflowContext) -> PolicyResult:
        now = ctx.now
        minute = (now.replace(second=0, microsecond=0), now.tzinfo)
        seen, result = last[0]
        if result is not None and minute == seen:
            return result
        local = now.astimezone(zone)
        result = judged(local)
        if _whole_minutes(now.utcoffset()) and _whole_minutes(local.utcoffset()):
            last[0] = (minute, result)
        return result

    return within_maintenance_window
