"""policies/time.py: maintenance windows with time zones, weekdays and midnight crossings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from policies.time import within_maintenance_window
from tests.conftest import make_context

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def _at(when: datetime, **params):
    return within_maintenance_window(**params)(make_context("github.push_commit", {"branch": "agent/x"}, now=when))


# 2024-01-15 is a Monday; Berlin is UTC+1 in January and UTC+2 in July.
CASES = [
    # (utc time, params, passed, reason substring)
    (datetime(2024, 1, 15, 10, 0, tzinfo=UTC), {"timezone": "UTC"}, True, "mon 10:00 UTC is inside 09:00-17:00"),
    (datetime(2024, 1, 15, 8, 30, tzinfo=UTC), {"timezone": "UTC"}, False, "mon 08:30 UTC is outside"),
    (datetime(2024, 1, 15, 8, 30, tzinfo=UTC), {"timezone": "Europe/Berlin"}, True, "mon 09:30 Europe/Berlin"),
    (datetime(2024, 1, 15, 16, 30, tzinfo=UTC), {"timezone": "UTC"}, True, "inside"),
    (datetime(2024, 1, 15, 16, 30, tzinfo=UTC), {"timezone": "Europe/Berlin"}, False, "mon 17:30 Europe/Berlin"),
    (datetime(2024, 7, 15, 7, 30, tzinfo=UTC), {"timezone": "Europe/Berlin"}, True, "mon 09:30 Europe/Berlin"),
    (datetime(2024, 1, 15, 17, 0, tzinfo=UTC), {"timezone": "UTC"}, False, "outside"),  # end is exclusive
    (datetime(2024, 1, 15, 9, 0, tzinfo=UTC), {"timezone": "UTC"}, True, "inside"),  # start is inclusive
    (datetime(2024, 1, 20, 10, 0, tzinfo=UTC), {"timezone": "UTC", "days": WEEKDAYS}, False,
     "sat 10:00 UTC is outside the window 09:00-17:00 on fri,mon,thu,tue,wed"),
    (datetime(2024, 1, 19, 10, 0, tzinfo=UTC), {"timezone": "UTC", "days": WEEKDAYS}, True, "fri 10:00"),
    # 23:30 UTC Sunday is 00:30 Monday in Berlin.
    (datetime(2024, 1, 14, 23, 30, tzinfo=UTC),
     {"start": "00:00", "end": "01:00", "timezone": "Europe/Berlin", "days": ["mon"]}, True, "mon 00:30"),
    (datetime(2024, 1, 14, 23, 30, tzinfo=UTC),
     {"start": "00:00", "end": "01:00", "timezone": "UTC", "days": ["mon"]}, False, "sun 23:30 UTC"),
]


@pytest.mark.parametrize(("when", "params", "ok", "reason"), CASES)
def test_window(when, params, ok, reason):
    result = _at(when, **params)
    assert result.passed is ok
    assert reason in result.reason
    assert result.policy == "within_maintenance_window"


FRIDAY_NIGHT = {"start": "22:00", "end": "02:00", "timezone": "UTC", "days": ["fri"]}
MIDNIGHT_CASES = [
    (datetime(2024, 1, 19, 23, 0, tzinfo=UTC), True),   # Friday 23:00
    (datetime(2024, 1, 20, 1, 0, tzinfo=UTC), True),    # Saturday 01:00: still Friday's window
    (datetime(2024, 1, 20, 2, 0, tzinfo=UTC), False),   # Saturday 02:00: closed
    (datetime(2024, 1, 21, 1, 0, tzinfo=UTC), False),   # Sunday 01:00: Saturday has no window
    (datetime(2024, 1, 19, 1, 0, tzinfo=UTC), False),   # Friday 01:00: Thursday has no window
    (datetime(2024, 1, 19, 21, 59, tzinfo=UTC), False),  # Friday before it opens
    (datetime(2024, 1, 20, 22, 30, tzinfo=UTC), False),  # Saturday night
]


@pytest.mark.parametrize(("when", "ok"), MIDNIGHT_CASES)
def test_window_crossing_midnight_belongs_to_the_day_it_starts(when, ok):
    assert _at(when, **FRIDAY_NIGHT).passed is ok


def test_days_may_be_written_in_full_and_any_case():
    result = _at(datetime(2024, 1, 20, 10, 0, tzinfo=UTC), timezone="UTC", days=["Saturday"])
    assert result.passed


@pytest.mark.parametrize("params", [{"days": ["funday"]}, {"timezone": "Mars/Olympus"}, {"start": "9am"},
                                    {"end": "25:00"}, {"days": "mon"}])
def test_bad_parameters_raise_when_the_policy_is_made(params):
    with pytest.raises((ValueError, LookupError, ValidationError)):
        within_maintenance_window(**params)


def test_the_answer_kept_for_a_minute_follows_the_clock_across_the_edge():
    from datetime import UTC, datetime

    from policies.time import within_maintenance_window
    from tests.conftest import make_context

    policy = within_maintenance_window(start="09:00", end="17:00", timezone="UTC")

    def at(hour: int, minute: int, second: int = 0):
        ctx = make_context("hubspot.create_contact", {})
        ctx.now = datetime(2026, 12, 1, hour, minute, second, tzinfo=UTC)  # a Tuesday
        return policy(ctx)

    assert at(16, 59, 1).passed and at(16, 59, 59).passed
    assert not at(17, 0, 0).passed  # the next minute is judged afresh
    assert at(16, 59, 30).passed and not at(17, 0, 30).passed
    assert at(16, 59, 30).reason == "tue 16:59 UTC is inside 09:00-17:00"
