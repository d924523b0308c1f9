"""End to end: stateful policies hold under batches, races and a fleet of sidecars (SPEC §7).

Real ``enact-proxy run`` processes share one real PostgreSQL state store (or one SQLite file); agents
hammer them concurrently with plain ``requests``; the sandbox HubSpot counts what really arrived and,
like HubSpot, finds new contacts by search only after a delay.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import requests

from enact_proxy.sandbox import SandboxHubSpot
from enact_proxy.sandbox.postgres import PgServer
from tests.e2e.harness import DEFAULT_WORKFLOWS, RunningSidecar, agent_session, wait_until
from tests.pg_fixtures import own_postgres

CONTACTS = "https://api.hubapi.com/crm/v3/objects/contacts"
TASKS = "https://api.hubapi.com/crm/v3/objects/tasks"
AUTH = {"authorization": "Bearer agent-own-token"}
HUBSPOT_ONLY = {"new_lead_workflow": DEFAULT_WORKFLOWS["new_lead_workflow"]}
POLICIES: list[Any] = ["no_duplicate_contacts", {"limit_tasks_per_contact": {"max_tasks": 3, "window_minutes": 60}}]
STATE_PASSWORD_ENV = "ENACT_TEST_STATE_PASSWORD"


@pytest.fixture(scope="module")
def store_server() -> Iterator[PgServer]:
    """A PostgreSQL of its own: one test stops and restarts it."""
    with own_postgres() as server:
        yield server


@pytest.fixture
def lagging_hubspot() -> Iterator[SandboxHubSpot]:
    with SandboxHubSpot(search_lag_seconds=60) as server:  # the search never sees this test's new contacts
        yield server


@pytest.fixture
def fleet(sidecar_factory: Callable[..., RunningSidecar], store_server: PgServer,
          lagging_hubspot: SandboxHubSpot) -> Callable[[int], list[RunningSidecar]]:
    """``fleet(n)``: n sidecars in front of one HubSpot, sharing a fresh database on the PostgreSQL store."""
    def make(n: int) -> list[RunningSidecar]:
        dbname = f"fleet_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(store_server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")
        state = {"url": store_server.url(dbname=dbname, password=""), "password_env": STATE_PASSWORD_ENV,
                 "timeout_seconds": 1}
        env = {STATE_PASSWORD_ENV: store_server.password}
        return [sidecar_factory(env=env, systems={"hubspot": {"upstream": lagging_hubspot.url}},
                                workflows=HUBSPOT_ONLY, policies=POLICIES, state=state) for _ in range(n)]
    return make


def agent(sidecar: RunningSidecar) -> requests.Session:
    return agent_session(sidecar)


def creations(hubspot: SandboxHubSpot, path: str) -> list[Any]:
    return [r for r in hubspot.received if r.method == "POST" and r.path.rstrip("/").endswith(path)]


def hammer(sidecars: list[RunningSidecar], count: int, send: Callable[[requests.Session, int], requests.Response]
           ) -> list[requests.Response]:
    """``count`` requests at once, spread over the sidecars, released together by a barrier."""
    sessions = [agent(s) for s in sidecars]
    barrier = threading.Barrier(count)
    answers: list[Any] = [None] * count

    def one(i: int) -> None:
        session = sessions[i % len(sessions)]
        barrier.wait()
        answers[i] = send(session, i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(a, requests.Response) for a in answers)
    return answers


def task(contact: str, hs_timestamp: bool = True) -> dict[str, Any]:
    properties = {"hs_task_subject": "follow up"}
    if hs_timestamp:
        properties["hs_timestamp"] = datetime.now(UTC).isoformat()
    return {"properties": properties,
            "associations": [{"to": {"id": contact},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]}


def test_dozens_of_concurrent_creates_of_one_new_email_across_sidecars_reach_hubspot_once(fleet, lagging_hubspot):
    sidecars = fleet(3)
    spellings = ["jane@acme.com", "JANE@acme.com", " Jane@Acme.com", "ja\u200bne@acme.com", "jane@acme.com\ufeff"]
    answers = hammer(sidecars, 24, lambda s, i: s.post(
        CONTACTS, json={"properties": {"email": spellings[i % len(spellings)]}}, headers=AUTH, timeout=30))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [403] * 23, statuses
    assert len(creations(lagging_hubspot, "/objects/contacts")) == 1
    refused = [a.json()["message"] for a in answers if a.status_code == 403]
    assert all("no_duplicate_contacts" in m and "jane@acme.com was already created through Enact" in m
               for m in refused), refused[:3]


def test_concurrent_tasks_for_one_contact_across_sidecars_admit_exactly_the_limit(fleet, lagging_hubspot):
    contact = lagging_hubspot.add_contact("bob@acme.com")
    sidecars = fleet(3)
    answers = hammer(sidecars, 15, lambda s, i: s.post(TASKS, json=task(contact), headers=AUTH, timeout=30))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [403] * 12
    assert len(creations(lagging_hubspot, "/objects/tasks")) == 3


def test_batches_are_judged_as_a_whole(fleet, lagging_hubspot):
    (sidecar,) = fleet(1)
    session = agent(sidecar)
    contact = lagging_hubspot.add_contact("carol@acme.com")
    twice = session.post(f"{CONTACTS}/batch/create", headers=AUTH, timeout=30, json={"inputs": [
        {"properties": {"email": "dan@acme.com"}}, {"properties": {"email": "D\u00adAN@acme.com "}}]})
    assert twice.status_code == 403
    assert "dan@acme.com was already created through Enact (counting this request)" in twice.json()["message"]
    four = session.post(f"{TASKS}/batch/create", headers=AUTH, timeout=30,
                        json={"inputs": [task(contact) for _ in range(4)]})
    assert four.status_code == 403
    assert f"contact {contact} already has 3 tasks" in four.json()["message"]
    assert creations(lagging_hubspot, "/batch/create") == []
    three = session.post(f"{TASKS}/batch/create", headers=AUTH, timeout=30,
                         json={"inputs": [task(contact) for _ in range(3)]})
    assert three.status_code in (200, 201), three.text  # nothing of the refused batch was counted


def test_a_contact_created_through_one_sidecar_is_refused_on_another_before_search_shows_it(fleet,
                                                                                             lagging_hubspot):
    first, second = fleet(2)
    created = agent(first).post(CONTACTS, json={"properties": {"email": "erin@acme.com"}}, headers=AUTH, timeout=30)
    assert created.status_code == 201
    again = agent(second).post(CONTACTS, json={"properties": {"email": "Erin@ACME.com"}}, headers=AUTH, timeout=30)
    assert again.status_code == 403
    assert "erin@acme.com was already created through Enact" in again.json()["message"]
    receipt = second.receipt(again.headers["X-Enact-Receipt"])
    failing = [p for p in receipt["policy_results"] if not p["passed"]]
    assert [p["policy"] for p in failing] == ["no_duplicate_contacts"]


def test_a_claim_hubspot_refused_with_a_4xx_is_released(fleet, lagging_hubspot):
    contact = lagging_hubspot.add_contact("fay@acme.com")
    (sidecar,) = fleet(1)
    session = agent(sidecar)
    for _ in range(3):  # HubSpot answers 400 (no hs_timestamp): nothing was created, nothing counts
        bad = session.post(TASKS, json=task(contact, hs_timestamp=False), headers=AUTH, timeout=30)
        assert bad.status_code == 400 and bad.headers["X-Enact-Decision"] == "PASS"
    for _ in range(3):
        assert session.post(TASKS, json=task(contact), headers=AUTH, timeout=30).status_code == 201
    assert session.post(TASKS, json=task(contact), headers=AUTH, timeout=30).status_code == 403


def test_store_stopped_mid_run_refuses_naming_it_then_decisions_resume(fleet, lagging_hubspot, store_server):
    first, second = fleet(2)
    ok = agent(first).post(CONTACTS, json={"properties": {"email": "gus@acme.com"}}, headers=AUTH, timeout=30)
    assert ok.status_code == 201
    store_server.stop()
    try:
        down = agent(second).post(CONTACTS, json={"properties": {"email": "hal@acme.com"}}, headers=AUTH, timeout=30)
        assert down.status_code == 403
        message = down.json()["message"]
        assert "no_duplicate_contacts" in message and "state store postgresql://" in message
        assert store_server.password not in message and store_server.password not in down.text
        receipt = second.receipt(down.headers["X-Enact-Receipt"])
        assert receipt["decision"] == "BLOCK" and store_server.password not in str(receipt)
        assert not [r for r in creations(lagging_hubspot, "/objects/contacts")
                    if b"hal@acme.com" in (r.body or b"")]
    finally:
        store_server.start()

    def passes() -> bool:
        answer = agent(second).post(CONTACTS, json={"properties": {"email": "hal@acme.com"}}, headers=AUTH,
                                    timeout=30)
        return answer.status_code == 201

    wait_until(passes, what="decisions to resume after the store came back", timeout=20)
    # What was claimed before the outage is still remembered, on the other sidecar too.
    again = agent(second).post(CONTACTS, json={"properties": {"email": "gus@acme.com"}}, headers=AUTH, timeout=30)
    assert again.status_code == 403 and "already created through Enact" in again.json()["message"]


def test_two_sidecars_sharing_one_sqlite_file_hold_the_limit(sidecar_factory, lagging_hubspot, tmp_path):
    contact = lagging_hubspot.add_contact("ivy@acme.com")
    state = {"url": f"sqlite:///{tmp_path}/shared-state.sqlite"}
    sidecars = [sidecar_factory(systems={"hubspot": {"upstream": lagging_hubspot.url}}, workflows=HUBSPOT_ONLY,
                                policies=POLICIES, state=state) for _ in range(2)]
    answers = hammer(sidecars, 10, lambda s, i: s.post(TASKS, json=task(contact), headers=AUTH, timeout=30))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [403] * 7
    creates = hammer(sidecars, 8, lambda s, i: s.post(
        CONTACTS, json={"properties": {"email": "JOE@acme.com" if i % 2 else "joe@acme.com"}}, headers=AUTH,
        timeout=30))
    assert sorted(a.status_code for a in creates) == [201] + [403] * 7
