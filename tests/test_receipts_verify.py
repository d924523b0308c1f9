"""enact_proxy/receipts/verify.py: edited, deleted, reordered, forged receipts and HEAD are each named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from enact_proxy.receipts.verify import verify_directory
from tests.conftest import draft, independent_verify, spec_canonical


@pytest.fixture
def chain(receipt_dir: Path, receipt_key: ReceiptKey) -> list[dict]:
    with ReceiptStore(receipt_dir, receipt_key) as store:
        return [store.write(draft(n)).result(timeout=10) for n in range(5)]


def _path(directory: Path, record: dict) -> Path:
    (found,) = directory.rglob(f"{record['run_id']}.json")
    return found


def _named(directory: Path, key: ReceiptKey) -> dict[str, list[str]]:
    report = verify_directory(directory, key)
    named: dict[str, list[str]] = {}
    for problem in report.problems:
        named.setdefault(problem.where, []).append(problem.what)
    return named


def test_untouched_directory_verifies(chain, receipt_dir, receipt_key):
    report = verify_directory(receipt_dir, receipt_key)
    assert report.ok, report.problems
    assert report.checked == 5
    assert independent_verify(receipt_dir, receipt_key.secret) == []


def test_edited_receipt_is_named(chain, receipt_dir, receipt_key):
    path = _path(receipt_dir, chain[2])
    record = json.loads(path.read_bytes())
    record["payload"]["email"] = "someone-else@acme.com"
    path.write_bytes(spec_canonical(record))
    named = _named(receipt_dir, receipt_key)
    assert any("signature does not verify" in what for what in named[chain[2]["run_id"]])
    assert independent_verify(receipt_dir, receipt_key.secret) != []


def test_edited_decision_is_named(chain, receipt_dir, receipt_key):
    path = _path(receipt_dir, chain[1])
    path.write_bytes(path.read_bytes().replace(b'"decision":"PASS"', b'"decision":"BLOCK"'))
    assert chain[1]["run_id"] in _named(receipt_dir, receipt_key)


def test_deleted_middle_receipt_names_its_successor(chain, receipt_dir, receipt_key):
    _path(receipt_dir, chain[2]).unlink()
    named = _named(receipt_dir, receipt_key)
    assert any("missing" in what for what in named[chain[3]["run_id"]])
    assert any("counts 5" in what for what in named["HEAD"])


def test_deleted_newest_receipt_is_caught_through_head(chain, receipt_dir, receipt_key):
    _path(receipt_dir, chain[4]).unlink()
    named = _named(receipt_dir, receipt_key)
    assert any("missing" in what for what in named[chain[4]["run_id"]])
    assert verify_directory(receipt_dir, receipt_key).ok is False


def test_deleted_newest_with_head_is_caught(chain, receipt_dir, receipt_key):
    _path(receipt_dir, chain[4]).unlink()
    (receipt_dir / "HEAD").unlink()
    assert "HEAD" in _named(receipt_dir, receipt_key)


def test_swapped_contents_are_named(chain, receipt_dir, receipt_key):
    a, b = _path(receipt_dir, chain[1]), _path(receipt_dir, chain[3])
    body_a, body_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(body_b)
    b.write_bytes(body_a)
    named = _named(receipt_dir, receipt_key)
    assert chain[1]["run_id"] in named
    assert chain[3]["run_id"] in named


def test_renamed_files_are_named(chain, receipt_dir, receipt_key):
    a, b = _path(receipt_dir, chain[0]), _path(receipt_dir, chain[2])
    spare = a.with_name("swap.tmp")
    os.rename(a, spare)
    os.rename(b, a)
    os.rename(spare, b)
    named = _named(receipt_dir, receipt_key)
    assert {chain[0]["run_id"], chain[2]["run_id"]} <= set(named)


def test_receipt_resigned_with_another_key_is_named(chain, receipt_dir, receipt_key):
    path = _path(receipt_dir, chain[2])
    record = json.loads(path.read_bytes())
    record.pop("signature")
    record["decision"] = "PASS"
    record["payload"] = {"email": "forged@acme.com"}
    path.write_bytes(spec_canonical(ReceiptKey(b"attacker").signed(record)))
    named = _named(receipt_dir, receipt_key)
    assert any("another key" in what for what in named[chain[2]["run_id"]])


def test_receipt_forged_under_our_key_id_is_named(chain, receipt_dir, receipt_key):
    path = _path(receipt_dir, chain[3])
    record = json.loads(path.read_bytes())
    forged = ReceiptKey(b"attacker").signed({k: v for k, v in record.items() if k != "signature"})
    forged["signature"]["key_id"] = receipt_key.key_id
    path.write_bytes(spec_canonical(forged))
    named = _named(receipt_dir, receipt_key)
    assert any("signature does not verify" in what for what in named[chain[3]["run_id"]])


def test_added_receipt_is_named(chain, receipt_dir, receipt_key):
    extra = ReceiptKey(b"attacker").signed({**draft(9), "prev_hash": None})
    (receipt_dir / f"{extra['run_id']}.json").write_bytes(spec_canonical(extra))
    assert extra["run_id"] in _named(receipt_dir, receipt_key)


def test_edited_head_is_named(chain, receipt_dir, receipt_key):
    head_path = receipt_dir / "HEAD"
    head = json.loads(head_path.read_bytes())
    head["count"] = 4
    head_path.write_bytes(spec_canonical(head))
    named = _named(receipt_dir, receipt_key)
    assert any("signature" in what for what in named["HEAD"])


def test_head_resigned_by_another_key_is_named(chain, receipt_dir, receipt_key):
    head = json.loads((receipt_dir / "HEAD").read_bytes())
    head.pop("signature")
    (receipt_dir / "HEAD").write_bytes(spec_canonical(ReceiptKey(b"attacker").signed(head)))
    assert "HEAD" in _named(receipt_dir, receipt_key)


def test_unreadable_file_is_named(chain, receipt_dir, receipt_key):
    junk = receipt_dir / "junk.json"
    junk.write_bytes(b"{not json")
    assert str(junk) in _named(receipt_dir, receipt_key)


def test_wrong_key_fails_everything(chain, receipt_dir):
    report = verify_directory(receipt_dir, ReceiptKey(b"not-the-key"))
    assert not report.ok
    assert {p.where for p in report.problems} >= {r["run_id"] for r in chain} | {"HEAD"}


def test_empty_directory_verifies(tmp_path, receipt_key):
    assert verify_directory(tmp_path, receipt_key).ok
