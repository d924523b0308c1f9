"""End to end: a person in the loop (SPEC §8) through real sidecars, their admin API and CLI.

The agent's identical retry passes once a person approved it, exactly once; any other action does not;
a denial names who denied it and why; approvals are shared by every sidecar on one state store.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import requests

from enact_proxy.sandbox import SandboxGitHub
from enact_proxy.sandbox.postgres import PgServer
from tests.e2e.harness import RunningSidecar, agent_session, wait_until
from tests.pg_fixtures import pg_server  # noqa: F401 - the session fixture

GITHUB = "https://api.github.com"
WORKFLOWS = {"agent_git": ["github.read", "github.create_branch", "github.create_pr", "github.merge_pr"]}


def approval_policies(hold_seconds: float = 0) -> list[Any]:
    return [{"require_approval": {"actions": ["github.merge_pr"], "expires_minutes": 60,
                                  "hold_seconds": hold_seconds}}]


def agent(sidecar: RunningSidecar) -> requests.Session:
    return agent_session(sidecar, "Bearer agent-token")


class Admin:
    """The admin API of one sidecar, as the CLI and console use it."""

    def __init__(self, sidecar: RunningSidecar):
        assert sidecar.admin, "the sidecar printed no admin address"
        self.base = f"http://{sidecar.admin}"
        self.token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
        self.http = requests.Session()
        self.http.trust_env = False

    def get(self, path: str, token: str | None = None) -> requests.Response:
        return self.http.get(self.base + path, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=10)

    def decide(self, approval_id: str, verb: str, reason: str = "") -> requests.Response:
        return self.http.post(f"{self.base}/api/approvals/{approval_id}/{verb}", json={"reason": reason},
                              headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def pending(self) -> list[dict[str, Any]]:
        answer = self.get("/api/approvals?status=pending")
        assert answer.status_code == 200, answer.text
        return answer.json()["approvals"]


def open_pull(github: SandboxGitHub, branch: str) -> int:
    direct = requests.Session()
    direct.trust_env = False
    auth = {"authorization": "Bearer seed"}
    main = github.branch_sha("acme", "app", "main")
    assert direct.post(f"{github.url}/repos/acme/app/git/refs", json={"ref": f"refs/heads/{branch}", "sha": main},
                       headers=auth, timeout=10).status_code == 201
    pull = direct.post(f"{github.url}/repos/acme/app/pulls", json={"head": branch, "base": "main", "title": branch},
                       headers=auth, timeout=10)
    assert pull.status_code == 201, pull.text
    return int(pull.json()["number"])


def merge(session: requests.Session, number: int) -> requests.Response:
    return session.put(f"{GITHUB}/repos/acme/app/pulls/{number}/merge", json={"merge_method": "squash"}, timeout=30)


@pytest.fixture
def approving(sidecar_factory: Callable[..., RunningSidecar], github: SandboxGitHub) -> RunningSidecar:
    return sidecar_factory(systems={"github": {"upstream": github.url, "git_upstream": github.url}},
                           workflows=WORKFLOWS, policies=approval_policies())


def test_a_held_merge_passes_once_after_approval_and_the_approval_is_recorded(approving, github):
    admin, session = Admin(approving), agent(approving)
    number = open_pull(github, "agent/feature")
    held = merge(session, number)
    assert held.status_code == 403 and held.headers["X-Enact-Decision"] == "BLOCK"
    message = held.json()["message"]
    assert message.startswith("Blocked by Enact: require_approval: approval ") and "is pending" in message
    (pending,) = admin.pending()
    assert pending["id"] in message and pending["action"] == "github.merge_pr" and pending["status"] == "pending"
    assert pending["payload"]["number"] == number and pending["actor"] == "agent@company.com"
    assert len(pending["digest"]) == 64
    assert merge(session, number).json()["message"] == message  # the same pending approval, not a new one
    assert len(admin.pending()) == 1

    approved = admin.decide(pending["id"], "approve", "looks good")
    assert approved.status_code == 200 and approved.json()["approval"]["decided_by"] == "admin"
    assert admin.decide(pending["id"], "approve").status_code == 409  # not pending any more

    passed = merge(session, number)
    assert passed.status_code == 200 and passed.headers["X-Enact-Decision"] == "PASS", passed.text
    receipt = approving.receipt(passed.headers["X-Enact-Receipt"])
    assert receipt["approval"] == {"id": pending["id"], "approved_by": "admin"}
    assert [p["merged"] for p in github.pulls("acme", "app") if p["number"] == number] == [True]

    again = merge(session, number)  # the grant was single use: held again, as a new approval
    assert again.status_code == 403 and pending["id"] not in again.json()["message"]
    assert [a["id"] for a in admin.pending()] != [pending["id"]]
    records = [r for r in approving.receipts() if r.get("action") == "enact.approve"]
    assert len(records) == 1
    assert records[0]["actor_email"] == "admin" and records[0]["system"] == "enact"
    assert records[0]["payload"] == {"approval_id": pending["id"], "digest": pending["digest"], "reason": "looks good"}


def test_an_approval_covers_only_its_exact_action(approving, github):
    admin, session = Admin(approving), agent(approving)
    first, second = open_pull(github, "agent/one"), open_pull(github, "agent/two")
    merge(session, first)
    (pending,) = admin.pending()
    assert admin.decide(pending["id"], "approve").status_code == 200
    other = merge(session, second)
    assert other.status_code == 403 and "is pending" in other.json()["message"]
    assert [p["merged"] for p in github.pulls("acme", "app")] == [False, False]
    assert merge(session, first).status_code == 200  # the grant was still there for the approved one


def test_a_denied_approval_refuses_retries_naming_who_and_why(approving, github):
    admin, session = Admin(approving), agent(approving)
    number = open_pull(github, "agent/risky")
    merge(session, number)
    (pending,) = admin.pending()
    denied = admin.decide(pending["id"], "deny", "not during the freeze <b>")
    assert denied.status_code == 200 and denied.json()["approval"]["status"] == "denied"
    retry = merge(session, number)
    assert retry.status_code == 403
    assert f"approval {pending['id']} was denied by admin: not during the freeze <b>" in retry.json()["message"]
    assert [r["action"] for r in approving.receipts() if r["system"] == "enact"] == ["enact.deny"]


def test_the_admin_api_and_metrics_need_a_token(approving):
    admin = Admin(approving)
    http = requests.Session()
    http.trust_env = False
    for path in ("/api/approvals", "/api/receipts", "/metrics"):
        assert http.get(admin.base + path, timeout=10).status_code == 401
        assert admin.get(path, token="not-the-token").status_code == 401
        assert admin.get(path).status_code == 200
    assert http.post(f"{admin.base}/api/approvals/{uuid.uuid4()}/approve", timeout=10).status_code == 401
    assert http.get(admin.base + "/healthz", timeout=10).status_code == 200
    ready = http.get(admin.base + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert admin.token not in "".join(approving.output)  # never logged


def test_metrics_count_decisions_and_policy_failures(approving, github):
    session = agent(approving)
    assert session.get(f"{GITHUB}/repos/acme/app", timeout=30).status_code == 200
    merge(session, open_pull(github, "agent/m"))
    text = Admin(approving).get("/metrics").text
    assert 'enact_decisions_total{action="github.read",decision="PASS",mode="enforce",system="github"} 1.0' in text
    assert 'enact_decisions_total{action="github.merge_pr",decision="BLOCK",mode="enforce",system="github"} 1.0' \
        in text
    assert 'enact_policy_failures_total{policy="require_approval"} 1.0' in text
    assert "enact_decision_seconds_bucket" in text and "enact_receipts_unwritable 0.0" in text


def test_with_hold_seconds_the_request_waits_for_the_decision(sidecar_factory, github):
    sidecar = sidecar_factory(systems={"github": {"upstream": github.url, "git_upstream": github.url}},
                              workflows=WORKFLOWS, policies=approval_policies(hold_seconds=20))
    admin, number = Admin(sidecar), open_pull(github, "agent/held")
    answers: list[requests.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(merge(agent(sidecar), number)))
    waiting.start()
    wait_until(lambda: bool(admin.pending()), what="the held request to be listed as pending", timeout=15)
    assert not answers  # still waiting for a person
    assert admin.decide(admin.pending()[0]["id"], "approve").status_code == 200
    waiting.join(30)
    assert answers and answers[0].status_code == 200, answers[0].text if answers else "no answer"


def test_approve_on_one_sidecar_retry_through_another(sidecar_factory, github, pg_server: PgServer):  # noqa: F811
    dbname = f"approvals_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as admin_conn:
        admin_conn.execute(f"CREATE DATABASE {dbname}")
    state = {"url": pg_server.url(dbname=dbname, password=""), "password_env": "STATE_PW"}
    first, second = [sidecar_factory(env={"STATE_PW": pg_server.password}, state=state, workflows=WORKFLOWS,
                                     policies=approval_policies(),
                                     systems={"github": {"upstream": github.url, "git_upstream": github.url}})
                     for _ in range(2)]
    number = open_pull(github, "agent/fleet")
    assert merge(agent(first), number).status_code == 403
    (pending,) = Admin(second).pending()  # listed on every sidecar sharing the store
    assert Admin(second).decide(pending["id"], "approve").status_code == 200
    assert merge(agent(first), number).status_code == 200
    assert merge(agent(second), number).status_code == 403  # used once, fleet-wide


def test_cli_lists_and_approves_through_the_admin_api(approving, github):
    number = open_pull(github, "agent/cli")
    merge(agent(approving), number)
    config = approving.directory / "enact.yaml"
    env = {"PATH": _path()}
    listed = subprocess.run(["enact-proxy", "approvals", "list", "--config", str(config),
                             "--admin", approving.admin or ""], capture_output=True, text=True, env=env,
                            cwd=approving.directory, timeout=60)
    assert listed.returncode == 0, listed.stderr
    (pending,) = Admin(approving).pending()
    assert pending["id"] in listed.stdout and "github.merge_pr" in listed.stdout
    approved = subprocess.run(["enact-proxy", "approvals", "approve", pending["id"], "--config", str(config),
                               "--admin", approving.admin or "", "--reason", "cli ok"], capture_output=True,
                              text=True, env=env, cwd=approving.directory, timeout=60)
    assert approved.returncode == 0, approved.stderr
    again = subprocess.run(["enact-proxy", "approvals", "deny", pending["id"], "--config", str(config),
                            "--admin", approving.admin or ""], capture_output=True, text=True, env=env,
                           cwd=approving.directory, timeout=60)
    assert again.returncode == 1 and "not pending" in again.stderr
    assert merge(agent(approving), number).status_code == 200


def _path() -> str:
    import os

    return os.environ.get("PATH", "")


def test_git_push_is_held_and_the_identical_push_passes_once_approved(sidecar_factory, tmp_path):
    from enact_proxy.sandbox import SandboxGitServer
    from tests.e2e.test_git_push import AGENT_URL, Agent, agent_env

    with SandboxGitServer(tmp_path / "upstream") as git_server:
        git_server.create_repo("acme", "app", files={"README.md": "hello\n"})
        sidecar = sidecar_factory(
            systems={"github": {"upstream": git_server.url, "git_upstream": git_server.url}},
            workflows={"agent_git": ["github.read", "github.create_branch", "github.push_commit"]},
            policies=[{"require_approval": {"actions": ["github.push_commit"]}}])
        env = agent_env(sidecar, tmp_path)
        cloned = subprocess.run(["git", "clone", "--quiet", AGENT_URL, str(tmp_path / "work")], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert cloned.returncode == 0, cloned.stderr
        work = Agent(tmp_path / "work", env)
        work.git("checkout", "-q", "-b", "agent/held")
        work.commit("held change", {"notes.txt": "needs a person\n"})
        held = work.push("agent/held")
        assert held.returncode != 0 and "[remote rejected]" in held.stderr and "is pending" in held.stderr
        admin = Admin(sidecar)
        (pending,) = admin.pending()
        assert pending["action"] == "github.push_commit" and pending["payload"]["branch"] == "agent/held"
        assert admin.decide(pending["id"], "approve").status_code == 200
        retry = work.push("agent/held")
        assert retry.returncode == 0, retry.stderr
        assert "refs/heads/agent/held" in git_server.refs("acme", "app")


def test_sql_is_held_and_the_identical_statement_passes_once_approved(sidecar_factory, pg_server):  # noqa: F811
    table = f"held_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    sidecar = sidecar_factory(systems={"postgres": {"upstream": pg_server.url()}},
                              workflows={"crm_sync": ["postgres.select_rows", "postgres.insert_row"]},
                              policies=[{"require_approval": {"actions": ["postgres.insert_row"]}}])
    url = f"postgresql://agent@{sidecar.postgres}/app?sslmode=disable"
    statement = f"INSERT INTO {table} (id, name) VALUES (1, 'approved')"
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval .* is pending"):
            conn.execute(statement)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)  # the session stays usable
        admin = Admin(sidecar)
        (pending,) = admin.pending()
        assert pending["action"] == "postgres.insert_row"
        assert admin.decide(pending["id"], "approve").status_code == 200
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is pending"):
            conn.execute(f"INSERT INTO {table} (id, name) VALUES (2, 'other')")  # not the approved statement
        conn.execute(statement)
        assert conn.execute(f"SELECT name FROM {table}").fetchall() == [("approved",)]
