"""enact_proxy/receipts/verify.py: every class of tampering is named; a torn line is not a failure."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from enact_proxy.receipts.checkpoint import load_verifier, sign_checkpoint
from enact_proxy.receipts.note import Signer
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from enact_proxy.receipts.verify import VerifyReport, verify_log
from tests.conftest import draft, independent_verify, spec_canonical


@pytest.fixture
def log(receipt_dir: Path, receipt_key: ReceiptKey) -> list[bytes]:
    """Two stops, so there are two checkpoints: 4 records (2 intents + 2 receipts), then 4 more."""
    for round_no in range(2):
        with ReceiptStore(receipt_dir, receipt_key, segment_bytes=1500) as store:
            for n in range(2):
                ticket = store.open_intent(draft(10 * round_no + n)).result(timeout=10)
                ticket.close([{"action": "x", "system": "hubspot", "success": True}]).result(timeout=10)
    return lines(receipt_dir)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.jsonl"), key=lambda p: int(p.stem))


def lines(directory: Path) -> list[bytes]:
    return [line for p in segments(directory) for line in p.read_bytes().splitlines()]


def rewrite(directory: Path, new_lines: list[bytes]) -> None:
    """The same records, cut into one segment (boundaries carry no meaning)."""
    day = segments(directory)[0].parent
    for p in segments(directory):
        p.unlink()
    (day / "000000000000.jsonl").write_bytes(b"".join(line + b"\n" for line in new_lines))


def run(directory: Path, key: ReceiptKey | None, *, with_public_key: bool = True) -> VerifyReport:
    verifier = load_verifier(directory.parent / "certs" / "receipt-log.pub") if with_public_key else None
    return verify_log(directory, key, verifier, live=False)


def text(report: VerifyReport) -> str:
    return "\n".join(f"{p.where}: {p.what}" for p in report.problems)


def test_an_untouched_log_verifies(log, receipt_dir, receipt_key):
    report = run(receipt_dir, receipt_key)
    assert report.ok, text(report)
    assert (report.records, report.receipts, report.intents, report.checkpoints) == (8, 4, 4, 3)
    assert report.notes == []
    assert independent_verify(receipt_dir, receipt_key.secret,
                              (receipt_dir.parent / "certs" / "receipt-log.pub").read_text()) == []


def test_an_edited_record_is_named(log, receipt_dir, receipt_key):
    record = json.loads(log[5])
    record["payload"]["email"] = "someone-else@acme.com"
    rewrite(receipt_dir, [*log[:5], spec_canonical(record), *log[6:]])
    report = run(receipt_dir, receipt_key)
    assert "seq 5" in text(report) and "edited: its signature does not verify" in text(report)
    assert "seq 6" in text(report) and "prev_hash does not match" in text(report)
    assert "its root is not the root" in text(report)  # HEAD covers it
    # Without the HMAC key the Merkle tree still catches it, and the report says what was not checked.
    keyless = run(receipt_dir, None)
    assert not keyless.ok and "HEAD: its root is not the root" in text(keyless)
    assert any("HMAC signatures were not checked" in n for n in keyless.notes)


def test_a_removed_middle_record_is_named(log, receipt_dir, receipt_key):
    rewrite(receipt_dir, [*log[:3], *log[4:]])
    report = run(receipt_dir, receipt_key)
    assert "seq 3: 1 record(s) removed" in text(report)
    assert "prev_hash does not match" in text(report)


def test_a_removed_tail_covered_by_a_checkpoint_is_named_truncated(log, receipt_dir, receipt_key):
    rewrite(receipt_dir, log[:6])
    report = run(receipt_dir, receipt_key)
    assert "HEAD: covers 8 records but the log holds 6: seq 6..7 removed (truncated)" in text(report)


def test_a_removed_whole_segment_is_named(log, receipt_dir, receipt_key):
    assert len(segments(receipt_dir)) >= 3
    segments(receipt_dir)[1].unlink()
    report = run(receipt_dir, receipt_key)
    assert "removed (a gap in seq)" in text(report)


def test_an_inserted_record_is_named(log, receipt_dir, receipt_key):
    forged = json.loads(log[2])
    forged["run_id"] = "00000000-0000-4000-8000-000000000000"
    rewrite(receipt_dir, [*log[:3], spec_canonical(forged), *log[3:]])
    report = run(receipt_dir, receipt_key)
    assert "seq 2 appears 2 times: inserted or replayed" in text(report)
    assert "edited: its signature does not verify" in text(report)


def test_a_replayed_record_is_named(log, receipt_dir, receipt_key):
    rewrite(receipt_dir, [*log, log[3]])  # a valid, signed record copied to the end
    report = run(receipt_dir, receipt_key)
    assert "inserted or replayed" in text(report)
    assert f"a second receipt for {json.loads(log[3])['run_id']}" in text(report)


def test_swapped_records_are_named_reordered(log, receipt_dir, receipt_key):
    rewrite(receipt_dir, [*log[:2], log[3], log[2], *log[4:]])
    report = run(receipt_dir, receipt_key)
    assert "seq 2 comes after a higher seq: reordered" in text(report)


def test_a_record_signed_with_another_key_is_named_forged(log, receipt_dir, receipt_key):
    record = json.loads(log[4])
    record.pop("signature")
    resigned = ReceiptKey(b"someone else's key").signed(record)
    rewrite(receipt_dir, [*log[:4], spec_canonical(resigned), *log[5:]])
    report = run(receipt_dir, receipt_key)
    assert "seq 4" in text(report) and "forged: signed with another key" in text(report)


def test_an_altered_head_is_named(log, receipt_dir, receipt_key):
    head = receipt_dir / "HEAD"
    lines_ = head.read_text().split("\n")
    lines_[2] = base64.b64encode(b"\x00" * 32).decode()
    head.write_text("\n".join(lines_))
    report = run(receipt_dir, receipt_key)
    assert "HEAD: altered or forged" in text(report)


def test_a_head_signed_by_another_log_key_is_named(log, receipt_dir, receipt_key):
    other = Signer.generate("enact-proxy/0000000000000000")
    (receipt_dir / "HEAD").write_text(sign_checkpoint(other, 8, b"\x00" * 32))
    assert "HEAD: altered or forged: no signature by" in text(run(receipt_dir, receipt_key))


def test_a_checkpoint_inconsistent_with_a_newer_one_is_named(log, receipt_dir, receipt_key):
    # A checkpoint of size 4 signed with the real key, but over a different history.
    signer = Signer.parse((receipt_dir.parent / "certs" / "receipt-log.key").read_text())
    (receipt_dir / "checkpoints" / "4").write_text(sign_checkpoint(signer, 4, b"\x11" * 32))
    report = run(receipt_dir, receipt_key)
    assert "checkpoints/4: inconsistent with checkpoints/8" in text(report)


def test_a_torn_last_line_is_named_but_does_not_fail(log, receipt_dir, receipt_key):
    last = segments(receipt_dir)[-1]
    last.write_bytes(last.read_bytes() + b'{"action":"hubspot.cre')
    report = run(receipt_dir, receipt_key)
    assert report.ok, text(report)
    assert any("torn write" in note for note in report.notes)


def test_an_intent_without_its_receipt_fails_a_stopped_log_and_is_in_flight_on_a_live_one(
        log, receipt_dir, receipt_key):
    rewrite(receipt_dir, log[:7])
    stopped = run(receipt_dir, receipt_key)
    assert "has no receipt" in text(stopped)
    verifier = load_verifier(receipt_dir.parent / "certs" / "receipt-log.pub")
    live = verify_log(receipt_dir, receipt_key, verifier, live=True)
    assert any("in flight" in n for n in live.notes) and "has no receipt" not in text(live)


def test_an_unparseable_line_is_named(log, receipt_dir, receipt_key):
    rewrite(receipt_dir, [*log[:2], b"not json", *log[3:]])
    assert "not a record" in text(run(receipt_dir, receipt_key))


def test_without_a_public_key_checkpoint_signatures_are_not_checked_and_it_says_so(log, receipt_dir, receipt_key):
    report = run(receipt_dir, receipt_key, with_public_key=False)
    assert report.ok
    assert any("checkpoint signatures were not checked" in n for n in report.notes)


def test_the_wrong_hmac_key_fails_every_record(log, receipt_dir):
    report = run(receipt_dir, ReceiptKey(b"wrong"))
    assert len([p for p in report.problems if "another key" in p.what]) == 8


def test_an_empty_folder_verifies(tmp_path, receipt_key):
    assert verify_log(tmp_path, receipt_key, None, live=False).ok


def test_a_copy_of_the_log_elsewhere_verifies_the_same(log, tmp_path, receipt_dir, receipt_key):
    copy = tmp_path / "copy" / "receipts"
    shutil.copytree(receipt_dir, copy)
    shutil.copytree(receipt_dir.parent / "certs", copy.parent / "certs")
    assert run(copy, receipt_key).ok
