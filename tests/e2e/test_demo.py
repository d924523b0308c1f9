"""`enact-proxy demo` end to end: every attempt of the sample agent ends as the demo says it should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
                     "Blocked by Enact: no_duplicate_contacts", "proxy refused the CONNECT: 403"):
        assert expected in out, expected
    assert "first decision" in out
    assert out.count("signatures and hash chain verified") == 2, out
    receipts = list((tmp_path / "demo" / "agent" / "receipts").rglob("*.json"))
    assert len(receipts) >= 20
    # Credential isolation: the sandbox tokens the sidecar injected never reach a receipt.
    assert not any(b"ghp_" in p.read_bytes() or b"pat-na1-" in p.read_bytes() for p in receipts)
