"""enact_proxy/sidecar.py: a person's decision stands only once its receipt is written."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta
from types import SimpleNamespace

import pytest

from enact_proxy.receipts import ReceiptError
from enact_proxy.sidecar import Sidecar
from enact_proxy.state import SqliteStateStore
from tests.conftest import FIXED_NOW


class UnwritableEngine:
    def clock(self):
        return FIXED_NOW

    def note(self, action, person, reason):
        return SimpleNamespace(action=action, person=person, reason=reason)

    def record(self, verdict):
        failed: Future[object] = Future()
        failed.set_exception(ReceiptError("No space left on device"))
        return failed


@pytest.mark.parametrize("approve", [True, False])
def test_a_decision_whose_receipt_cannot_be_written_leaves_the_approval_pending(tmp_path, approve):
    state = SqliteStateStore(tmp_path / "s.sqlite")
    pending = state.request_approval(digest="d", actor="agent@company.com", action="github.merge_pr",
                                     payload={"number": 1}, now=FIXED_NOW, expires=timedelta(hours=1))
    sidecar = SimpleNamespace(engine=UnwritableEngine(), state=state)
    with pytest.raises(ReceiptError, match=f"could not be recorded .*No space left.*{pending.id} is still pending"):
        Sidecar.decide_approval(sidecar, pending.id, approve, "alice@company.com", "ok")  # type: ignore[arg-type]
    again = state.get_approval(pending.id)
    assert again is not None and (again.status, again.decided_by) == ("pending", None)
    state.close()
