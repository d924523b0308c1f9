"""End to end: ``listen.workers: 2`` — two HTTP front processes on one port, one receipt log.

Which process serves a connection is read from the kernel (/proc: which process holds the accepted
socket of each open client connection), never inferred from timing. SO_REUSEPORT spreads connections
by their 4-tuple, so 24 fresh connections all landing on one of two fronts has odds of 2^-23.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.harness import RunningSidecar, agent_session, wait_until

CONTACT = "https://api.hubapi.com/crm/v3/objects/contacts/1001"  # the first contact the sandbox makes
DEALS = "https://api.hubapi.com/crm/v3/objects/deals"
READS = {"crm": ["hubspot.create_contact", "hubspot.get_contact"]}
CREATES_ONLY = {"crm": ["hubspot.create_contact"]}
SERVING = re.compile(r"enact-proxy http worker 1 \(pid (\d+)\) serving on")
CONNECTIONS = 24


def _worker_pids(sidecar: RunningSidecar) -> list[int]:
    return [int(m.group(1)) for line in list(sidecar.output) if (m := SERVING.search(line))]


def _start(sidecar_factory: Any, hubspot: Any, workflows: dict[str, list[str]]) -> tuple[RunningSidecar, int]:
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=workflows, policies=[],
                              workers=2)
    wait_until(lambda: _worker_pids(sidecar), what="the second front to serve", timeout=60)
    hubspot.add_contact("jane@acme.com")
    return sidecar, _worker_pids(sidecar)[-1]


def _serving(port: int, pids: list[int]) -> dict[int, int]:
    """pid -> established connections on ``port`` that the process holds (accepted sockets)."""
    held: dict[str, int] = {}
    for pid in pids:
        fds = f"/proc/{pid}/fd"
        for fd in os.listdir(fds):
            try:
                target = os.readlink(f"{fds}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                held[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if fields[3] == "01" and local_port == port and fields[9] in held:  # 01: ESTABLISHED
                counts[held[fields[9]]] += 1
    return counts


def _decisions(sidecar: RunningSidecar) -> dict[str, float]:
    token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
    text = requests.get(f"http://{sidecar.admin}/metrics", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("enact_decisions_total{"):
            decision = re.search(r'decision="(\w+)"', line).group(1)  # type: ignore[union-attr]
            found[decision] = found.get(decision, 0.0) + float(line.split()[-1])
    return found


def _fresh_sessions(sidecar: RunningSidecar, n: int = CONNECTIONS) -> list[requests.Session]:
    return [agent_session(sidecar, "Bearer agent") for _ in range(n)]


def _port(sidecar: RunningSidecar) -> int:
    return int(sidecar.http.rpartition(":")[2])


def test_two_fronts_serve_one_port_and_every_decision_lands_in_one_verifiable_log(sidecar_factory, hubspot):
    sidecar, worker = _start(sidecar_factory, hubspot, READS)
    sessions = _fresh_sessions(sidecar)
    passed, blocked = [], []
    for session in sessions:  # each session: its own connection, kept open
        got = session.get(CONTACT, timeout=30)
        assert got.status_code == 200 and got.headers["X-Enact-Decision"] == "PASS"
        passed.append(got.headers["X-Enact-Receipt"])
        refused = session.post(DEALS, json={"properties": {"dealname": "x"}}, timeout=30)
        assert refused.status_code == 403 and refused.headers["X-Enact-Decision"] == "BLOCK"
        blocked.append(refused.headers["X-Enact-Receipt"])
    counts = _serving(_port(sidecar), [sidecar.process.pid, worker])
    assert sum(counts.values()) == CONNECTIONS
    assert all(counts.values()), counts  # both processes serve some of the connections
    received = hubspot.received
    assert len([r for r in received if r.method == "GET" and r.path.endswith("/contacts/1001")]) == len(passed)
    assert not [r for r in received if "/deals" in r.path]  # nothing refused reached the upstream
    # The main process's /metrics counts every front's decisions (the others send theirs each second).
    wait_until(lambda: _decisions(sidecar) == {"PASS": len(passed), "BLOCK": len(blocked)},
               what="/metrics to count both fronts' decisions", timeout=30)
    for session in sessions:
        session.close()
    assert sidecar.stop() == 0
    assert "enact-proxy stopped; receipts flushed" in "".join(sidecar.output)
    receipts = [r for r in sidecar.records() if r["kind"] == "receipt"]
    decisions = {r["run_id"]: r["decision"] for r in receipts}
    assert all(decisions[run_id] == "PASS" for run_id in passed)
    assert all(decisions[run_id] == "BLOCK" for run_id in blocked)
    assert len(receipts) == len(passed) + len(blocked)
    verified = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "receipts", "verify"],
                              cwd=sidecar.directory, capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_killed_front_is_replaced_and_requests_keep_succeeding(sidecar_factory, hubspot):
    sidecar, worker = _start(sidecar_factory, hubspot, READS)
    os.kill(worker, signal.SIGKILL)
    # Once the main process has reaped it, its share of the port has left the group (a connection still
    # queued on a dying listener is reset by the kernel, which no front can prevent).
    exited = f"http worker 1 (pid {worker}) exited (signal 9)"
    wait_until(lambda: any(exited in line for line in sidecar.output), what="the main process to notice", timeout=30)
    for session in _fresh_sessions(sidecar, 6):  # the main front answers meanwhile
        assert session.get(CONTACT, timeout=30).status_code == 200
    wait_until(lambda: len(_worker_pids(sidecar)) == 2, what="a replacement front", timeout=60)
    replacement = _worker_pids(sidecar)[-1]
    assert replacement != worker
    sessions = _fresh_sessions(sidecar)
    for session in sessions:
        got = session.get(CONTACT, timeout=30)
        assert got.status_code == 200 and got.headers["X-Enact-Decision"] == "PASS"
    counts = _serving(_port(sidecar), [sidecar.process.pid, replacement])
    assert all(counts.values()), counts  # the replacement serves its share of the port again
    token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
    ready = requests.get(f"http://{sidecar.admin}/readyz", timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert ready.status_code == 200, ready.text
    for session in sessions:
        session.close()
    assert sidecar.stop() == 0
    verified = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "receipts", "verify"],
                              cwd=sidecar.directory, capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_sighup_reloads_every_front(sidecar_factory, hubspot):
    sidecar, worker = _start(sidecar_factory, hubspot, CREATES_ONLY)
    before = _fresh_sessions(sidecar)
    assert {s.get(CONTACT, timeout=30).status_code for s in before} == {403}
    assert all(_serving(_port(sidecar), [sidecar.process.pid, worker]).values())  # both refused some
    path = sidecar.directory / "enact.yaml"
    config = yaml.safe_load(path.read_text())
    config["workflows"] = READS
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    sidecar.process.send_signal(signal.SIGHUP)
    wait_until(lambda: any("http worker 1: config reloaded" in line for line in sidecar.output),
               what="the second front to reload", timeout=30)
    wait_until(lambda: any(line.startswith("enact-proxy: config reloaded") for line in sidecar.output),
               what="the main front to reload", timeout=30)
    # The same connections as before (opened before the reload, on both fronts) now pass.
    statuses = [s.get(CONTACT, timeout=30) for s in before]
    assert {r.status_code for r in statuses} == {200}
    counts = _serving(_port(sidecar), [sidecar.process.pid, worker])
    assert all(counts.values()) and sum(counts.values()) == CONNECTIONS, counts
    shas = {sidecar.receipt(r.headers["X-Enact-Receipt"])["config_sha256"] for r in statuses}
    assert len(shas) == 1 and shas != {None}


def test_with_workers_a_port_someone_already_listens_on_is_refused(tmp_path):
    from tests.e2e.harness import write_config

    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # would let a reuse-port front join silently
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        write_config(tmp_path, systems={}, workflows={}, policies=[], workers=2)
        path = tmp_path / "enact.yaml"
        config = yaml.safe_load(path.read_text())
        config["listen"]["http"] = f"127.0.0.1:{taken.getsockname()[1]}"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "run", "--config", str(path)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    finally:
        taken.close()
    assert done.returncode == 1
    assert "cannot start: listen.http 127.0.0.1:" in done.stderr and "already in use" in done.stderr


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads /proc to see which process serves a connection")


def test_a_front_that_cannot_start_again_is_retried_and_readyz_names_it_meanwhile(sidecar_factory, hubspot, tmp_path):
    marker = tmp_path / "fail-to-load"
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=READS, workers=2,
                              policies=[{"tests.custom_policies:loads_unless": {"marker": str(marker)}}],
                              env={"PYTHONPATH": os.pathsep.join(sys.path)})
    wait_until(lambda: _worker_pids(sidecar), what="the second front to serve", timeout=60)
    hubspot.add_contact("jane@acme.com")
    marker.write_text("a replacement's start fails while this exists")
    os.kill(_worker_pids(sidecar)[-1], signal.SIGKILL)
    probe = requests.Session()
    probe.trust_env = False

    def ready() -> requests.Response:
        return probe.get(f"http://{sidecar.admin}/readyz", timeout=10)

    def names_the_missing_front() -> bool:
        answer = ready()
        return answer.status_code == 503 and "http worker 1 is not running" in answer.text

    wait_until(names_the_missing_front, what="/readyz to name the missing front", timeout=30)
    wait_until(lambda: any("http worker 1 cannot start" in line and "fail-to-load" in line for line in sidecar.output),
               what="the failed replacement to be logged", timeout=30)
    for session in _fresh_sessions(sidecar, 4):  # the main front serves meanwhile
        assert session.get(CONTACT, timeout=30).status_code == 200
    marker.unlink()
    wait_until(lambda: len(_worker_pids(sidecar)) == 2, what="a replacement once it can load", timeout=90)
    wait_until(lambda: ready().status_code == 200, what="/readyz to be ready again", timeout=30)


def test_a_replacement_front_runs_the_config_in_force_not_an_unreloaded_edit(sidecar_factory, hubspot):
    sidecar, worker = _start(sidecar_factory, hubspot, READS)
    path = sidecar.directory / "enact.yaml"
    config = yaml.safe_load(path.read_text())
    config["workflows"] = CREATES_ONLY  # staged, never reloaded: get_contact would be refused under it
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: len(_worker_pids(sidecar)) == 2, what="a replacement front", timeout=60)
    replacement = _worker_pids(sidecar)[-1]
    sessions = _fresh_sessions(sidecar)
    answers = [s.get(CONTACT, timeout=30) for s in sessions]
    assert {a.status_code for a in answers} == {200}  # both fronts, the config in force
    counts = _serving(_port(sidecar), [sidecar.process.pid, replacement])
    assert all(counts.values()), counts  # the replacement answered some of them
    assert len({sidecar.receipt(a.headers["X-Enact-Receipt"])["config_sha256"] for a in answers}) == 1
    for session in sessions:
        session.close()
