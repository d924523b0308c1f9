"""End to end: reloading the config of a running sidecar (SPEC §9) — SIGHUP and ``enact-proxy reload``.

A valid config decides every request received afterwards, on connections opened before too, and no
connection is dropped; an invalid one is refused, naming the key, and the old one stays in force.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from typing import Any

import psycopg
import requests
import yaml

from enact_proxy.sandbox.postgres import PgServer
from tests.e2e.harness import RunningSidecar, agent_session, wait_until
from tests.pg_fixtures import pg_server  # noqa: F401 - the session fixture

CONTACT = "https://api.hubapi.com/crm/v3/objects/contacts/1001"  # the first contact the sandbox makes
CREATE_ONLY = {"crm": ["hubspot.create_contact"]}
READS_TOO = {"crm": ["hubspot.create_contact", "hubspot.get_contact"]}


def agent(sidecar: RunningSidecar) -> requests.Session:
    return agent_session(sidecar, "Bearer agent")


def rewrite(sidecar: RunningSidecar, **changes: Any) -> str:
    path = sidecar.directory / "enact.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sighup_applies_a_new_config_to_open_connections_without_dropping_any(sidecar_factory, hubspot):
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=CREATE_ONLY, policies=[])
    hubspot.add_contact("jane@acme.com")
    session = agent(sidecar)  # one keep-alive connection, opened before the reload
    assert session.get(CONTACT, timeout=30).status_code == 403
    errors: list[BaseException] = []
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:  # requests in flight while the signal arrives
        other = agent(sidecar)
        while not stop.is_set():
            try:
                statuses.append(other.get(CONTACT, timeout=30).status_code)
            except requests.RequestException as exc:
                errors.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(0.3)
    sha = rewrite(sidecar, workflows=READS_TOO)
    sidecar.process.send_signal(signal.SIGHUP)
    wait_until(lambda: session.get(CONTACT, timeout=30).status_code == 200, what="the reload to apply", timeout=5)
    time.sleep(0.3)
    stop.set()
    worker.join(30)
    assert not errors, errors[:3]
    assert set(statuses) <= {200, 403} and statuses[-1] == 200
    passed = session.get(CONTACT, timeout=30)
    assert sidecar.receipt(passed.headers["X-Enact-Receipt"])["config_sha256"] == sha
    wait_until(lambda: any("config reloaded" in line for line in sidecar.output), what="the reload to be logged")


def test_an_invalid_config_is_refused_naming_the_key_and_the_old_one_stays(sidecar_factory, hubspot):
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=READS_TOO, policies=[])
    hubspot.add_contact("jane@acme.com")
    session = agent(sidecar)
    assert session.get(CONTACT, timeout=30).status_code == 200
    rewrite(sidecar, workflows={"crm": ["hubspot.no_such_action"]})
    sidecar.process.send_signal(signal.SIGHUP)
    wait_until(lambda: any("reload refused" in line and "workflows.crm" in line for line in sidecar.output),
               what="the refusal to be logged")
    assert session.get(CONTACT, timeout=30).status_code == 200  # still the old config
    token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
    done = subprocess.run(["enact-proxy", "reload", "--config", str(sidecar.directory / "enact.yaml"),
                           "--admin", sidecar.admin or "", "--token", token],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "workflows.crm" in done.stderr and "no_such_action" in done.stderr
    assert token not in done.stderr + done.stdout


def test_enact_proxy_reload_applies_a_valid_config(sidecar_factory, hubspot):
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=CREATE_ONLY, policies=[])
    hubspot.add_contact("jane@acme.com")
    session = agent(sidecar)
    assert session.get(CONTACT, timeout=30).status_code == 403
    rewrite(sidecar, workflows=READS_TOO)
    token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
    done = subprocess.run(["enact-proxy", "reload", "--config", str(sidecar.directory / "enact.yaml"),
                           "--admin", sidecar.admin or "", "--token", token],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert session.get(CONTACT, timeout=30).status_code == 200
    rewrite(sidecar, listen={"http": "127.0.0.1:1", "postgres": "127.0.0.1:0", "admin": "127.0.0.1:0"})
    refused = subprocess.run(["enact-proxy", "reload", "--config", str(sidecar.directory / "enact.yaml"),
                              "--admin", sidecar.admin or "", "--token", token],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "listen: cannot change while running" in refused.stderr


def test_a_postgres_session_opened_before_the_reload_is_judged_by_the_new_config(
        sidecar_factory, pg_server: PgServer) -> None:  # noqa: F811
    sidecar = sidecar_factory(systems={"postgres": {"upstream": pg_server.url()}},
                              workflows={"crm": ["postgres.select_rows"]}, policies=[])
    with psycopg.connect(f"postgresql://agent@{sidecar.postgres}/app?sslmode=disable", autocommit=True) as conn:
        conn.execute("SELECT 1")
        try:
            conn.execute("CREATE TEMP TABLE t (x int)")
            raise AssertionError("DDL passed before the reload")
        except psycopg.errors.InsufficientPrivilege:
            pass
        rewrite(sidecar, workflows={"crm": ["postgres.select_rows", "postgres.execute_sql"]})
        sidecar.process.send_signal(signal.SIGHUP)
        wait_until(lambda: any("config reloaded" in line for line in sidecar.output), what="the reload")
        conn.execute("CREATE TEMP TABLE t (x int)")  # the same session, now allowed
