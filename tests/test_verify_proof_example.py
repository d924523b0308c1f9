"""examples/verify_proof.py: what docs/receipts.md gives a third party — a receipt proven with the public key alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enact_proxy.receipts.prove import prove
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from tests.conftest import draft

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "verify_proof.py"


@pytest.fixture
def log(receipt_dir, receipt_key):
    with ReceiptStore(receipt_dir, receipt_key, segment_bytes=3000) as store:
        written = []
        for n in range(23):  # not a power of two: the right edge of the tree is exercised
            if n % 4:
                written.append(store.write(draft(n)).result(timeout=10))
            else:
                written.append(store.open_intent(draft(n)).result(timeout=10).close([]).result(timeout=10))
    return receipt_dir, receipt_dir.parent / "certs" / "receipt-log.pub", written


def _check(tmp_path: Path, public_key: Path, proof: dict) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    # run as a user would: a plain script, outside the repository's import path
    return subprocess.run([sys.executable, str(SCRIPT), str(public_key), str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_every_receipt_is_proven_with_the_public_key_alone(tmp_path, log):
    directory, public_key, written = log
    for record in (written[0], written[5], written[-1]):
        done = _check(tmp_path, public_key, prove(directory, record.run_id).as_json())
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"ok: receipt {record.run_id}")


@pytest.mark.parametrize("tamper", ["record", "path", "index", "checkpoint", "key"])
def test_anything_altered_is_not_proven(tmp_path, log, tamper):
    directory, public_key, written = log
    proof = prove(directory, written[7].run_id).as_json()
    key = public_key
    if tamper == "record":
        proof["record"]["decision"] = "PASS" if proof["record"]["decision"] == "BLOCK" else "BLOCK"
    elif tamper == "path":
        proof["audit_path"][0] = "00" * 32
    elif tamper == "index":
        proof["leaf_index"] += 1
    elif tamper == "checkpoint":
        lines = proof["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        proof["checkpoint"] = "\n".join(lines)
    else:
        other = tmp_path / "other"
        with ReceiptStore(other / "receipts", ReceiptKey(b"another-key-0123456789abcdef")) as store:
            store.write(draft(0)).result(timeout=10)
        key = other / "certs" / "receipt-log.pub"
    done = _check(tmp_path, key, proof)
    assert done.returncode == 1
    assert done.stdout.startswith("NOT PROVEN: ")
