"""enact_proxy/receipts/store.py: the log writer — records, chain, segments, checkpoints, restart, failures."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from enact_proxy.receipts.checkpoint import load_log_signer
from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import LogWriter, Op, ReceiptError, ReceiptStore
from tests.conftest import draft, independent_verify, spec_canonical, spec_hash, spec_lines, spec_records


@pytest.fixture(params=[ReceiptStore, ProcessReceiptStore], ids=["threads", "process"])
def Store(request):  # noqa: N802 - stands for the class under test
    """Every public-API test runs against the in-process store and the writer-process store."""
    return request.param


@pytest.fixture
def store(Store, receipt_dir, receipt_key):  # noqa: N803
    started = Store(receipt_dir, receipt_key).start()
    yield started
    started.close()


def _pub(receipt_dir: Path) -> str:
    return (receipt_dir.parent / "certs" / "receipt-log.pub").read_text()


def _ok(receipt_dir: Path, key: ReceiptKey) -> None:
    assert independent_verify(receipt_dir, key.secret, _pub(receipt_dir)) == []


def test_each_line_is_the_signed_records_canonical_bytes(store, receipt_dir, receipt_key):
    signed = store.write(draft(1)).result(timeout=10)
    store.close()
    (line,) = spec_lines(receipt_dir)
    record = json.loads(line)
    assert line == spec_canonical(record)
    assert record == signed.record_dict()
    assert (record["kind"], record["seq"], record["prev_hash"], record["receipt_version"]) == ("receipt", 0, None, 2)
    assert receipt_key.verify(record)
    (segment,) = receipt_dir.glob("*/*.jsonl")
    assert segment.name == "000000000000.jsonl"
    _ok(receipt_dir, receipt_key)


def test_chain_and_seq_link_each_record_to_the_one_before(store, receipt_dir, receipt_key):
    records = [store.write(draft(n)).result(timeout=10) for n in range(3)]
    store.close()
    assert [r.seq for r in records] == [0, 1, 2]
    assert records[1].prev_hash == spec_hash(records[0])
    assert records[2].prev_hash == spec_hash(records[1])
    _ok(receipt_dir, receipt_key)


def test_a_pass_is_an_intent_then_one_receipt(store, receipt_dir, receipt_key):
    body = draft(1)
    ticket = store.open_intent(body).result(timeout=10)
    intent = spec_records(receipt_dir)[-1]  # durable before the future resolved
    assert intent["kind"] == "intent" and intent["run_id"] == body["run_id"] and "actions_taken" not in intent
    done = [{"action": "create_contact", "system": "hubspot", "success": True, "output": {"id": "9"}}]
    signed = ticket.close(done).result(timeout=10)
    with pytest.raises(RuntimeError):
        ticket.close(done)
    store.close()
    records = spec_records(receipt_dir)
    assert [r["kind"] for r in records] == ["intent", "receipt"]
    assert records[1] == signed.record_dict()
    assert records[1]["actions_taken"] == done
    _ok(receipt_dir, receipt_key)


def test_many_concurrent_writers_one_intact_log(Store, receipt_dir, receipt_key):  # noqa: N803
    store = Store(receipt_dir, receipt_key).start()
    written: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(25):
                if i % 2:
                    signed = store.write(draft(i, payload={"worker": worker, "i": i})).result(timeout=30)
                else:
                    ticket = store.open_intent(draft(i)).result(timeout=30)
                    signed = ticket.close([]).result(timeout=30)
                with lock:
                    written.append(signed.run_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    receipts = [r for r in spec_records(receipt_dir) if r["kind"] == "receipt"]
    assert sorted(r["run_id"] for r in receipts) == sorted(written) and len(receipts) == 200
    _ok(receipt_dir, receipt_key)


def test_a_clean_stop_checkpoints_every_record(store, receipt_dir, receipt_key):
    for n in range(5):
        store.write(draft(n)).result(timeout=10)
    store.close()
    head = (receipt_dir / "HEAD").read_text()
    assert head.split("\n")[1] == "5"
    assert (receipt_dir / "checkpoints" / "5").read_text() == head
    _ok(receipt_dir, receipt_key)


def test_restart_continues_the_chain_and_the_tree(Store, receipt_dir, receipt_key):  # noqa: N803
    with Store(receipt_dir, receipt_key) as first:
        old = [first.write(draft(n)).result(timeout=10) for n in range(3)]
    with Store(receipt_dir, receipt_key) as second:
        new = second.write(draft(10)).result(timeout=10)
    assert new.seq == 3 and new.prev_hash == spec_hash(old[-1])
    _ok(receipt_dir, receipt_key)


def test_an_open_intent_gets_an_unknown_outcome_receipt_at_a_clean_stop(Store, receipt_dir, receipt_key):  # noqa: N803
    store = Store(receipt_dir, receipt_key).start()
    body = draft(1, action="hubspot.create_contact", system="hubspot")
    store.open_intent(body).result(timeout=10)
    store.close()
    receipt = spec_records(receipt_dir)[-1]
    assert receipt["kind"] == "receipt" and receipt["run_id"] == body["run_id"]
    assert receipt["actions_taken"] == [{"action": "hubspot.create_contact", "system": "hubspot",
                                         "success": None, "output": {"outcome": "unknown"}}]
    _ok(receipt_dir, receipt_key)


def test_after_a_crash_the_restarted_writer_closes_open_intents_before_new_records(tmp_path, receipt_dir,
                                                                                   receipt_key):
    live = ReceiptStore(receipt_dir, receipt_key).start()
    live.write(draft(0)).result(timeout=10)
    body = draft(1)
    live.open_intent(body).result(timeout=10)
    crashed = tmp_path / "crashed"
    shutil.copytree(receipt_dir, crashed)  # what a power cut leaves: the intent, no receipt
    live.close()
    with ReceiptStore(crashed, receipt_key, certs_dir=receipt_dir.parent / "certs") as restarted:
        after = restarted.write(draft(9)).result(timeout=10)
    records = spec_records(crashed)
    assert [(r["kind"], r["run_id"]) for r in records[1:]] == [
        ("intent", body["run_id"]), ("receipt", body["run_id"]), ("receipt", after.run_id)]
    assert records[2]["actions_taken"][0]["output"] == {"outcome": "unknown"}
    assert independent_verify(crashed, receipt_key.secret, _pub(receipt_dir)) == []


def test_segments_roll_over_by_size_and_their_boundaries_mean_nothing(tmp_path, receipt_dir, receipt_key):
    with ReceiptStore(receipt_dir, receipt_key, segment_bytes=2000) as store:
        for n in range(12):
            store.write(draft(n)).result(timeout=10)
    segments = sorted(receipt_dir.glob("*/*.jsonl"), key=lambda p: int(p.stem))
    assert len(segments) > 3
    first_seqs = [json.loads(p.read_bytes().split(b"\n")[0])["seq"] for p in segments]
    assert [int(p.stem) for p in segments] == first_seqs
    assert all(p.stat().st_size <= 2000 for p in segments)
    _ok(receipt_dir, receipt_key)
    # The same records cut at other boundaries (one segment) verify the same.
    recut = tmp_path / "recut"
    shutil.copytree(receipt_dir, recut)
    lines = spec_lines(recut)
    for p in recut.glob("*/*.jsonl"):
        p.unlink()
    (recut / "2000-01-01").mkdir()
    (recut / "2000-01-01" / "000000000000.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    assert independent_verify(recut, receipt_key.secret, _pub(receipt_dir)) == []


def test_a_new_segment_starts_at_utc_midnight(receipt_dir, receipt_key):
    now = [1_700_000_000.0]  # 2023-11-14 22:13 UTC
    signer = load_log_signer(receipt_dir.parent / "certs")
    writer = LogWriter(receipt_dir, receipt_key, signer, clock=lambda: now[0])
    writer.open()
    writer.commit([Op("receipt", draft(0))])
    now[0] += 6 * 3600  # the next UTC day
    writer.commit([Op("receipt", draft(1))])
    writer.close()
    assert sorted(str(p.relative_to(receipt_dir)) for p in receipt_dir.glob("*/*.jsonl")) == [
        "2023-11-14/000000000000.jsonl", "2023-11-15/000000000001.jsonl"]
    _ok(receipt_dir, receipt_key)


def test_a_failed_fsync_refuses_the_round_and_leaves_no_partial_line(monkeypatch, receipt_dir, receipt_key):
    store = ReceiptStore(receipt_dir, receipt_key).start()  # in-process: the failure is injected here
    first = store.write(draft(0)).result(timeout=10)
    real = os.fdatasync

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(ReceiptError, match="Input/output error"):
        store.write(draft(1)).result(timeout=10)
    with pytest.raises(ReceiptError):
        store.open_intent(draft(2)).result(timeout=10)  # no receipt, no action
    assert store.unwritable and "Input/output error" in store.unwritable
    monkeypatch.setattr(os, "fdatasync", real)
    after = store.write(draft(3)).result(timeout=10)
    assert store.unwritable is None  # resumed by itself
    store.close()
    assert after.seq == 1 and after.prev_hash == spec_hash(first)  # the failed ones took no place
    assert len(spec_lines(receipt_dir)) == 2
    _ok(receipt_dir, receipt_key)


def test_closed_store_refuses(Store, receipt_dir, receipt_key):  # noqa: N803
    store = Store(receipt_dir, receipt_key)
    with pytest.raises(ReceiptError):
        store.write(draft()).result(timeout=10)  # never started
    store.start()
    store.close()
    with pytest.raises(ReceiptError):
        store.write(draft()).result(timeout=10)


def test_a_burst_is_written_not_deadlocked(Store, receipt_dir, receipt_key):  # noqa: N803
    with Store(receipt_dir, receipt_key) as store:
        futures = [store.write(draft(n)) for n in range(5000)]
        signed = [f.result(timeout=60) for f in futures]
    assert [s.seq for s in signed] == list(range(5000))
    _ok(receipt_dir, receipt_key)


def test_floats_and_unusual_text_in_a_payload_are_written_as_json_dumps_would(store, receipt_dir, receipt_key):
    payload = {"amount": 1e16, "ratio": 1.5e-7, "price": 0.1, "big": 2**70, "text": "Zoë \u2028 \x7f \x1f \"q\""}
    signed = store.write(draft(1, payload=payload)).result(timeout=10)
    store.close()
    (line,) = spec_lines(receipt_dir)
    assert line == spec_canonical(signed.record_dict())  # json.dumps(sort_keys, compact, ensure_ascii=False)
    assert b'"amount":1e+16' in line and b'"ratio":1.5e-07' in line
    _ok(receipt_dir, receipt_key)


def test_a_restart_reads_on_from_the_saved_state_not_the_whole_log(receipt_dir, receipt_key):
    with ReceiptStore(receipt_dir, receipt_key) as store:
        for n in range(5):
            store.write(draft(n)).result(timeout=10)
    state = json.loads((receipt_dir / ".writer-state").read_bytes())
    assert state["size"] == 5 and state["intents"] == {}
    # Bytes of an early record change behind the writer's back (same length): a restart that trusted
    # a scan would sign a tree over them; from the saved state it keeps the tree it signed before.
    (segment,) = receipt_dir.glob("*/*.jsonl")
    segment.write_bytes(segment.read_bytes().replace(b"lead1@", b"LEAD1@", 1))
    with ReceiptStore(receipt_dir, receipt_key) as store:
        after = store.write(draft(9)).result(timeout=10)
    assert after.seq == 5
    pub = _pub(receipt_dir)
    problems = independent_verify(receipt_dir, receipt_key.secret, pub)
    assert problems == [f"{json.loads(spec_lines(receipt_dir)[1])['run_id']}: signature does not verify",
                        "line 2: prev_hash does not name the line before", "HEAD's root is not the root of the records"]


@pytest.mark.parametrize("state", [b"", b"{}", b'{"size": 3, "tip": "00", "tree": [], "tip_segment": "x",'
                                              b' "tip_offset": 0, "tip_length": 1, "intents": {}}'])
def test_a_state_that_does_not_match_the_log_means_a_full_scan(receipt_dir, receipt_key, state):
    with ReceiptStore(receipt_dir, receipt_key) as store:
        intent = store.open_intent(draft(0)).result(timeout=10)
        store.write(draft(1)).result(timeout=10)
    (receipt_dir / ".writer-state").write_bytes(state)
    with ReceiptStore(receipt_dir, receipt_key) as store:
        after = store.write(draft(2)).result(timeout=10)
    assert after.seq == 3  # intent, its unknown-outcome receipt at the stop, the write, then this
    assert intent.run_id in {r["run_id"] for r in spec_records(receipt_dir) if r["kind"] == "receipt"}
    _ok(receipt_dir, receipt_key)


def test_a_front_that_only_implements_submit_still_gets_typed_records():
    from concurrent.futures import Future

    from enact_proxy.receipts.store import StoreFront

    class Fixed(StoreFront):
        def _submit(self, kind, body):
            done: Future = Future()
            done.set_result((7, "ab" * 32, {"alg": "HMAC-SHA256", "key_id": "k", "value": "v"}))
            return done

    signed = Fixed().write(draft(0)).result(timeout=1)
    assert (signed.seq, signed.prev_hash, signed.signature.key_id) == (7, "ab" * 32, "k")
    ticket = Fixed().open_intent(draft(1)).result(timeout=1)
    assert ticket.intent_seq == 7


def test_the_writers_day_follows_the_clock_across_midnight():
    from datetime import UTC, datetime

    from enact_proxy.receipts.store import _Days, day_of

    days = _Days()
    midnight = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    for epoch in (midnight - 86400.5, midnight - 1e-6, midnight - 0.5, midnight, midnight + 0.5, midnight + 86399.9,
                  midnight + 86400, midnight - 3 * 86400, 0.0, midnight + 12.25):
        assert days(epoch) == day_of(epoch), epoch
    # The last instant before midnight (which fromtimestamp rounds up to it) is still the old day,
    # whichever was asked first.
    import math

    last = math.nextafter(midnight, 0)
    for first, then in ((last, midnight - 10), (midnight - 10, last)):
        fresh = _Days()
        assert (fresh(first), fresh(then)) == ("2026-12-01", "2026-12-01")
    assert _Days()(midnight) == "2026-12-02"
