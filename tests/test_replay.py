"""enact_proxy/replay.py: ``enact-proxy replay`` — recorded actions judged again under a new config (SPEC §9)."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from enact_proxy.cli import main
from enact_proxy.config import load_config
from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest, ActionResult, RequestSummary
from enact_proxy.offline import offline_policies
from enact_proxy.receipts.store import ReceiptStore
from enact_proxy.replay import identify, run_replay
from enact_proxy.state import SqliteStateStore
from tests.conftest import FixedClock

BASE: dict[str, Any] = {
    "version": 1,
    "actor": {"email": "agent@company.com", "roles": ["sales_agent"]},
    "receipts": {"dir": "receipts"},
    "systems": {"hubspot": {"upstream": "http://127.0.0.1:9"}, "github": {"upstream": "http://127.0.0.1:9"},
                "postgres": {"upstream": "postgresql://app@127.0.0.1:9/app"}},
    "workflows": {"lead": ["hubspot.create_contact", "hubspot.create_task"],
                  "git": ["github.push_commit", "github.merge_pr"],
                  "sql": ["postgres.update_row"]},
    "policies": ["no_push_to_main", {"require_branch_prefix": {"prefix": "agent/"}},
                 {"limit_tasks_per_contact": {"max_tasks": 3, "window_minutes": 60}}],
}


def push(branch: str) -> ActionRequest:
    return ActionRequest(system="github", action="push_commit",
                         payload={"owner": "acme", "repo": "app", "branch": branch, "files": ["a.py"], "force": False},
                         request=RequestSummary(method="PATCH", host="api.github.com",
                                                path=f"/repos/acme/app/git/refs/heads/{branch}"))


def task(contact: str) -> ActionRequest:
    return ActionRequest(system="hubspot", action="create_task", payload={"properties": {}, "contact_ids": [contact]})


def contact(email: str) -> ActionRequest:
    return ActionRequest(system="hubspot", action="create_contact",
                         payload={"email": email, "properties": {"email": email}})


class HubSpotAnswers:
    """What the recording sidecar's HubSpot said: no contact exists."""

    def find_contact_by_email(self, email: str) -> None:
        return None


def config_file(folder: Path, name: str = "enact.yaml", **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump({**BASE, **changes}, sort_keys=False))
    return path


class Recorder:
    """A sidecar's engine writing a real log: passes opened as intents and closed, refusals recorded."""

    def __init__(self, config: Path, receipt_key, when: datetime):
        self.config = load_config(config)
        self.clock = FixedClock(when)
        self.store = ReceiptStore(self.config.receipts_dir, receipt_key).start()
        self.engine = Engine(policies=offline_policies(self.config), workflows=self.config.workflows,
                             actor_email=self.config.raw.actor.email, actor_roles=self.config.raw.actor.roles,
                             receipts=self.store, state=SqliteStateStore(":memory:"),
                             config_sha256=self.config.sha256, clock=self.clock)

    def request(self, *actions: ActionRequest) -> list[str]:
        judgement = self.engine.judge_request(list(actions), {"hubspot": HubSpotAnswers()})
        for verdict in judgement.verdicts:
            if judgement.forwards:
                ticket = self.engine.open(verdict).result(timeout=10)
                self.engine.close(ticket, [ActionResult(action=verdict.action.action, system=verdict.action.system,
                                                        success=True, output={"status": 200})]).result(timeout=10)
            else:
                self.engine.record(verdict).result(timeout=10)
        self.clock.advance(seconds=1)
        return [v.run_id for v in judgement.verdicts]

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def recorded(tmp_path, receipt_key):
    """A log recorded under BASE: two pushes to agent/ branches, a push to main, three tasks, a contact."""
    old = config_file(tmp_path / "old")
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    ids = {"agent1": rec.request(push("agent/one"))[0], "main": rec.request(push("main"))[0],
           "agent2": rec.request(push("agent/two"))[0]}
    ids["tasks"] = [rec.request(task("501"))[0] for _ in range(3)]
    rec.close()
    return tmp_path, old.parent / "receipts", ids


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _replay(config: Path, **kw: Any) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_replay(config, out=out, err=err, **kw)
    return code, out.getvalue().splitlines(), err.getvalue()


