"""``enact-proxy replay`` over the log a real ``enact-proxy run`` wrote for a real agent (SPEC §9)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from tests.e2e.harness import ALL_POLICIES, DEFAULT_WORKFLOWS, RunningSidecar
from tests.e2e.test_http_sidecar import AGENT_AUTH, CONTACTS, GITHUB, agent, enact_headers

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("enact-proxy")
    command = [script] if script else [sys.executable, "-m", "enact_proxy.cli"]
    return subprocess.run([*command, "replay", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_replay_of_a_real_sidecars_log(sidecar: RunningSidecar, hubspot: SandboxHubSpot, github: SandboxGitHub,
                                       tmp_path: Path) -> None:
    session = agent(sidecar)
    pushed = session.patch(f"{GITHUB}/repos/acme/app/git/refs/heads/agent/one", json={"sha": "a" * 40},
                           headers=AGENT_AUTH)
    to_main = session.patch(f"{GITHUB}/repos/acme/app/git/refs/heads/main", json={"sha": "b" * 40},
                            headers=AGENT_AUTH)
    created = session.post(CONTACTS, json={"properties": {"email": "jane@acme.com"}}, headers=AGENT_AUTH)
    assert [enact_headers(r)[0] for r in (pushed, to_main, created)] == ["PASS", "BLOCK", "PASS"]
    assert sidecar.stop() == 0
    receipts = sidecar.receipts_dir
    before, seen = _snapshot(receipts), (len(hubspot.received), len(github.received))

    same = _replay("--config", str(sidecar.directory / "enact.yaml"))
    # the contact's duplicate search cannot be answered offline: reported, not guessed, and no change
    assert same.returncode == 0, same.stdout + same.stderr
    (unanswerable, count) = same.stdout.splitlines()
    assert f"{enact_headers(created)[1]}  hubspot.create_contact  email=jane@acme.com  PASS → ?" in unanswerable
    assert count.startswith("3 action(s) replayed: 0 would change, 1 unanswerable offline")

    new = tmp_path / "new.yaml"
    policies = [p for p in ALL_POLICIES if p not in ("no_push_to_main", "no_duplicate_contacts")
                and not (isinstance(p, dict) and "require_branch_prefix" in p)]
    new.write_text(yaml.safe_dump({
        "version": 1, "actor": {"email": "agent@company.com", "roles": ["sales_agent", "engineer"]},
        "systems": {"hubspot": {"upstream": "http://127.0.0.1:9"}, "github": {"upstream": "http://127.0.0.1:9"}},
        "workflows": DEFAULT_WORKFLOWS,
        "policies": [*policies, {"require_branch_prefix": {"prefix": "bot/"}}],
    }))
    changed = _replay("--config", str(new), "--dir", str(receipts))
    assert changed.returncode == 1, changed.stdout + changed.stderr
    lines = changed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{enact_headers(pushed)[1]}  github.push_commit  branch=agent/one  PASS → BLOCK  "
                               "require_branch_prefix: branch agent/one does not start with bot/")
    assert lines[1].startswith("3 action(s) replayed: 1 would change, 0 unanswerable offline")

    # read-only and offline: the log is byte for byte what it was, and no upstream heard a thing
    assert _snapshot(receipts) == before
    assert (len(hubspot.received), len(github.received)) == seen
