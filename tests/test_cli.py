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
    directory = tmp_path / "receipts"
    with ReceiptStore(directory, ReceiptKey(KEY.encode())) as store:
        records = [
            store.write(draft(0)).result(timeout=10),
            store.write(draft(1, decision="BLOCK", reason="no_push_to_main: push to refs/heads/main is forbidden",
                              action="github.push_commit", system="github")).result(timeout=10),
            store.write(draft(2)).result(timeout=10),
        ]
    return directory, records


def _tamper(directory: Path, record: dict) -> None:
    (path,) = directory.rglob(f"{record['run_id']}.json")
    path.write_bytes(path.read_bytes().replace(b"lead", b"LEAD"))


def test_verify_untouched_exits_0(receipts, capsys):
    directory, _ = receipts
    assert main(["receipts", "verify", "--dir", str(directory)]) == 0
    assert "ok: 3 receipt(s)" in capsys.readouterr().out


def test_verify_tampered_exits_1_naming_it(receipts, capsys):
    directory, records = receipts
    _tamper(directory, records[1])
    assert main(["receipts", "verify", "--dir", str(directory)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {records[1]['run_id']}" in out
    assert records[0]["run_id"] not in out


def test_verify_with_the_wrong_key_exits_1(receipts, monkeypatch):
    directory, _ = receipts
    monkeypatch.setenv(KEY_ENV, "another-key")
    assert main(["receipts", "verify", "--dir", str(directory)]) == 1


def test_verify_without_any_key_exits_1(receipts, monkeypatch, tmp_path, capsys):
    directory, _ = receipts
    monkeypatch.delenv(KEY_ENV)
    assert main(["receipts", "verify", "--dir", str(directory), "--certs-dir", str(tmp_path / "nokeys")]) == 1
    assert "cannot load the receipt key" in capsys.readouterr().err
    assert not (tmp_path / "nokeys").exists()  # verify never creates a key


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
    assert signed["run_id"] in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "enact-proxy" in capsys.readouterr().out


def test_show_prints_the_payload_as_json(receipts, capsys):
    directory, records = receipts
    main(["receipts", "show", records[0]["run_id"], "--dir", str(directory)])
    payload_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("payload"))
    assert json.loads(payload_line.split("payload", 1)[1]) == records[0]["payload"]
