"""A real ``enact-proxy run`` process in front of the sandbox upstreams, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LISTENING = re.compile(r"enact-proxy listening on http://([\d.]+:\d+)(?: and postgres://([\d.]+:\d+))?")

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
                 postgres_listen: str = "127.0.0.1:0") -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "actor": {"email": "agent@company.com", "roles": roles if roles is not None else ["sales_agent", "engineer"]},
        "mode": mode,
        "listen": {"http": "127.0.0.1:0", "postgres": postgres_listen},
        "receipts": {"dir": "receipts"},
        "certs_dir": "certs",
        "egress": {"passthrough": passthrough or []},
        "systems": systems,
        "workflows": workflows if workflows is not None else DEFAULT_WORKFLOWS,
        "policies": policies if policies is not None else ALL_POLICIES,
    }
    if limits:
        config["limits"] = limits
    path = directory / "enact.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class RunningSidecar:
    process: subprocess.Popen[str]
    directory: Path
    http: str
    postgres: str | None
    output: list[str] = field(default_factory=list)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.http}"

    @property
    def ca(self) -> Path:
        return self.directory / "certs" / "mitmproxy-ca-cert.pem"

    @property
    def receipts_dir(self) -> Path:
        return self.directory / "receipts"

    def agent_env(self) -> dict[str, str]:
        """The environment an unchanged agent runs with: proxy plus CA trust for every client."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        ca = str(self.ca)
        env.update(HTTPS_PROXY=self.proxy_url, HTTP_PROXY=self.proxy_url, https_proxy=self.proxy_url,
                   http_proxy=self.proxy_url, NO_PROXY="", no_proxy="", REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca,
                   GIT_SSL_CAINFO=ca, CURL_CA_BUNDLE=ca)
        return env

    def receipts(self) -> list[dict[str, Any]]:
        """Every receipt on disk, oldest first (the store writes each before answering the agent)."""
        found = [json.loads(p.read_text()) for p in self.receipts_dir.rglob("*.json")]
        return sorted(found, key=lambda r: r["timestamp"])

    def receipt(self, run_id: str) -> dict[str, Any]:
        wait_until(lambda: any(self.receipts_dir.rglob(f"{run_id}.json")), what=f"receipt {run_id}")
        path = next(self.receipts_dir.rglob(f"{run_id}.json"))
        return json.loads(path.read_text())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_sidecar(directory: Path, config: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 30.0) -> RunningSidecar:
    """Start ``enact-proxy run`` and wait until it prints where it listens."""
    exe = shutil.which("enact-proxy")
    command = [exe] if exe else [sys.executable, "-m", "enact_proxy.cli"]
    process = subprocess.Popen([*command, "run", "--config", str(config or directory / "enact.yaml")],
                               cwd=directory, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    found: dict[str, str | None] = {}
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = LISTENING.search(line)
            if match:
                found.update(http=match.group(1), postgres=match.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or "http" not in found:
        process.kill()
        raise RuntimeError("enact-proxy did not start:\n" + "".join(output))
    return RunningSidecar(process, directory, str(found["http"]), found.get("postgres"), output)


def wait_until(predicate: Any, *, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
