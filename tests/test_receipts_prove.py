"""enact_proxy/receipts/prove.py: inclusion proofs a third party checks with the public key alone.

The check here shares no code with the writer: the signed note is opened with ``cryptography`` directly
(tests/conftest.py, from SPEC §6), and the audit path is folded by RFC 6962 §2.1.1's recursive PATH
definition, not by the RFC 9162 loop the writer's helper uses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.cli import main
from enact_proxy.receipts.prove import INDEX, ProveError, prove
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from tests.conftest import draft, spec_canonical, spec_open_checkpoint


def _root_from_path(m: int, n: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 6962 §2.1.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else
    PATH(m - k, D[k:n]) : MTH(D[0:k]); folded back up from the leaf."""
    if n == 1:
        assert not path, "a proof longer than the tree is deep"
        return leaf
    assert path, "a proof shorter than the tree is deep"
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return hashlib.sha256(b"\x01" + _root_from_path(m, k, leaf, path[:-1]) + path[-1]).digest()
    return hashlib.sha256(b"\x01" + path[-1] + _root_from_path(m - k, n - k, leaf, path[:-1])).digest()


def third_party_check(proof: dict[str, Any], public_key_text: str) -> bool:
    _, size, root = spec_open_checkpoint(proof["checkpoint"], public_key_text)
    if size != proof["tree_size"] or not 0 <= proof["leaf_index"] < size:
        return False
    leaf = hashlib.sha256(b"\x00" + spec_canonical(proof["record"])).digest()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    try:
        return _root_from_path(proof["leaf_index"], size, leaf, path) == root
    except AssertionError:
        return False


@pytest.fixture
def log(receipt_dir: Path, receipt_key: ReceiptKey) -> list[Any]:
    with ReceiptStore(receipt_dir, receipt_key, segment_bytes=4000) as store:
        written = []
        for n in range(37):  # odd sizes exercise the right edge of the tree
            if n % 3:
                written.append(store.write(draft(n)).result(timeout=10))
            else:
                ticket = store.open_intent(draft(n)).result(timeout=10)
                written.append(ticket.close([]).result(timeout=10))
    return written


def test_every_receipt_proves_against_head_with_only_the_public_key(log, receipt_dir, monkeypatch, capsys):
    public = (receipt_dir.parent / "certs" / "receipt-log.pub").read_text()
    monkeypatch.delenv(KEY_ENV, raising=False)
    for receipt in log:
        assert main(["receipts", "prove", receipt.run_id, "--dir", str(receipt_dir),
                     "--public-key", str(receipt_dir.parent / "certs" / "receipt-log.pub")]) == 0
        proof = json.loads(capsys.readouterr().out)
        assert proof["record"] == receipt.record_dict()
        assert proof["leaf_index"] == receipt.seq and proof["tree_size"] == 50
        assert third_party_check(proof, public)
        # and a proof of something else does not hold
        forged = {**proof, "record": {**proof["record"], "decision": "BLOCK"}}
        assert not third_party_check(forged, public)


def test_a_stale_or_corrupted_index_is_extended_or_rebuilt(log, receipt_dir, receipt_key):
    first = prove(receipt_dir, log[0].run_id)
    assert first.leaf_index == log[0].seq == 1  # its intent is leaf 0
    index = receipt_dir / INDEX
    level0 = index / "level-00"
    level0.write_bytes(b"\x00" * 64 + level0.read_bytes()[64:])  # a damaged cache is never trusted
    again = prove(receipt_dir, log[1].run_id)
    assert again.audit_path and again.leaf_index == log[1].seq
    with ReceiptStore(receipt_dir, receipt_key) as store:  # more records: the index is extended
        newer = store.write(draft(99)).result(timeout=10)
    later = prove(receipt_dir, newer.run_id)
    assert later.leaf_index == newer.seq and later.tree_size == newer.seq + 1


def test_unknown_run_id_and_a_log_that_does_not_match_head(log, receipt_dir):
    with pytest.raises(ProveError, match="no receipt"):
        prove(receipt_dir, "nope")
    segment = sorted(receipt_dir.glob("*/*.jsonl"), key=lambda p: int(p.stem))[-1]
    segment.write_bytes(segment.read_bytes().replace(b"lead36@", b"LEAD36@"))  # the receipt to prove
    with pytest.raises(ProveError, match="does not match HEAD"):
        prove(receipt_dir, log[-1].run_id)
