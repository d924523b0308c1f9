"""enact_proxy/cli.py: check, receipts list | show | verify (in-process and via the console script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enact_proxy.cli import main
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from tests.conftest import draft

KEY = "cli-test-key-0123456789abcdef"
TESTDATA = Path(__file__).parent / "testdata"


@pytest.fixture
def receipts(tmp_path, monkeypatch) -> tuple[Path, list[dict]]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)  # certs/ (receipt-log.pub) beside the receipts, as a sidecar leaves them
    directory = tmp_path / "receipts"
    with ReceiptStore(directory, ReceiptKey(KEY.encode())) as store:
        signed = [
            store.write(draft(0)).result(timeout=10),
            store.write(draft(1, decision="BLOCK", reason="no_push_to_main: push to refs/heads/main is forbidden",
                              action="github.push_commit", system="github")).result(timeout=10),
            store.write(draft(2)).result(timeout=10),
        ]
    return directory, [r.record_dict() for r in signed]


def _tamper(directory: Path, record: dict) -> None:
    (path,) = directory.glob("*/*.jsonl")
    lines = path.read_bytes().split(b"\n")
    lines[record["seq"]] = lines[record["seq"]].replace(b"lead", b"LEAD")
    path.write_bytes(b"\n".join(lines))


def test_verify_untouched_exits_0(receipts, capsys):
    directory, _ = receipts
    assert main(["receipts", "verify", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "ok: 3 record(s) (3 receipt(s), 0 intent(s))" in out
    assert "HMAC signatures" in out and "checkpoint signatures" in out


def test_verify_tampered_exits_1_naming_it(receipts, capsys):
    directory, records = receipts
    _tamper(directory, records[1])
    assert main(["receipts", "verify", "--dir", str(directory)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL seq 1 ({records[1]['run_id']})" in out and "edited" in out
    assert records[0]["run_id"] not in out


def test_verify_with_the_wrong_key_exits_1(receipts, monkeypatch):
    directory, _ = receipts
    monkeypatch.setenv(KEY_ENV, "another-key")
    assert main(["receipts", "verify", "--dir", str(directory)]) == 1


def test_verify_with_only_the_public_key_checks_the_tree_and_says_signatures_were_not_checked(
        receipts, monkeypatch, tmp_path, capsys):
    directory, records = receipts
    monkeypatch.delenv(KEY_ENV)
    public = tmp_path / "certs" / "receipt-log.pub"
    argv = ["receipts", "verify", "--dir", str(directory), "--certs-dir", str(tmp_path / "nokeys"),
            "--public-key", str(public)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "HMAC signatures were not checked" in out and "checkpoint signatures" in out
    assert not (tmp_path / "nokeys").exists()  # verify never creates a key
    _tamper(directory, records[1])
    assert main(argv) == 1  # the Merkle tree under the signed HEAD catches an edit without the HMAC key
    assert "HEAD: its root is not the root of the first 3 records" in capsys.readouterr().out


def test_prove_prints_a_proof_anyone_can_check_with_the_public_key(receipts, tmp_path, capsys):
    from enact_proxy.receipts.checkpoint import load_verifier
    from enact_proxy.receipts.prove import check_proof

    directory, records = receipts
    assert main(["receipts", "prove", records[1]["run_id"], "--dir", str(directory)]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert set(proof) == {"checkpoint", "leaf_index", "tree_size", "audit_path", "record"}
    assert proof["record"] == records[1] and proof["leaf_index"] == 1 and proof["tree_size"] == 3
    assert check_proof(proof, load_verifier(tmp_path / "certs" / "receipt-log.pub"))
    assert main(["receipts", "prove", "no-such-run", "--dir", str(directory)]) == 1
    assert "no receipt no-such-run" in capsys.readouterr().err


def test_verify_missing_directory_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    assert main(["receipts", "verify", "--dir", str(tmp_path / "nope")]) == 1


def test_console_script_verify(receipts):
    directory, records = receipts
    script = shutil.which("enact-proxy") or pytest.fail("the enact-proxy console script is not installed")
    env = {**os.environ, KEY_ENV: KEY}
    ok = subprocess.run([script, "receipts", "verify", "--dir", str(directory)], env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    _tamper(directory, records[2])
    bad = subprocess.run([script, "receipts", "verify", "--dir", str(directory)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1
    assert records[2]["run_id"] in bad.stdout


def test_console_script_check():
    script = shutil.which("enact-proxy") or pytest.fail("the enact-proxy console script is not installed")
    bad = subprocess.run([script, "check", "--config", str(TESTDATA / "bad_unknown_policy.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "line 5: policies.1: unknown policy 'no_push_to_mian'" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "check", "--config",
                           str(TESTDATA / "valid_full.yaml")], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr


def test_list_is_newest_first_and_filters(receipts, capsys):
    directory, records = receipts
    assert main(["receipts", "list", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    positions = [out.index(r["run_id"]) for r in records]
    assert positions == sorted(positions, reverse=True)
    assert "3 of 3 receipt(s)" in out
    assert main(["receipts", "list", "--dir", str(directory), "--decision", "BLOCK"]) == 0
    out = capsys.readouterr().out
    assert records[1]["run_id"] in out and records[0]["run_id"] not in out
    assert main(["receipts", "list", "--dir", str(directory), "--action", "push_commit"]) == 0
    assert "1 of 1 receipt(s)" in capsys.readouterr().out
    assert main(["receipts", "list", "--dir", str(directory), "--since", "1h"]) == 0
    assert "0 of 0" in capsys.readouterr().out  # the drafts are dated 2024
    assert main(["receipts", "list", "--dir", str(directory), "--since", "soon"]) == 2


def test_show_renders_one_receipt(receipts, capsys):
    directory, records = receipts
    assert main(["receipts", "show", records[1]["run_id"], "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert f"Receipt {records[1]['run_id']}" in out
    assert "BLOCK: no_push_to_main: push to refs/heads/main is forbidden" in out
    assert "FAIL" not in out  # its policy_results (from the draft) all passed
    assert main(["receipts", "show", "no-such-run", "--dir", str(directory)]) == 1


def test_receipts_from_the_config_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY)
    config = tmp_path / "enact.yaml"
    config.write_text("version: 1\nactor: {email: a@b.c}\nreceipts: {dir: out/receipts}\n")
    with ReceiptStore(tmp_path / "out" / "receipts", ReceiptKey(KEY.encode())) as store:
        signed = store.write(draft(0)).result(timeout=10)
    assert main(["receipts", "verify", "--config", str(config)]) == 0
    assert main(["receipts", "list", "--config", str(config)]) == 0
    assert signed.run_id in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "enact-proxy" in capsys.readouterr().out


def test_show_prints_the_payload_as_json(receipts, capsys):
    directory, records = receipts
    main(["receipts", "show", records[0]["run_id"], "--dir", str(directory)])
    payload_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("payload"))
    assert json.loads(payload_line.split("payload", 1)[1]) == records[0]["payload"]