def test_the_same_config_changes_nothing_and_writes_nothing(recorded):
    tmp_path, receipts, _ = recorded
    before = _snapshot(receipts)
    code, lines, err = _replay(tmp_path / "old" / "enact.yaml")  # --dir defaults to its receipts.dir
    assert (code, err) == (0, "")
    assert len(lines) == 1
    assert lines[0].startswith("6 action(s) replayed: 0 would change, 0 unanswerable offline")
    assert _snapshot(receipts) == before  # no receipt, no state file, no checkpoint added
    assert not (receipts / ".state.sqlite").exists()


def test_a_stricter_prefix_prints_each_changed_action_with_its_branch_and_reason(recorded):
    tmp_path, receipts, ids = recorded
    new = config_file(tmp_path / "new", policies=["no_push_to_main", {"require_branch_prefix": {"prefix": "bot/"}}])
    code, lines, _ = _replay(new, directory=receipts)
    assert code == 1
    changed = lines[:-1]
    assert len(changed) == 2
    assert changed[0].startswith(f"{ids['agent1']}  github.push_commit  branch=agent/one  PASS → BLOCK  "
                                 "require_branch_prefix: ")
    assert "bot/" in changed[0]
    assert changed[1].startswith(f"{ids['agent2']}  github.push_commit  branch=agent/two  PASS → BLOCK")
    assert lines[-1].startswith("6 action(s) replayed: 2 would change, 0 unanswerable offline")


def test_a_looser_config_turns_a_block_into_a_pass(recorded):
    tmp_path, receipts, ids = recorded
    new = config_file(tmp_path / "new", policies=[])
    code, lines, _ = _replay(new, directory=receipts)
    assert code == 1
    (line,) = lines[:-1]
    assert line.startswith(f"{ids['main']}  github.push_commit  branch=main  BLOCK → PASS  allowed by workflow git")


def test_a_workflow_removed_refuses_its_actions(recorded):
    tmp_path, receipts, _ = recorded
    new = config_file(tmp_path / "new", workflows={"lead": ["hubspot.create_task"]})
    code, lines, _ = _replay(new, directory=receipts)
    assert code == 1
    assert [line.split("  ")[2] for line in lines[:-1]] == ["branch=agent/one", "branch=agent/two"]
    assert all("no registered workflow allows github.push_commit" in line for line in lines[:-1])


def test_stateful_policies_count_the_replayed_actions_in_log_order(recorded):
    tmp_path, receipts, ids = recorded
    new = config_file(tmp_path / "new", policies=[{"limit_tasks_per_contact": {"max_tasks": 2,
                                                                                "window_minutes": 60}}])
    code, lines, _ = _replay(new, directory=receipts)
    assert code == 1
    changed = [line for line in lines[:-1] if "create_task" in line]
    assert len(changed) == 1 and changed[0].startswith(f"{ids['tasks'][2]}  hubspot.create_task  contact_ids=501  "
                                                       "PASS → BLOCK  limit_tasks_per_contact: ")


def test_a_lookup_is_unanswerable_never_guessed(tmp_path, receipt_key):
    old = config_file(tmp_path / "old", policies=["no_duplicate_contacts"])
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    (jane,) = rec.request(contact("jane@acme.com"))
    (kim,) = rec.request(contact("kim@acme.com"))
    rec.close()
    new = config_file(tmp_path / "new", policies=["no_duplicate_contacts",
                                                  {"require_actor_role": {"roles": ["sales_agent"]}}])
    code, lines, _ = _replay(new, directory=tmp_path / "old" / "receipts")
    assert code == 0  # nothing is known to change
    assert lines[0] == (f"{jane}  hubspot.create_contact  email=jane@acme.com  PASS → ?  unanswerable offline: "
                        "hubspot.find_contact_by_email('jane@acme.com')")
    assert lines[-1].startswith("2 action(s) replayed: 0 would change, 2 unanswerable offline")
    # with an actor lacking the role, both are refused whatever HubSpot would answer
    bare = config_file(tmp_path / "new2", receipts={"dir": str(tmp_path / "old" / "receipts")},
                       actor={"email": "agent@company.com", "roles": ["intern"]},
                       policies=["no_duplicate_contacts", {"require_actor_role": {"roles": ["sales_agent"]}}])
    code, lines, _ = _replay(bare)
    assert code == 1  # refused for the role whatever HubSpot answers: a known change, not a guess
    assert lines[0].startswith(f"{jane}  hubspot.create_contact  email=jane@acme.com  PASS → BLOCK  "
                               "require_actor_role: ")
    assert "no_duplicate_contacts" not in lines[0]
    assert kim in lines[1]


