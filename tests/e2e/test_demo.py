"""`enact-proxy demo` end to end: every attempt of the sample agent ends as the demo says it should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import log_records


def test_demo_runs_every_front_door_and_verifies_its_receipts(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "demo", "--dir", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = [line for line in out.splitlines() if line.startswith(("ok ", "!! "))]
    assert len(lines) >= 18, out
    assert not [line for line in lines if line.startswith("!!")], out
    for expected in ("[remote rejected] main -> main (Blocked by Enact: no_push_to_main",
                     "Blocked by Enact: no_unbounded_write", "Blocked by Enact: contractor_cannot_write_pii",
                     "Blocked by Enact: no_duplicate_contacts", "proxy refused the CONNECT: 403",
                     "Blocked by Enact: require_approval: approval ", "a person approves it"):
        assert expected in out, expected
    assert "first decision" in out
    assert out.count("signatures and hash chain verified") == 2, out
    log = tmp_path / "demo" / "agent" / "receipts"
    receipts = [r for r in log_records(log) if r["kind"] == "receipt"]
    assert len(receipts) >= 20
    approvals = [r for r in receipts if r["action"] == "enact.approve"]
    assert len(approvals) == 1 and approvals[0]["actor_email"] == "admin"
    approved = [r for r in receipts if r.get("approval")]
    assert [(r["action"], r["approval"]["id"]) for r in approved] == [
        ("postgres.delete_row", approvals[0]["payload"]["approval_id"])]
    # Credential isolation: the sandbox tokens the sidecar injected never reach a receipt.
    text = b"".join(p.read_bytes() for p in log.glob("*/*.jsonl"))
    assert b"ghp_" not in text and b"pat-na1-" not in text


def test_a_second_demo_in_the_same_folder_starts_from_fresh_state(tmp_path: Path) -> None:
    # The sandbox upstreams are new on every run; contacts the first run created through Enact must not be
    # remembered as duplicates by the second, whose log continues in the same folder.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    command = [sys.executable, "-m", "enact_proxy.cli", "demo", "--dir", str(tmp_path / "demo")]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert "did not end as expected" not in result.stdout
