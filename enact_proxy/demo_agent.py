"""The demo's sample agent: ordinary client code, unaware of Enact.

It only reads the environment an agent would have anyway (HTTPS_PROXY, the CA bundle variables,
DATABASE_URL) and calls the real vendor hosts. Each attempt prints one JSON line saying what the
agent saw, so ``enact-proxy demo`` can show it beside the sidecar's receipts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

HUBSPOT = "https://api.hubapi.com"
GITHUB = "https://api.github.com"


def attempt(label: str, expect: str, action: Callable[[], str]) -> None:
    try:
        seen = action()
    except Exception as exc:  # noqa: BLE001 - the agent reports whatever its client raised
        seen = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    print(json.dumps({"label": label, "expect": expect, "seen": seen}), flush=True)


def _http(response: requests.Response) -> str:
    decision = response.headers.get("X-Enact-Decision", "-")
    detail = ""
    if response.status_code >= 400:
        try:
            detail = response.json().get("message", "")
        except ValueError:
            detail = response.text.strip()
    return f"HTTP {response.status_code} ({decision}) {detail}".strip()


def hubspot_steps() -> None:
    from hubspot import HubSpot
    from hubspot.crm.contacts import SimplePublicObjectInputForCreate

    s = requests.Session()  # no token: the sidecar holds the HubSpot credential
    attempt("requests: create contact jane@acme.com", "PASS", lambda: _http(
        s.post(f"{HUBSPOT}/crm/v3/objects/contacts", json={"properties": {"email": "jane@acme.com"}})))
    attempt("requests: create contact ' JANE@acme.com' again", "BLOCK", lambda: _http(
        s.post(f"{HUBSPOT}/crm/v3/objects/contacts", json={"properties": {"email": " JANE@acme.com"}})))

    def task() -> str:
        due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        return _http(s.post(f"{HUBSPOT}/crm/v3/objects/tasks", json={
            "properties": {"hs_task_subject": "Call Jane", "hs_timestamp": due}}))
    attempt("requests: create follow-up task", "PASS", task)

    # The official SDK ignores HTTPS_PROXY: it takes the proxy and CA explicitly.
    client = HubSpot(access_token="not-needed-behind-enact", proxy=os.environ["HTTPS_PROXY"],
                     ssl_ca_cert=os.environ["REQUESTS_CA_BUNDLE"])

    def sdk_create() -> str:
        made = client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "raj@globex.com"}))
        return f"created contact {made.id}"
    attempt("hubspot-api-client: create contact raj@globex.com", "PASS", sdk_create)

    def sdk_duplicate() -> str:
        client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "raj@globex.com"}))
        return "created (unexpected)"
    attempt("hubspot-api-client: create raj@globex.com again", "BLOCK", sdk_duplicate)


def github_steps() -> None:
    from github import Auth, Github

    gh = Github(base_url=GITHUB, auth=Auth.Token("not-needed-behind-enact"), seconds_between_requests=None,
                seconds_between_writes=None)
    repo = gh.get_repo("acme/app")
    main_sha = repo.get_branch(repo.default_branch).commit.sha

    attempt("PyGithub: create branch agent/fix-typo", "PASS",
            lambda: f"created {repo.create_git_ref('refs/heads/agent/fix-typo', main_sha).ref}")
    attempt("PyGithub: create branch hotfix (no agent/ prefix)", "BLOCK",
            lambda: f"created {repo.create_git_ref('refs/heads/hotfix', main_sha).ref}")
    attempt("requests: force-update refs/heads/main", "BLOCK", lambda: _http(requests.patch(
        f"{GITHUB}/repos/acme/app/git/refs/heads/main", json={"sha": main_sha, "force": True})))
    def open_pr() -> str:
        pull = repo.create_pull(title="Fix typo", body="", head="agent/fix-typo", base="main")
        return f"opened #{pull.number}"
    attempt("PyGithub: open pull request agent/fix-typo -> main", "PASS", open_pr)


def git_steps() -> None:
    work = Path(tempfile.mkdtemp(prefix="enact-demo-git-"))

    def git(*args: str, cwd: Path = work / "app") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)

    clone = git("clone", "https://github.com/acme/app.git", str(work / "app"), cwd=work)
    if clone.returncode != 0:
        attempt("git clone https://github.com/acme/app.git", "PASS", lambda: f"failed: {clone.stderr.strip()[-200:]}")
        return
    print(json.dumps({"label": "git clone https://github.com/acme/app.git", "expect": "PASS", "seen": "cloned"}))
    git("config", "user.email", "agent@company.com")
    git("config", "user.name", "Demo Agent")

    def push(*refspec: str) -> str:
        result = git("push", "origin", *refspec)
        rejected = [line.strip() for line in result.stderr.splitlines() if "rejected" in line]
        return f"exit {result.returncode}" + (f": {rejected[0]}" if rejected else "")

    git("checkout", "-q", "-b", "agent/docs")
    (work / "app" / "CONTRIBUTING.md").write_text("Be kind.\n")
    git("add", ".")
    git("commit", "-q", "-m", "Add CONTRIBUTING")
    attempt("git push origin agent/docs", "PASS", lambda: push("agent/docs"))

    git("checkout", "-q", "main")
    (work / "app" / "README.md").write_text("hello from the agent\n")
    git("commit", "-q", "-am", "Edit README on main")
    attempt("git push origin main", "BLOCK", lambda: push("main"))

    git("checkout", "-q", "-b", "agent/big-change", "origin/main")
    for i in range(25):
        (work / "app" / f"generated_{i:02}.txt").write_text(f"file {i}\n")
    git("add", ".")
    git("commit", "-q", "-m", "25 files in one commit")
    attempt("git push origin agent/big-change (25 files)", "BLOCK", lambda: push("agent/big-change"))


def postgres_steps(url: str, contractor_url: str | None) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        attempt("psycopg: INSERT a contact row", "PASS", lambda: conn.execute(
            "INSERT INTO crm_contacts (email, company) VALUES (%s, %s)", ("jane@acme.com", "Acme")).statusmessage
            or "ok")
        attempt("psycopg: DELETE FROM crm_contacts (no WHERE)", "BLOCK",
                lambda: conn.execute("DELETE FROM crm_contacts").statusmessage or "ok")
        forget = "DELETE FROM crm_contacts WHERE email = 'jane@acme.com'"
        attempt("psycopg: DELETE one contact (held for a person)", "BLOCK",
                lambda: conn.execute(forget).statusmessage or "ok")
        attempt("psycopg: the same DELETE, retried once approved", "PASS", lambda: _retry(conn, forget))
        attempt("psycopg: SELECT count(*)", "PASS",
                lambda: f"{(conn.execute('SELECT count(*) FROM crm_contacts').fetchone() or [0])[0]} row(s)")
    if contractor_url:
        with psycopg.connect(contractor_url, autocommit=True) as conn:
            attempt("psycopg as contractor: UPDATE crm_contacts SET email", "BLOCK", lambda: conn.execute(
                "UPDATE crm_contacts SET email = %s WHERE id = %s", ("x@y.z", 1)).statusmessage or "ok")


def _retry(conn: Any, statement: str, seconds: float = 20.0) -> str:
    """What an agent does with "retry the same request once it is approved": try again for a while."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            return conn.execute(statement).statusmessage or "ok"
        except psycopg.errors.InsufficientPrivilege:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def egress_steps() -> None:
    def fetch() -> str:
        try:
            return _http(requests.get("https://example.com/", timeout=10))
        except requests.exceptions.ProxyError as exc:
            refused = "403" in str(exc)
            return "proxy refused the CONNECT: 403 (BLOCK)" if refused else f"ProxyError: {exc}"
    attempt("requests: GET https://example.com (not a guarded host)", "BLOCK", fetch)


def main() -> int:
    hubspot_steps()
    github_steps()
    git_steps()
    if os.environ.get("DATABASE_URL"):
        postgres_steps(os.environ["DATABASE_URL"], os.environ.get("CONTRACTOR_DATABASE_URL"))
    egress_steps()
    return 0


if __name__ == "__main__":
    sys.exit(main())