def test_since_keeps_only_recent_receipts(tmp_path, receipt_key):
    old = config_file(tmp_path / "old")
    now = datetime.now(UTC)
    rec = Recorder(old, receipt_key, now - timedelta(days=3))
    rec.request(push("agent/old"))
    rec.clock.now = now - timedelta(minutes=5)
    (recent,) = rec.request(push("agent/recent"))
    rec.close()
    new = config_file(tmp_path / "new", policies=[{"require_branch_prefix": {"prefix": "bot/"}}])
    code, lines, _ = _replay(new, directory=old.parent / "receipts", since="24h")
    assert code == 1
    assert [line.split("  ")[0] for line in lines[:-1]] == [recent]
    assert "1 older than --since" in lines[-1]


def test_a_request_refused_together_is_compared_action_by_action(tmp_path, receipt_key):
    old = config_file(tmp_path / "old")
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    ok, bad = rec.request(push("agent/ok"), push("main"))  # one request: both refused
    rec.close()
    code, lines, _ = _replay(old)  # its own policies passed agent/ok: nothing changes under the same config
    assert code == 0, lines
    new = config_file(tmp_path / "new", policies=[])
    code, lines, _ = _replay(new, directory=old.parent / "receipts")
    assert [line.split("  ")[0] for line in lines[:-1]] == [bad]


def test_skipped_records_are_counted(tmp_path, receipt_key):
    old = config_file(tmp_path / "old")
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    rec.request(push("agent/a"))
    engine = rec.engine
    egress = ActionRequest(system="egress", action="connect", payload={"host": "evil.example", "port": 443})
    engine.record(engine.refuse(egress, "egress to evil.example is not allowed")).result(timeout=10)
    engine.record(engine.refuse(push("agent/b"), "request body is not valid JSON")).result(timeout=10)
    note = ActionRequest(system="enact", action="approve", payload={"approval_id": "x", "digest": "d", "reason": ""})
    engine.record(engine.note(note, "alice@company.com", "approved")).result(timeout=10)
    rec.close()
    code, lines, _ = _replay(old)
    assert code == 0
    assert lines[-1].startswith("1 action(s) replayed: 0 would change, 0 unanswerable offline; skipped "
                                "1 egress record(s), 1 enact record(s), 1 refused on the wire before judging")


def test_a_redacted_payload_is_judged_as_recorded_and_said_so(tmp_path, receipt_key):
    old = config_file(tmp_path / "old", workflows={"sql": ["postgres.update_row"]}, policies=[])
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    (run_id,) = rec.request(ActionRequest(system="postgres", action="update_row",
                                          payload={"table": "users", "columns": ["password"], "has_where": False,
                                                   "password": "hunter2"}))
    rec.close()
    new = config_file(tmp_path / "new", workflows={"sql": ["postgres.update_row"]}, policies=["no_unbounded_write"])
    code, lines, _ = _replay(new, directory=old.parent / "receipts")
    assert code == 1
    assert lines[0].startswith(f"{run_id}  postgres.update_row  table=users  PASS → BLOCK  no_unbounded_write: ")
    assert lines[0].endswith("(judged with payload.password redacted)")
    assert "hunter2" not in "\n".join(lines)


