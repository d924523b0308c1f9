"""Shared fixtures: a receipts directory, a receipt key, a clock tests move by hand, context builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.models import WorkflowContext
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.store import ReceiptStore

# Monday 2024-01-15 10:00 UTC (11:00 in Berlin).
FIXED_NOW = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = FIXED_NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(autouse=True)
def _no_ambient_receipt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ENACT_RECEIPT_KEY must not change what the tests see."""
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def receipt_dir(tmp_path: Path) -> Path:
    return tmp_path / "receipts"


@pytest.fixture
def receipt_key() -> ReceiptKey:
    return ReceiptKey(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(receipt_dir: Path, receipt_key: ReceiptKey) -> Iterator[ReceiptStore]:
    started = ReceiptStore(receipt_dir, receipt_key).start()
    yield started
    started.close()


def make_context(action: str | None = None, payload: dict[str, Any] | None = None, *,
                 roles: tuple[str, ...] = (), now: datetime = FIXED_NOW, systems: dict[str, Any] | None = None,
                 state: Any = None, workflow: str | None = "wf", actor_email: str = "agent@company.com",
                 ) -> WorkflowContext:
    """A context for ``system.action`` (None: a library-mode workflow run)."""
    system, _, name = action.partition(".") if action else (None, "", None)
    return WorkflowContext(workflow=workflow, actor_email=actor_email, actor_roles=roles, system=system,
                           action=name or None, payload=payload or {}, systems=systems or {}, now=now, state=state)


@pytest.fixture
def ctx() -> Callable[..., WorkflowContext]:
    return make_context
