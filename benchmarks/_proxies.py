"""The processes the HTTP benchmarks drive: the fast upstream, plain mitmdump, and enact-proxy run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enact_proxy.launcher import start_sidecar

HEY_MISSING = ("the load generator `hey` is not installed: `apt-get install hey` (Debian/Ubuntu), "
               "or `go install github.com/rakyll/hey@latest`")

AGENT_HOST = "api.hubapi.com"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"

# Every built-in policy, configured as SPEC §3 shows; the window spans the whole day (a 09:00-17:00
# window would refuse runs at night) so every request passes and is forwarded.
ALL_POLICIES: list[Any] = [
    "no_duplicate_contacts",
    {"limit_tasks_per_contact": {"max_tasks": 3, "window_minutes": 60}},
    {"require_actor_role": {"roles": ["sales_agent", "engineer"]}},
    {"contractor_cannot_write_pii": {"pii_fields": ["email", "phone", "ssn", "date_of_birth"]}},
    "no_push_to_main",
    {"max_files_per_commit": {"max_files": 20}},
    {"require_branch_prefix": {"prefix": "agent/"}},
    {"within_maintenance_window": {"start": "00:00", "end": "23:59", "timezone": "UTC",
                                   "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
    "no_unbounded_write",
]

# mitmdump's stand-in for Enact's forwarding: same upstream, agent's Host header kept.
REWRITE_SCRIPT = '''
from mitmproxy import ctx

UPSTREAM = ("127.0.0.1", {port})


def request(flow):
    host_header = flow.request.host_header
    flow.request.scheme = "http"
    flow.request.host, flow.request.port = UPSTREAM
    flow.request.host_header = host_header


async def running():
    host, port = ctx.master.addons.get("proxyserver").listen_addrs()[0][:2]
    print(f"mitmdump listening on http://{{host}}:{{port}}", flush=True)
'''


def require_hey() -> str:
    hey = shutil.which("hey")
    if hey is None:
        sys.exit(HEY_MISSING)
    return hey


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[str]
    address: str  # host:port
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(name: str, command: list[str], pattern: str, cwd: Path | None = None, timeout: float = 30) -> Proc:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(pattern, line)
            if match and not ready.is_set():
                found["address"] = match.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or "address" not in found:
        process.kill()
        raise RuntimeError(f"{name} did not start:\n" + "".join(output))
    return Proc(name, process, found["address"], output)


def start_upstream() -> Proc:
    return _start("upstream", [sys.executable, "-m", "benchmarks.upstream"],
                  r"listening on http://([\d.]+:\d+)", cwd=Path(__file__).resolve().parent.parent)


def start_mitmdump(workdir: Path, upstream_port: int) -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "rewrite_to_upstream.py"
    script.write_text(REWRITE_SCRIPT.format(port=upstream_port))
    mitmdump = shutil.which("mitmdump") or "mitmdump"
    return _start("mitmdump", [mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", "0",
                               "--set", "connection_strategy=lazy", "--set", f"confdir={workdir / 'certs'}",
                               "-s", str(script)], r"mitmdump listening on http://([\d.]+:\d+)")


HUBSPOT_WORKFLOWS = {"new_lead_workflow": ["hubspot.create_contact", "hubspot.get_contact",
                                             "hubspot.create_deal", "hubspot.create_task"]}


def write_enact_config(workdir: Path, systems: dict[str, Any], workflows: dict[str, list[str]],
                       listen: dict[str, Any] | None = None) -> Path:
    """The benchmarks' enact.yaml: every built-in policy, enforce mode, durable receipts."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1,
        "actor": {"email": "agent@company.com", "roles": ["sales_agent", "engineer"]},
        "mode": "enforce",
        "listen": listen or {"http": "127.0.0.1:0", "admin": "127.0.0.1:0"},
        "receipts": {"dir": "receipts"},
        "certs_dir": "certs",
        "egress": {"passthrough": []},
        "systems": systems,
        "workflows": workflows,
        "policies": ALL_POLICIES,
    }
    path = workdir / "enact.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_enact(workdir: Path, upstream: str, workers: int = 1, timeout: float = 60) -> Proc:
    """``enact-proxy run``; with ``workers`` > 1 (``listen.workers``), once every HTTP front serves."""
    listen: dict[str, Any] = {"http": "127.0.0.1:0", "admin": "127.0.0.1:0"}
    if workers > 1:
        listen["workers"] = workers
    sidecar = start_sidecar(write_enact_config(workdir, {"hubspot": {"upstream": upstream}}, HUBSPOT_WORKFLOWS,
                                               listen=listen))
    deadline = time.monotonic() + timeout
    while sum("enact-proxy http worker" in line and "serving on" in line for line in sidecar.output) < workers - 1:
        if time.monotonic() > deadline or sidecar.process.poll() is not None:
            sidecar.stop()
            raise RuntimeError("enact-proxy's HTTP workers did not start:\n" + "".join(sidecar.output))
        time.sleep(0.05)
    return Proc("enact", sidecar.process, sidecar.http, sidecar.output)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and every live descendant (the writer child, HTTP workers)."""
    import psutil  # the bench extra

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@dataclass
class HeyRun:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: int
    raw: str


def run_hey(hey: str, proxy: str, url: str, *, clients: int, duration: float | None = None,
            requests: int | None = None, method: str = "GET", body: str | None = None) -> HeyRun:
    """One hey run through the forward proxy (CONNECT once per connection, keep-alive, HTTP/1.1)."""
    command = [hey, "-c", str(clients), "-x", f"http://{proxy}", "-m", method,
               "-H", f"Authorization: Bearer {TOKEN}", "-T", "application/json"]
    command += ["-z", f"{duration}s"] if duration is not None else ["-n", str(requests)]
    if body is not None:
        command += ["-d", body]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    return parse_hey(out)


def parse_hey(out: str) -> HeyRun:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: int) -> float:
        match = re.search(rf"\b{p}% in ([\d.]+) secs", out)
        return float(match.group(1)) * 1000 if match else float("nan")

    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors_part = out.split("Error distribution:", 1)
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]\s", errors_part[1])) if len(errors_part) > 1 else 0
    return HeyRun(rps, pct(50), pct(99), statuses, errors, out)