@pytest.mark.parametrize("problem", ["bad config", "no receipts", "bad since"])
def test_errors_exit_2(tmp_path, problem):
    config = config_file(tmp_path / "c")
    kw: dict[str, Any] = {}
    if problem == "bad config":
        config.write_text(config.read_text() + "colour: blue\n")
    elif problem == "bad since":
        (tmp_path / "c" / "receipts").mkdir()
        kw["since"] = "yesterday"
    code, _, err = _replay(config, **kw)
    assert code == 2
    assert {"bad config": "colour: unknown key", "no receipts": "no receipts directory",
            "bad since": "--since takes"}[problem] in err


def test_cli_replay(recorded, capsys):
    tmp_path, receipts, _ = recorded
    new = config_file(tmp_path / "new", policies=[{"require_branch_prefix": {"prefix": "bot/"}}])
    assert main(["replay", "--config", str(new), "--dir", str(receipts)]) == 1
    assert "2 would change" in capsys.readouterr().out
    assert main(["replay", "--config", str(tmp_path / "old" / "enact.yaml")]) == 0


def test_identify_prefers_branch_email_table_then_number_or_name():
    assert identify({"owner": "a", "repo": "b", "branch": "agent/x"}) == "branch=agent/x"
    assert identify({"email": "j@a.com", "properties": {}}) == "email=j@a.com"
    assert identify({"table": "t", "columns": ["a"]}) == "table=t"
    assert identify({"owner": "a", "repo": "b", "number": 7}) == "number=7"
    assert identify({"properties": {}}) == ""


def test_an_approved_action_keeps_its_approval(tmp_path, receipt_key):
    approval = {"require_approval": {"actions": ["github.merge_pr"], "expires_minutes": 60}}
    old = config_file(tmp_path / "old", policies=[approval])
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    merge = ActionRequest(system="github", action="merge_pr",
                          payload={"owner": "acme", "repo": "app", "number": 7, "base": "dev", "head": "agent/x"})
    (held,) = rec.request(merge)
    (pending,) = rec.engine.state.list_approvals("pending", now=rec.clock())
    rec.engine.state.decide_approval(pending.id, approve=True, by="alice@company.com", reason="ok",
                                     now=rec.clock())
    (merged,) = rec.request(merge)
    rec.close()
    receipts = old.parent / "receipts"
    code, lines, _ = _replay(old)  # held again, and the approved merge keeps its person's approval
    assert code == 0, lines
    assert lines[-1].startswith("2 action(s) replayed: 0 would change")
    new = config_file(tmp_path / "new", policies=[])
    code, lines, _ = _replay(new, directory=receipts)
    assert code == 1
    assert [line.split("  ")[0] for line in lines[:-1]] == [held]
    assert merged not in "\n".join(lines)


def test_agent_written_text_cannot_break_or_colour_the_line(tmp_path, receipt_key):
    old = config_file(tmp_path / "old", policies=[])
    rec = Recorder(old, receipt_key, datetime(2024, 1, 15, 10, 0, tzinfo=UTC))
    (run_id,) = rec.request(push("agent/x\n\x1b[31mFAKE  PASS → PASS"))
    rec.close()
    new = config_file(tmp_path / "new", policies=[{"require_branch_prefix": {"prefix": "bot/"}}])
    code, lines, _ = _replay(new, directory=old.parent / "receipts")
    assert code == 1
    assert len(lines) == 2  # one changed action, one count: the newline stayed inside its line
    assert lines[0].startswith(f"{run_id}  github.push_commit  branch=agent/x\\n\\u001b[31mFAKE")
    assert "\x1b" not in lines[0]


def test_a_receipt_with_an_unreadable_timestamp_is_skipped_and_counted(recorded):
    from enact_proxy.receipts.verify import read_receipts
    from enact_proxy.replay import replay

    tmp_path, receipts, _ = recorded
    records = read_receipts(receipts)
    records[0] = records[0].model_copy(update={"timestamp": "yesterday-ish"})
    report = replay(load_config(tmp_path / "old" / "enact.yaml"), records)
    assert len(report.replayed) == 5
    assert report.skipped == {"without a readable timestamp": 1}
