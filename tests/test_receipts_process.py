"""enact_proxy/receipts/process.py: the log writer in a child process, and what happens when it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.receipts.process import ProcessReceiptStore, _frame
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import ReceiptError, ReceiptStore, WriterBusy
from tests.conftest import draft, independent_verify, spec_hash, spec_records


def _ok(receipt_dir: Path, key: ReceiptKey) -> None:
    pub = (receipt_dir.parent / "certs" / "receipt-log.pub").read_text()
    assert independent_verify(receipt_dir, key.secret, pub) == []


def test_the_keys_reach_the_child_on_the_pipe_not_in_argv_or_environment(receipt_dir: Path,
                                                                         receipt_key: ReceiptKey,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENACT_RECEIPT_KEY", receipt_key.secret.decode())
    with ProcessReceiptStore(receipt_dir, receipt_key) as store:
        assert store.pid is not None and store.pid != os.getpid()
        cmdline = Path(f"/proc/{store.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{store.pid}/environ").read_bytes()
        signed = store.write(draft(1)).result(timeout=10)
    seed = (receipt_dir.parent / "certs" / "receipt-log.key").read_text().strip().split("+", 4)[-1].encode()
    for secret in (receipt_key.secret, seed):
        assert secret not in cmdline
        assert secret not in environ
    assert receipt_key.verify(signed.record_dict())


def test_a_dead_writer_fails_every_unanswered_and_later_record(receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    store = ProcessReceiptStore(receipt_dir, receipt_key).start()
    first = store.write(draft(0)).result(timeout=10)
    assert store.pid is not None
    os.kill(store.pid, signal.SIGKILL)
    store._child.wait(10)  # type: ignore[union-attr]
    with pytest.raises(ReceiptError):
        store.open_intent(draft(1)).result(timeout=10)  # no receipt, no action
    with pytest.raises(ReceiptError):
        store.write(draft(2)).result(timeout=10)
    store.close()
    # What was acknowledged survives; a new writer continues the chain after it.
    with ReceiptStore(receipt_dir, receipt_key) as restarted:
        after = restarted.write(draft(3)).result(timeout=10)
    assert after.prev_hash == spec_hash(first)
    _ok(receipt_dir, receipt_key)


def test_the_writer_ignores_sigterm_and_stops_only_when_its_pipe_closes(receipt_dir: Path,
                                                                       receipt_key: ReceiptKey) -> None:
    store = ProcessReceiptStore(receipt_dir, receipt_key).start()
    assert store.pid is not None
    os.kill(store.pid, signal.SIGTERM)  # e.g. the process group of a stopping sidecar
    os.kill(store.pid, signal.SIGINT)
    signed = store.write(draft(1)).result(timeout=10)
    ticket = store.open_intent(draft(2)).result(timeout=10)
    store.close()  # the open intent gets its unknown-outcome receipt at the clean stop
    receipts = [r["run_id"] for r in spec_records(receipt_dir) if r["kind"] == "receipt"]
    assert receipts == [signed.run_id, ticket.run_id]
    _ok(receipt_dir, receipt_key)


@pytest.mark.parametrize("first_kind", ["process", "library"])
@pytest.mark.parametrize("second_kind", ["process", "library"])
def test_a_second_writer_on_the_same_folder_refuses_to_start_promptly_and_clearly(
        receipt_dir: Path, receipt_key: ReceiptKey, first_kind: str, second_kind: str) -> None:
    kinds = {"process": ProcessReceiptStore, "library": ReceiptStore}
    with kinds[first_kind](receipt_dir, receipt_key) as first:
        began = time.monotonic()
        with pytest.raises(WriterBusy, match=r"another receipt writer \(pid \d+\) is writing to .*one writer per"):
            kinds[second_kind](receipt_dir, receipt_key).start()
        assert time.monotonic() - began < 20  # refused, not left waiting (generous: a shared machine)
        first.write(draft(0)).result(timeout=10)  # the first goes on untouched
    # Once the first has stopped the folder is free again.
    with kinds[second_kind](receipt_dir, receipt_key) as store:
        assert store.write(draft(1)).result(timeout=10).seq == 1
    _ok(receipt_dir, receipt_key)


def test_inside_an_event_loop_the_loop_reads_the_answers_and_close_waits_for_the_rest(
        receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    async def sidecar_like() -> tuple[Any, list[Any]]:
        store = ProcessReceiptStore(receipt_dir, receipt_key).start()
        assert store._reader is None  # no ack thread: the event loop is the reader
        ticket = await asyncio.wrap_future(store.open_intent(draft(0)))
        done = [{"action": "hubspot.create_contact", "system": "hubspot", "success": True}]
        closed = await asyncio.wrap_future(ticket.close(done))
        pending = [store.write(draft(n)) for n in range(1, 200)]
        store.close()  # in the loop: reads the remaining answers itself before the child exits
        assert all(f.done() for f in pending)
        return closed, [f.result() for f in pending]

    closed, rest = asyncio.run(sidecar_like())
    assert receipt_key.verify(closed.record_dict())
    assert rest[0].prev_hash == spec_hash(closed)
    assert len([r for r in spec_records(receipt_dir) if r["kind"] == "receipt"]) == 200
    _ok(receipt_dir, receipt_key)


def test_a_loop_that_submits_without_reading_answers_does_not_deadlock_the_two_processes(
        receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    # One event-loop callback submits far more than both pipes hold before the loop can read a single
    # answer: the writer must keep reading while its answers wait.
    async def burst() -> int:
        store = ProcessReceiptStore(receipt_dir, receipt_key).start()
        futures = [store.write(draft(n, payload={"blob": "x" * 500})) for n in range(20_000)]
        signed = [await asyncio.wrap_future(f) for f in futures]
        store.close()
        return len(signed)

    assert asyncio.run(asyncio.wait_for(burst(), 300)) == 20_000


def test_an_answer_that_makes_no_sense_fails_every_pending_record_instead_of_leaving_it_waiting(
        receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    async def confused() -> None:
        store = ProcessReceiptStore(receipt_dir, receipt_key).start()
        waiting: Future[Any] = Future()
        store._pending[10**9] = (waiting, lambda answer: answer)  # a record the writer has not answered yet
        store._acks.buffer += _frame([(424242, None, None)])  # an answer to nothing ever sent
        store._on_readable()
        with pytest.raises(ReceiptError, match="answered garbage: KeyError"):
            waiting.result(timeout=1)
        with pytest.raises(ReceiptError, match="answered garbage"):
            store.open_intent(draft(2)).result(timeout=1)  # no receipt, no action
        store.close()

    asyncio.run(confused())
