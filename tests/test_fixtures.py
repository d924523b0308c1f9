"""enact_proxy/fixtures.py: ``enact-proxy test FILE...`` — policy fixtures judged offline (SPEC §9)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from enact_proxy.cli import main
from enact_proxy.fixtures import run_files

ROOT = Path(__file__).resolve().parent.parent

CONFIG: dict[str, Any] = {
    "version": 1,
    "actor": {"email": "agent@company.com", "roles": ["sales_agent"]},
    "receipts": {"dir": "receipts-never-written"},
    "systems": {"hubspot": {"upstream": "http://127.0.0.1:9"}, "github": {"upstream": "http://127.0.0.1:9"}},
    "workflows": {"lead": ["hubspot.create_contact", "hubspot.create_task"],
                  "git": ["github.push_commit"]},
    "policies": ["no_duplicate_contacts", {"limit_tasks_per_contact": {"max_tasks": 2, "window_minutes": 60}},
                 {"require_actor_role": {"roles": ["sales_agent"]}}, "no_push_to_main",
                 {"require_branch_prefix": {"prefix": "agent/"}}],
}
NEW = {"name": "new contact", "action": "hubspot.create_contact",
       "payload": {"email": "jane@acme.com", "properties": {"email": "jane@acme.com"}},
       "lookups": {"hubspot.find_contact_by_email": None}, "expect": "PASS"}
PUSH_MAIN = {"name": "push to main", "action": "github.push_commit",
             "payload": {"owner": "a", "repo": "b", "branch": "main", "files": ["x"], "force": False},
             "expect": "BLOCK", "policy": "no_push_to_main"}


def _write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def _fixture(tmp_path: Path, cases: list[dict[str, Any]], config: Any = None, name: str = "t.yaml") -> Path:
    return _write(tmp_path / name, {"config": CONFIG if config is None else config, "cases": cases})


def _run(*paths: Path) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_files(paths, out=out, err=err)
    return code, out.getvalue().splitlines(), err.getvalue()


def test_all_matching_cases_exit_0_with_only_a_summary(tmp_path):
    code, lines, err = _run(_fixture(tmp_path, [NEW, PUSH_MAIN]))
    assert (code, err) == (0, "")
    assert lines == ["2 case(s): 2 matched, 0 mismatched, 0 error(s)"]


def test_a_mismatch_prints_one_line_naming_case_expected_got_and_failing_policies(tmp_path):
    wrong = dict(PUSH_MAIN, name="main is fine", expect="PASS", policy=None)
    path = _fixture(tmp_path, [NEW, wrong])
    code, lines, _ = _run(path)
    assert code == 1
    assert len(lines) == 2
    assert lines[0].startswith(f"FAIL {path}: main is fine: expected PASS, got BLOCK — ")
    assert "no_push_to_main: push to refs/heads/main is forbidden" in lines[0]
    assert "require_branch_prefix: " in lines[0]  # every failing policy, with its reason
    assert lines[1] == "2 case(s): 1 matched, 1 mismatched, 0 error(s)"


def test_block_matches_only_when_each_named_policy_failed(tmp_path):
    both = dict(PUSH_MAIN, name="both", policy=["no_push_to_main", "require_branch_prefix"])
    one_other = dict(PUSH_MAIN, name="prefix only", policy="require_branch_prefix")  # others may fail too
    not_failing = dict(PUSH_MAIN, name="wrong policy", policy="require_actor_role")
    code, lines, _ = _run(_fixture(tmp_path, [both, one_other, not_failing]))
    assert code == 1
    assert [line.split(": ")[1] for line in lines[:-1]] == ["wrong policy"]
    assert "expected BLOCK (require_actor_role), got BLOCK" in lines[0]


def test_expected_block_that_passes_is_a_mismatch(tmp_path):
    case = dict(NEW, name="should block", expect="BLOCK", policy="no_duplicate_contacts")
    code, lines, _ = _run(_fixture(tmp_path, [case]))
    assert code == 1
    assert "should block: expected BLOCK (no_duplicate_contacts), got PASS" in lines[0]


def test_a_lookup_answer_decides_and_the_answer_reaches_the_reason(tmp_path):
    existing = dict(NEW, name="exists", expect="BLOCK", policy="no_duplicate_contacts",
                    lookups={"hubspot.find_contact_by_email": {"id": "501", "properties": {"email": "jane@acme.com"}}})
    wrong = dict(existing, name="exists but expected pass", expect="PASS", policy=None)
    code, lines, _ = _run(_fixture(tmp_path, [existing, wrong]))
    assert code == 1
    assert len(lines) == 2 and "exists but expected pass" in lines[0]
    assert "contact jane@acme.com already exists (id 501)" in lines[0]


def test_an_unanswered_lookup_is_an_error_not_a_pass_or_block(tmp_path):
    unanswered = dict(NEW, name="no answer", lookups={})
    # expecting BLOCK would "match" the failed policy: it must still be an error
    unanswered_block = dict(NEW, name="no answer, block", lookups={}, expect="BLOCK",
                            policy="no_duplicate_contacts")
    code, lines, _ = _run(_fixture(tmp_path, [unanswered, unanswered_block]))
    assert code == 1
    assert lines[0].startswith(f"ERROR {tmp_path / 't.yaml'}: no answer: unanswered lookup "
                               "hubspot.find_contact_by_email('jane@acme.com')")
    assert "no answer, block" in lines[1] and lines[1].startswith("ERROR ")
    assert lines[2] == "2 case(s): 0 matched, 0 mismatched, 2 error(s)"


def test_state_counts_earlier_cases_in_order_and_each_file_starts_fresh(tmp_path):
    task = {"action": "hubspot.create_task", "payload": {"properties": {}, "contact_ids": ["501"]}}
    cases = [dict(task, name="one", expect="PASS"), dict(task, name="two", expect="PASS"),
             dict(task, name="three", expect="BLOCK", policy="limit_tasks_per_contact"),
             dict(NEW, name="jane"), dict(NEW, name="jane again", expect="BLOCK", policy="no_duplicate_contacts")]
    first, second = _fixture(tmp_path, cases, name="a.yaml"), _fixture(tmp_path, cases, name="b.yaml")
    code, lines, _ = _run(first, second)
    assert (code, lines) == (0, ["10 case(s): 10 matched, 0 mismatched, 0 error(s)"])


def test_a_refused_case_takes_no_claim(tmp_path):
    task = {"action": "hubspot.create_task", "payload": {"properties": {}, "contact_ids": ["7"]}}
    contractor_like = dict(task, name="no role", actor={"roles": ["intern"]}, expect="BLOCK",
                           policy="require_actor_role")
    cases = [contractor_like, contractor_like, dict(task, name="one", expect="PASS"),
             dict(task, name="two", expect="PASS")]
    assert _run(_fixture(tmp_path, cases))[0] == 0


def test_case_time_moves_sliding_windows(tmp_path):
    task = {"action": "hubspot.create_task", "payload": {"properties": {}, "contact_ids": ["9"]}}
    cases = [dict(task, name="a", expect="PASS", now="2024-01-15T10:00:00Z"),
             dict(task, name="b", expect="PASS", now="2024-01-15T10:10:00Z"),
             dict(task, name="c", expect="BLOCK", now="2024-01-15T10:20:00Z"),
             dict(task, name="d", expect="PASS", now="2024-01-15T11:05:00Z")]
    assert _run(_fixture(tmp_path, cases))[0] == 0


def test_actor_overrides_email_and_roles(tmp_path):
    case = dict(PUSH_MAIN, name="role", payload=dict(PUSH_MAIN["payload"], branch="agent/x"),
                actor={"email": "intern@company.com", "roles": ["intern"]}, expect="BLOCK", policy=None)
    code, lines, _ = _run(_fixture(tmp_path, [dict(case, expect="PASS")]))
    assert code == 1
    assert "actor intern@company.com has roles ['intern']" in lines[0]
    assert _run(_fixture(tmp_path, [dict(case, policy="require_actor_role")]))[0] == 0


def test_inline_and_path_configs_judge_alike(tmp_path):
    (tmp_path / "conf").mkdir()
    _write(tmp_path / "conf" / "enact.yaml", CONFIG)
    cases = [NEW, PUSH_MAIN, dict(NEW, name="dup", expect="BLOCK", policy="no_duplicate_contacts")]
    by_path = _fixture(tmp_path, cases, config="conf/enact.yaml", name="by-path.yaml")
    inline = _fixture(tmp_path, cases, name="inline.yaml")
    assert _run(by_path)[:2] == _run(inline)[:2] == (0, ["3 case(s): 3 matched, 0 mismatched, 0 error(s)"])
    # nothing was recorded anywhere: no receipts folder beside either config, no certs
    assert not list(tmp_path.rglob("receipts-never-written")) and not list(tmp_path.rglob("certs"))


def test_an_invalid_inline_config_exits_2_naming_the_key(tmp_path):
    bad = dict(CONFIG, policies=["no_such_policy"], colour="blue")
    code, lines, err = _run(_fixture(tmp_path, [NEW], config=bad))
    assert code == 2
    assert "config.colour: unknown key" in err
    assert lines[-1].endswith("1 file(s) could not be used")


def test_an_invalid_config_file_exits_2_naming_it(tmp_path):
    _write(tmp_path / "enact.yaml", dict(CONFIG, workflows={"w": ["hubspot.create_contakt"]}))
    code, _, err = _run(_fixture(tmp_path, [NEW], config="enact.yaml"))
    assert code == 2
    assert "workflows.w.0: unknown action 'hubspot.create_contakt'" in err
    code, _, err = _run(_fixture(tmp_path, [NEW], config="missing.yaml"))
    assert code == 2 and "cannot read" in err


@pytest.mark.parametrize(("content", "says"), [
    ("cases: [", "not valid YAML"),
    ("- just a list", "top level must be a mapping"),
    ({"config": CONFIG, "cases": [dict(NEW, expected="PASS")]}, "cases.0 (new contact).expected: unknown key"),
    ({"config": CONFIG, "cases": [dict(NEW, expect="MAYBE")]}, "cases.0 (new contact).expect:"),
    ({"config": CONFIG, "cases": []}, "cases:"),
    ({"config": CONFIG, "cases": [dict(NEW, action="hubspot.create_contakt")]}, "unknown action"),
    ({"config": CONFIG, "cases": [dict(PUSH_MAIN, policy="no_push_to_mian")]}, "'no_push_to_mian' is not a policy"),
    ({"config": CONFIG, "cases": [dict(NEW, policy="no_duplicate_contacts")]}, "expect must be BLOCK"),
    ({"config": CONFIG, "cases": [dict(NEW, lookups={"slack.find": 1})]}, "system 'slack' is not configured"),
])
def test_an_invalid_fixture_file_exits_2(tmp_path, content, says):
    code, _, err = _run(_write(tmp_path / "t.yaml", content))
    assert code == 2
    assert says in err


def test_unreadable_file_exits_2_and_other_files_still_run(tmp_path):
    wrong = _fixture(tmp_path, [dict(NEW, expect="BLOCK")], name="wrong.yaml")
    code, lines, err = _run(tmp_path / "absent.yaml", wrong)
    assert code == 2
    assert "absent.yaml: cannot read" in err
    assert any(line.startswith(f"FAIL {wrong}") for line in lines)


def test_cli_test_subcommand(tmp_path, capsys):
    assert main(["test", str(_fixture(tmp_path, [NEW]))]) == 0
    assert "1 matched" in capsys.readouterr().out


def test_the_shipped_example_passes_through_the_console_script():
    """CI runs examples/policy-tests.yaml: every case in it holds."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = shutil.which("enact-proxy")
    command = [script] if script else [sys.executable, "-m", "enact_proxy.cli"]
    done = subprocess.run([*command, "test", "examples/policy-tests.yaml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 mismatched, 0 error(s)" in done.stdout
    example = yaml.safe_load((ROOT / "examples" / "policy-tests.yaml").read_text())
    cases = example["cases"]
    assert any(c.get("lookups") for c in cases)  # the README's promise: a lookup answer
    assert any(c["expect"] == "PASS" for c in cases)
    assert any(c["expect"] == "BLOCK" and c.get("policy") for c in cases)
    assert any(c.get("policy") == "limit_tasks_per_contact" for c in cases)  # a stateful case


def test_require_approval_is_held_without_waiting_for_a_person(tmp_path, monkeypatch):
    import policies.approval

    def no_waiting(seconds):
        raise AssertionError(f"offline judging waited {seconds}s for a person")

    monkeypatch.setattr(policies.approval.time, "sleep", no_waiting)
    config = dict(CONFIG, workflows={"git": ["github.merge_pr"]},
                  policies=[{"require_approval": {"actions": ["github.merge_pr"], "hold_seconds": 30}}])
    merge = {"name": "merge", "action": "github.merge_pr", "expect": "PASS",
             "payload": {"owner": "a", "repo": "b", "number": 1, "base": "dev", "head": "agent/x"}}
    code, lines, _ = _run(_fixture(tmp_path, [merge], config=config))
    assert code == 1
    assert "expected PASS, got BLOCK — require_approval: approval " in lines[0]
    assert "is pending for github.merge_pr" in lines[0]
