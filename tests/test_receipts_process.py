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
from tests.test_receipts_faults import _fill, small_disk  # noqa: F401 - a fixture (a tmpfs to fill)


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


# -- several fronts on one writer (listen.workers > 1) ------------------------------------------
def _front_of(main: ProcessReceiptStore, receipt_dir: Path, receipt_key: ReceiptKey) -> ProcessReceiptStore:
    """One more front, as an HTTP worker process attaches to it (here in this process, on its own pipes)."""
    return ProcessReceiptStore(receipt_dir, receipt_key, attach=main.add_front()).start()


def test_records_of_two_fronts_interleaved_make_one_chain_and_each_front_gets_its_own_answers(
        receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    from enact_proxy.receipts.checkpoint import load_log_signer
    from enact_proxy.receipts.verify import verify_log

    main = ProcessReceiptStore(receipt_dir, receipt_key, fronts=True).start()
    worker = _front_of(main, receipt_dir, receipt_key)
    sent: list[tuple[str, Future[Any]]] = []
    for n in range(300):  # interleaved, unequal bursts
        front, name = (main, "main") if n % 3 else (worker, "worker")
        sent.append((name, front.write(draft(n, payload={"front": name, "n": n}))))
    tickets = [worker.open_intent(draft(1000 + n)).result(timeout=10) for n in range(3)]
    signed = [(name, f.result(timeout=30)) for name, f in sent]
    for ticket in tickets:
        ticket.close([{"action": "hubspot.create_contact", "system": "hubspot", "success": True}]).result(timeout=10)
    for name, receipt in signed:  # each answer is that front's own record
        assert receipt.payload["front"] == name
        assert receipt_key.verify(receipt.record_dict())
    assert sorted(r.seq for _, r in signed) == sorted(set(r.seq for _, r in signed))
    worker.close()
    main.close()
    records = spec_records(receipt_dir)
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert {r["payload"].get("front") for r in records if r["kind"] == "receipt"} >= {"main", "worker"}
    assert len(records) == 300 + 6
    _ok(receipt_dir, receipt_key)
    report = verify_log(receipt_dir, receipt_key, load_log_signer(receipt_dir.parent / "certs").verifier, live=False)
    assert report.ok, report


def test_the_writer_stops_only_once_every_front_has_gone(receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    import threading

    main = ProcessReceiptStore(receipt_dir, receipt_key, fronts=True).start()
    worker = _front_of(main, receipt_dir, receipt_key)
    closing = threading.Thread(target=main.close)
    closing.start()  # the main front has gone; the worker's has not
    assert worker.write(draft(1)).result(timeout=10).seq == 0
    ticket = worker.open_intent(draft(2)).result(timeout=10)
    assert closing.is_alive()  # main.close waits for the writer, which still serves the worker
    worker.close()  # the last front: the writer closes the open intent (unknown outcome) and stops
    closing.join(60)
    assert not closing.is_alive()
    records = spec_records(receipt_dir)
    assert [r["kind"] for r in records] == ["receipt", "intent", "receipt"]
    assert records[2]["run_id"] == ticket.run_id and records[2]["actions_taken"][0]["success"] is None
    _ok(receipt_dir, receipt_key)


def test_a_dead_writer_fails_every_front(receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    main = ProcessReceiptStore(receipt_dir, receipt_key, fronts=True).start()
    workers = [_front_of(main, receipt_dir, receipt_key) for _ in range(2)]
    for n, front in enumerate([main, *workers]):
        front.write(draft(n)).result(timeout=10)
    assert main.pid is not None
    os.kill(main.pid, signal.SIGKILL)
    main._child.wait(10)  # type: ignore[union-attr]
    for n, front in enumerate([main, *workers]):  # no receipt, no action: on every front
        with pytest.raises(ReceiptError):
            front.open_intent(draft(10 + n)).result(timeout=10)
        with pytest.raises(ReceiptError):
            front.write(draft(20 + n)).result(timeout=10)
    with pytest.raises(ReceiptError):
        main.add_front()  # and no new front can join a dead writer
    for front in [*workers, main]:
        front.close()
    assert len(spec_records(receipt_dir)) == 3


def test_a_front_that_goes_away_leaves_the_others_served_and_a_new_one_can_join(
        receipt_dir: Path, receipt_key: ReceiptKey) -> None:
    main = ProcessReceiptStore(receipt_dir, receipt_key, fronts=True).start()
    lost = main.add_front()
    for fd in lost:  # a worker killed before it wrote a thing: its pipes just close
        os.close(fd)
    replacement = _front_of(main, receipt_dir, receipt_key)
    assert replacement.write(draft(1)).result(timeout=10).seq == 0
    assert main.write(draft(2)).result(timeout=10).seq == 1
    replacement.close()
    main.close()
    _ok(receipt_dir, receipt_key)


def test_every_front_is_told_when_records_cannot_be_written(tmp_path: Path, request: pytest.FixtureRequest,
                                                            receipt_key: ReceiptKey) -> None:
    disk: Path = request.getfixturevalue("small_disk")  # a tmpfs to fill (skipped where none can be mounted)
    receipts = disk / "receipts"
    main = ProcessReceiptStore(receipts, receipt_key, certs_dir=tmp_path / "certs", fronts=True).start()
    worker = ProcessReceiptStore(receipts, receipt_key, attach=main.add_front()).start()
    try:
        filler = _fill(disk)
        with pytest.raises(ReceiptError, match="No space left on device"):
            main.write(draft(1, payload={"blob": "x" * 9000})).result(timeout=10)
        deadline = time.monotonic() + 30
        while worker.unwritable is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "No space left on device" in (worker.unwritable or "")
        late = ProcessReceiptStore(receipts, receipt_key, attach=main.add_front()).start()
        while late.unwritable is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "No space left on device" in (late.unwritable or "")  # told from its first moment
        filler.unlink()
        while (worker.unwritable or late.unwritable) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.unwritable is None and late.unwritable is None
        assert late.write(draft(3)).result(timeout=10).seq == 0
        late.close()
    finally:
        worker.close()
        main.close()
