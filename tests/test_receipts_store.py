"""enact_proxy/receipts/store.py: durable chained writes, concurrency, restart, intents, failures."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import MAX_FILE_BACKLOG, ReceiptError, ReceiptStore
from tests.conftest import draft, independent_verify, spec_canonical, spec_hash


@pytest.fixture(params=[ReceiptStore, ProcessReceiptStore], ids=["threads", "process"])
def Store(request):  # noqa: N802 - stands for the class under test
    """Every public-API test runs against the in-process store and the writer-process store."""
    return request.param


@pytest.fixture
def store(Store, receipt_dir, receipt_key):  # noqa: N803
    started = Store(receipt_dir, receipt_key).start()
    yield started
    started.close()


def _on_disk(directory: Path) -> dict[str, dict]:
    records = {}
    for path in directory.rglob("*.json"):
        record = json.loads(path.read_bytes())
        assert path.stem == record["run_id"]
        assert record["run_id"] not in records, "two files for one receipt"
        records[record["run_id"]] = record
    return records


def _head(directory: Path) -> dict:
    return json.loads((directory / "HEAD").read_bytes())


def test_written_file_holds_the_signed_canonical_bytes(store, receipt_dir, receipt_key):
    signed = store.write(draft(1)).result(timeout=10)
    store.close()
    (path,) = receipt_dir.rglob("*.json")
    assert path.name == f"{signed['run_id']}.json"
    assert path.read_bytes() == spec_canonical(signed) + b"\n"
    assert signed["prev_hash"] is None
    assert receipt_key.verify(signed)


def test_chain_links_each_receipt_to_the_one_before(store, receipt_dir, receipt_key):
    first = store.write(draft(1)).result(timeout=10)
    second = store.write(draft(2)).result(timeout=10)
    third = store.write(draft(3)).result(timeout=10)
    store.close()
    assert second["prev_hash"] == spec_hash(first)
    assert third["prev_hash"] == spec_hash(second)
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_head_tracks_newest_hash_and_count(store, receipt_dir, receipt_key):
    for n in range(4):
        last = store.write(draft(n)).result(timeout=10)
        head = _head(receipt_dir)
        assert head["count"] == n + 1
        assert head["run_id"] == last["run_id"]
        assert head["hash"] == spec_hash(last)
        assert receipt_key.verify(head)


def test_many_concurrent_writers_one_file_each_and_an_intact_chain(Store, receipt_dir, receipt_key):
    store = Store(receipt_dir, receipt_key).start()
    written: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(25):
                signed = store.write(draft(i, payload={"worker": worker, "i": i})).result(timeout=30)
                with lock:
                    written.append(signed["run_id"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    records = _on_disk(receipt_dir)
    assert sorted(records) == sorted(written)
    assert len(records) == 200
    assert independent_verify(receipt_dir, receipt_key.secret) == []
    assert _head(receipt_dir)["count"] == 200


def test_restart_continues_the_chain(Store, receipt_dir, receipt_key):
    with Store(receipt_dir, receipt_key) as first:
        old = [first.write(draft(n)).result(timeout=10) for n in range(3)]
    with Store(receipt_dir, receipt_key) as second:
        new = second.write(draft(10)).result(timeout=10)
    assert new["prev_hash"] == spec_hash(old[-1])
    assert _head(receipt_dir)["count"] == 4
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_restart_without_head_continues_from_the_scanned_tip(Store, receipt_dir, receipt_key):
    with Store(receipt_dir, receipt_key) as first:
        old = [first.write(draft(n)).result(timeout=10) for n in range(3)]
    (receipt_dir / "HEAD").unlink()
    with Store(receipt_dir, receipt_key) as second:
        new = second.write(draft(10)).result(timeout=10)
    assert new["prev_hash"] == spec_hash(old[-1])
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_intent_never_closed_becomes_an_unknown_outcome_receipt_on_restart(Store, receipt_dir, receipt_key):
    store = Store(receipt_dir, receipt_key).start()
    before = store.write(draft(0)).result(timeout=10)
    body = draft(1, action="hubspot.create_contact", system="hubspot")
    store.open_intent(body).result(timeout=10)  # durable intent; the action "ran"; then the sidecar died
    store.close()
    with Store(receipt_dir, receipt_key):
        pass
    records = _on_disk(receipt_dir)
    recovered = records[body["run_id"]]
    assert recovered["actions_taken"] == [{"action": "hubspot.create_contact", "system": "hubspot",
                                           "success": None, "output": {"outcome": "unknown"}}]
    assert recovered["prev_hash"] == spec_hash(before)
    assert independent_verify(receipt_dir, receipt_key.secret) == []
    # A second restart does not write it again.
    with Store(receipt_dir, receipt_key):
        pass
    assert len(_on_disk(receipt_dir)) == 2


def test_closed_intent_is_exactly_one_receipt(Store, receipt_dir, receipt_key):
    with Store(receipt_dir, receipt_key) as store:
        body = draft(1)
        ticket = store.open_intent(body).result(timeout=10)
        done = [{"action": "create_contact", "system": "hubspot", "success": True, "output": {"id": "9"}}]
        signed = ticket.close(done).result(timeout=10)
        with pytest.raises(RuntimeError):
            ticket.close(done)
    with Store(receipt_dir, receipt_key):
        pass
    records = _on_disk(receipt_dir)
    assert list(records) == [body["run_id"]]
    assert records[body["run_id"]] == signed
    assert signed["actions_taken"] == done


def test_journalled_receipts_whose_files_were_lost_are_rewritten_on_restart(Store, tmp_path, receipt_dir,
                                                                             receipt_key):
    # A crash after the journal fsync but before the receipt files were made durable.
    live = Store(receipt_dir, receipt_key, checkpoint_seconds=3600).start()
    written = [live.write(draft(n)).result(timeout=10) for n in range(3)]
    crashed = tmp_path / "crashed"
    shutil.copytree(receipt_dir, crashed)
    live.close()
    for path in crashed.rglob("*.json"):
        path.unlink()
    (crashed / "HEAD").unlink()
    with Store(crashed, receipt_key) as recovered:
        after = recovered.write(draft(9)).result(timeout=10)
    records = _on_disk(crashed)
    assert sorted(records) == sorted([r["run_id"] for r in written] + [after["run_id"]])
    assert after["prev_hash"] == spec_hash(written[-1])
    assert independent_verify(crashed, receipt_key.secret) == []


def test_journal_write_failure_fails_the_future_and_leaves_the_chain_intact(monkeypatch, receipt_dir, receipt_key):
    store = ReceiptStore(receipt_dir, receipt_key).start()  # in-process: the failure is injected here
    first = store.write(draft(0)).result(timeout=10)
    real_fsync = os.fsync

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    failed = store.write(draft(1))
    with pytest.raises(ReceiptError, match="journal write failed"):
        failed.result(timeout=10)
    intent = store.open_intent(draft(2))
    with pytest.raises(ReceiptError):
        intent.result(timeout=10)
    monkeypatch.setattr(os, "fsync", real_fsync)
    after = store.write(draft(3)).result(timeout=10)
    store.close()
    assert after["prev_hash"] == spec_hash(first)  # the failed one took no place in the chain
    assert len(_on_disk(receipt_dir)) == 2
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_closed_store_refuses(Store, receipt_dir, receipt_key):
    store = Store(receipt_dir, receipt_key)
    with pytest.raises(ReceiptError):
        store.write(draft()).result(timeout=10)  # never started
    store.start()
    store.close()
    with pytest.raises(ReceiptError):
        store.write(draft()).result(timeout=10)


def test_a_foreign_key_head_is_ignored_and_the_chain_adopted_by_scan(Store, receipt_dir, receipt_key):
    with Store(receipt_dir, receipt_key) as store:
        old = store.write(draft(0)).result(timeout=10)
    forged = ReceiptKey(b"other").signed({"run_id": "x", "hash": "0" * 64, "count": 99})
    (receipt_dir / "HEAD").write_bytes(spec_canonical(forged))
    with Store(receipt_dir, receipt_key) as store:
        new = store.write(draft(1)).result(timeout=10)
    assert new["prev_hash"] == spec_hash(old)
    assert _head(receipt_dir)["count"] == 2


def test_a_burst_larger_than_the_file_backlog_is_written_not_deadlocked(Store, receipt_dir, receipt_key):
    # Found through the writer process: a batch of more finals than the backlog allows waited forever.
    with Store(receipt_dir, receipt_key) as store:
        futures = [store.write(draft(n)) for n in range(3 * MAX_FILE_BACKLOG)]
        signed = [f.result(timeout=60) for f in futures]
    assert len(_on_disk(receipt_dir)) == 3 * MAX_FILE_BACKLOG
    assert {s["run_id"] for s in signed} == set(_on_disk(receipt_dir))
    assert independent_verify(receipt_dir, receipt_key.secret) == []
