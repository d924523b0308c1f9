"""enact_proxy/cli.py habits for scripts: a closed pipe is no traceback, --json (JSON Lines), exit codes in --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enact_proxy.cli import EXIT_BROKEN_PIPE, main
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.store import ReceiptStore
from tests.conftest import draft, spec_receipts

KEY = "cli-output-test-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def _log(directory: Path, count: int) -> list[dict]:
    with ReceiptStore(directory, ReceiptKey(KEY.encode())) as store:
        futures = [store.write(draft(n, decision="BLOCK" if n % 3 == 0 else "PASS",
                                     reason=f"reason {n} " + "x" * 200))
                   for n in range(count)]
        return [f.result(timeout=30).record_dict() for f in futures]


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "receipts"
    return directory, _log(directory, 6)


def _command() -> list[str]:
    script = shutil.which("enact-proxy")
    return [script] if script else [sys.executable, "-m", "enact_proxy.cli"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


# -- a reader that goes away --------------------------------------------------------------------------

class _ClosedPipe:
    """A stdout whose reader is gone: every write raises as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("not a file")


def test_a_broken_pipe_ends_the_command_quietly(log, monkeypatch):
    directory, _ = log
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["receipts", "list", "--dir", str(directory)]) == EXIT_BROKEN_PIPE
    assert main(["receipts", "list", "--dir", str(directory), "--json"]) == EXIT_BROKEN_PIPE


def test_a_closed_pipe_prints_no_traceback(log):
    directory, _ = log
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        done = subprocess.run([*_command(), "receipts", "list", "--dir", str(directory)], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=_env(), timeout=120)
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == EXIT_BROKEN_PIPE


def test_receipts_list_piped_into_head(tmp_path):
    directory = tmp_path / "receipts"
    _log(directory, 400)  # far more than a pipe buffers: head leaves while the list is still writing
    for extra in ([], ["--json"]):
        done = subprocess.run(["bash", "-c", 'set -o pipefail; "$@" | head -2', "sh", *_command(), "receipts", "list",
                               "--dir", str(directory), "--limit", "1000", *extra],
                              capture_output=True, text=True, env=dict(_env(), **{KEY_ENV: KEY}), timeout=120)
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
        assert done.stderr == ""
        assert len(done.stdout.splitlines()) == 2


# -- --json ------------------------------------------------------------------------------------------

def test_list_json_is_one_log_record_per_line_newest_first(log, capsys):
    directory, records = log
    assert main(["receipts", "list", "--dir", str(directory), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == sorted(records, key=lambda r: r["seq"], reverse=True)
    assert all(line.startswith("{") and "\n" not in line for line in lines)  # no header, no footer


def test_list_json_keeps_the_filters_and_limit(log, capsys):
    directory, records = log
    assert main(["receipts", "list", "--dir", str(directory), "--json", "--decision", "BLOCK", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == max((r for r in records if r["decision"] == "BLOCK"), key=lambda r: r["seq"])


def test_list_json_of_an_empty_log_prints_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["receipts", "list", "--dir", str(tmp_path / "empty"), "--json"]) == 0
    assert capsys.readouterr().out == ""


def test_show_json_is_the_record_as_logged(log, capsys):
    directory, records = log
    wanted = records[2]
    assert main(["receipts", "show", wanted["run_id"], "--dir", str(directory), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == wanted == spec_receipts(directory)[wanted["run_id"]]
    assert main(["receipts", "show", "no-such-run", "--dir", str(directory), "--json"]) == 1
    assert capsys.readouterr().out == ""


# -- exit codes in --help ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["run"], ["demo"], ["check"], ["test"], ["replay"], ["receipts", "list"], ["receipts", "show"],
    ["receipts", "verify"], ["receipts", "prove"], ["approvals", "list"], ["approvals", "approve"],
    ["approvals", "deny"],
])
def test_every_command_documents_its_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 " in text
    assert "; 1 " in text or "; 2 " in text
    assert "141 when the reader of its output went away" in text


def test_an_invalid_config_for_a_receipts_command_exits_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "enact.yaml"
    bad.write_text("version: 1\nactor: {email: a@b.c}\ncolour: blue\n")
    assert main(["receipts", "list", "--config", str(bad)]) == 2
    assert "colour: unknown key" in capsys.readouterr().err


def test_agent_written_text_stays_on_its_line_in_list_and_show(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "receipts"
    hostile = "push to refs/heads/x\n2024-01-15 10:00:00 PASS     forged\x1b[2J\u202e"
    with ReceiptStore(directory, ReceiptKey(KEY.encode())) as store:
        record = store.write(draft(0, decision="BLOCK", reason=hostile, payload={"branch": hostile})).result(timeout=10)
    assert main(["receipts", "list", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3  # header, the one receipt, the count
    assert "\x1b" not in out and "\u202e" not in out and "\\n2024-01-15" in out
    assert main(["receipts", "show", record.run_id, "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert not any(line.startswith("2024-01-15 10:00:00 PASS") for line in out.splitlines())


def _leaves(parser):
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in action.choices.values():
            yield from _leaves(child)


def test_no_command_lacks_its_exit_codes():
    from enact_proxy.cli import _parser

    leaves = list(_leaves(_parser()))
    assert len(leaves) >= 12
    for leaf in leaves:
        assert leaf.epilog and "exit codes: 0 " in leaf.epilog, leaf.prog
