"""A real ``enact-proxy run`` process in front of the sandbox upstreams, for end-to-end tests."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from enact_proxy.launcher import SidecarProcess
from enact_proxy.launcher import start_sidecar as launch

ALL_POLICIES: list[Any] = [
    "no_duplicate_contacts",
    {"limit_tasks_per_contact": {"max_tasks": 3, "window_minutes": 60}},
    {"require_actor_role": {"roles": ["sales_agent", "engineer"]}},
    {"contractor_cannot_write_pii": {"pii_fields": ["email", "phone", "ssn", "date_of_birth"]}},
    "no_push_to_main",
    {"max_files_per_commit": {"max_files": 20}},
    {"require_branch_prefix": {"prefix": "agent/"}},
]

DEFAULT_WORKFLOWS = {
    "new_lead_workflow": ["hubspot.create_contact", "hubspot.get_contact", "hubspot.create_deal",
                          "hubspot.update_deal", "hubspot.create_task"],
    "agent_git": ["github.read", "github.create_branch", "github.push_commit", "github.create_pr",
                  "github.create_issue"],
}


def write_config(directory: Path, *, systems: dict[str, Any], workflows: dict[str, list[str]] | None = None,
                 policies: list[Any] | None = None, roles: list[str] | None = None, mode: str = "enforce",
                 passthrough: list[str] | None = None, limits: dict[str, Any] | None = None,
                 postgres_listen: str = "127.0.0.1:0", state: dict[str, Any] | None = None,
                 receipts_dir: str = "receipts", workers: int | None = None) -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "actor": {"email": "agent@company.com", "roles": roles if roles is not None else ["sales_agent", "engineer"]},
        "mode": mode,
        "listen": {"http": "127.0.0.1:0", "postgres": postgres_listen, "admin": "127.0.0.1:0"},
        "receipts": {"dir": receipts_dir},
        "certs_dir": "certs",
        "egress": {"passthrough": passthrough or []},
        "systems": systems,
        "workflows": workflows if workflows is not None else DEFAULT_WORKFLOWS,
        "policies": policies if policies is not None else ALL_POLICIES,
    }
    # ENACT_TEST_WORKERS=N runs every e2e sidecar that does not choose with listen.workers: N.
    workers = workers if workers is not None else int(os.environ.get("ENACT_TEST_WORKERS", "0")) or None
    if workers is not None:
        config["listen"]["workers"] = workers
    if limits:
        config["limits"] = limits
    if state:
        config["state"] = state
    path = directory / "enact.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class RunningSidecar(SidecarProcess):
    """A sidecar process plus what tests read: its receipts."""

    def records(self) -> list[dict[str, Any]]:
        """Every complete record of the log (intents and receipts), in log order."""
        return log_records(self.receipts_dir)

    def receipts(self) -> list[dict[str, Any]]:
        """Every receipt record, oldest decision first (the store writes each before answering the agent)."""
        found = [r for r in self.records() if r.get("kind") == "receipt"]
        return sorted(found, key=lambda r: (r["timestamp"], r["seq"]))

    def receipt(self, run_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [r for r in self.receipts() if r["run_id"] == run_id]
            return bool(found)

        wait_until(written, what=f"receipt {run_id}")
        return found[0]

    def log_text(self) -> bytes:
        """Every byte of every segment (to look for what must never be written)."""
        return b"".join(p.read_bytes() for p in sorted(self.receipts_dir.glob("*/*.jsonl")))


def log_records(directory: Path) -> list[dict[str, Any]]:
    """The complete lines of the log's segments, ordered by the first seq in their names."""
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*/*.jsonl"), key=lambda p: int(p.stem)):
        data = path.read_bytes()
        records += [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]
    return records


def start_sidecar(directory: Path, config: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 30.0) -> RunningSidecar:
    """Start ``enact-proxy run`` and wait until it prints where it listens."""
    started = launch(config or directory / "enact.yaml", env=env, timeout=timeout)
    return RunningSidecar(started.process, started.directory, started.http, started.postgres, started.output,
                          started.admin)


def agent_session(sidecar: SidecarProcess, authorization: str | None = None) -> requests.Session:
    """A requests session configured the way the agent's environment configures it (proxy and CA only:
    the test process's own environment must not leak in)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": sidecar.proxy_url, "http": sidecar.proxy_url}
    session.verify = str(sidecar.ca)
    if authorization:
        session.headers["authorization"] = authorization
    return session


def wait_until(predicate: Any, *, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
