"""The sandbox HubSpot, driven by plain requests and the official hubspot-api-client."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)

from enact_proxy.sandbox.hubspot import SandboxHubSpot

TOKEN = "pat-sandbox-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def hubspot() -> Iterator[SandboxHubSpot]:
    with SandboxHubSpot(token=TOKEN) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(AUTH)
        yield s


def _create(session: requests.Session, url: str, email: str) -> requests.Response:
    return session.post(f"{url}/crm/v3/objects/contacts", json={"properties": {"email": email, "firstname": "Jo"}})


def test_create_contact_answers_201_in_hubspots_object_shape(hubspot, session):
    response = _create(session, hubspot.url, "jane@acme.com")
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body["id"], str)
    assert body["properties"]["email"] == "jane@acme.com"
    assert body["archived"] is False
    assert body["createdAt"].endswith("Z") and body["updatedAt"]
    assert hubspot.find_contact("JANE@acme.com")["id"] == body["id"]


def test_duplicate_email_is_a_409_conflict_naming_the_existing_id(hubspot, session):
    first = _create(session, hubspot.url, "jane@acme.com").json()
    response = _create(session, hubspot.url, "Jane@ACME.com")
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first['id']}"
    assert len(body["correlationId"]) == 36
    assert len(hubspot.contacts()) == 1


def test_token_is_required_when_configured(hubspot):
    missing = requests.post(f"{hubspot.url}/crm/v3/objects/contacts", json={"properties": {"email": "a@b.c"}})
    wrong = requests.get(f"{hubspot.url}/crm/v3/objects/contacts/1", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["category"] == "INVALID_AUTHENTICATION"
    assert hubspot.contacts() == []


def test_without_configured_token_any_bearer_is_accepted_but_one_is_required():
    with SandboxHubSpot() as server:
        ok = requests.get(f"{server.url}/crm/v3/objects/contacts", headers={"Authorization": "Bearer x"})
        anonymous = requests.get(f"{server.url}/crm/v3/objects/contacts")
    assert ok.status_code == 200
    assert anonymous.status_code == 401


def test_received_log_keeps_method_path_headers_and_body(hubspot, session):
    _create(session, hubspot.url, "log@acme.com")
    [seen] = hubspot.received
    assert (seen.method, seen.path) == ("POST", "/crm/v3/objects/contacts")
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(seen.body)["properties"]["email"] == "log@acme.com"
    hubspot.clear_received()
    assert hubspot.received == []


def test_unknown_route_is_a_404_in_hubspots_error_shape(hubspot, session):
    response = session.post(f"{hubspot.url}/crm/v3/nothing/here", json={})
    assert response.status_code == 404
    assert set(response.json()) >= {"status", "message", "correlationId", "category"}


def test_search_get_by_email_and_gzip_body(hubspot, session):
    created = _create(session, hubspot.url, "find@acme.com").json()
    _create(session, hubspot.url, "other@acme.com")
    search = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "FIND@acme.com"}]}]}
    response = session.post(
        f"{hubspot.url}/crm/v3/objects/contacts/search",
        data=gzip.compress(json.dumps(search).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.json()["total"] == 1
    assert response.json()["results"][0]["id"] == created["id"]
    by_email = session.get(f"{hubspot.url}/crm/v3/objects/contacts/find%40acme.com?idProperty=email")
    assert by_email.json()["id"] == created["id"]
    missing = session.get(f"{hubspot.url}/crm/v3/objects/contacts/999999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_batch_routes_for_contacts_deals_and_tasks(hubspot, session):
    url = f"{hubspot.url}/crm/v3/objects"
    created = session.post(
        f"{url}/contacts/batch/create",
        json={"inputs": [{"properties": {"email": "a@x.io"}}, {"properties": {"email": "b@x.io"}}]},
    )
    assert created.status_code == 201 and created.json()["status"] == "COMPLETE"
    ids = [r["id"] for r in created.json()["results"]]
    dup = session.post(
        f"{url}/contacts/batch/create",
        json={"inputs": [{"properties": {"email": "c@x.io"}}, {"properties": {"email": "A@x.io"}}]},
    )
    assert dup.status_code == 409
    assert hubspot.find_contact("c@x.io") is None  # a refused batch creates nothing

    upsert = session.post(
        f"{url}/contacts/batch/upsert",
        json={
            "inputs": [
                {"id": "a@x.io", "idProperty": "email", "properties": {"firstname": "A"}},
                {"id": "new@x.io", "idProperty": "email", "properties": {"firstname": "N"}},
            ]
        },
    )
    assert upsert.status_code == 200
    assert [r["new"] for r in upsert.json()["results"]] == [False, True]
    assert hubspot.find_contact("a@x.io")["properties"]["firstname"] == "A"

    read = session.post(f"{url}/contacts/batch/read", json={"inputs": [{"id": ids[0]}, {"id": "424242"}]})
    assert read.status_code == 207
    assert [r["id"] for r in read.json()["results"]] == [ids[0]]

    deal = session.post(f"{url}/deals", json={"properties": {"dealname": "Acme", "amount": 100}})
    assert deal.status_code == 201
    deal_id = deal.json()["id"]
    patched = session.patch(f"{url}/deals/{deal_id}", json={"properties": {"amount": "250"}})
    assert patched.json()["properties"]["amount"] == "250"
    updated = session.post(
        f"{url}/deals/batch/update", json={"inputs": [{"id": deal_id, "properties": {"dealstage": "closedwon"}}]}
    )
    assert updated.json()["results"][0]["properties"]["dealstage"] == "closedwon"
    assert session.get(f"{url}/0-3/{deal_id}").json()["properties"]["amount"] == "250"

    task = session.post(
        f"{url}/tasks",
        json={
            "properties": {"hs_timestamp": "2025-01-01T00:00:00Z", "hs_task_subject": "Call"},
            "associations": [
                {"to": {"id": ids[0]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}
            ],
        },
    )
    assert task.status_code == 201
    assert hubspot.associations("tasks", task.json()["id"]) == [(ids[0], 204)]
    no_timestamp = session.post(f"{url}/tasks", json={"properties": {"hs_task_subject": "Call"}})
    assert no_timestamp.status_code == 400 and no_timestamp.json()["category"] == "VALIDATION_ERROR"
    batch_tasks = session.post(
        f"{url}/tasks/batch/create", json={"inputs": [{"properties": {"hs_timestamp": "1700000000000"}}]}
    )
    assert batch_tasks.status_code == 201
    assert len(hubspot.objects("tasks")) == 2


def test_legacy_contact_and_engagement_routes(hubspot, session):
    created = session.post(
        f"{hubspot.url}/contacts/v1/contact", json={"properties": [{"property": "email", "value": "old@acme.com"}]}
    )
    assert created.status_code == 200
    vid = created.json()["vid"]
    again = session.post(
        f"{hubspot.url}/contacts/v1/contact", json={"properties": [{"property": "email", "value": "old@acme.com"}]}
    )
    assert again.status_code == 409
    assert again.json()["identityProfile"]["vid"] == vid
    engagement = session.post(
        f"{hubspot.url}/engagements/v1/engagements",
        json={
            "engagement": {"type": "TASK", "timestamp": 1700000000000},
            "associations": {"contactIds": [vid]},
            "metadata": {"subject": "Follow up"},
        },
    )
    assert engagement.status_code == 200
    task_id = str(engagement.json()["engagement"]["id"])
    assert hubspot.associations("tasks", task_id) == [(str(vid), 204)]


def test_official_sdk_create_search_and_get_by_email(hubspot):
    client = HubSpot(access_token=TOKEN, host=hubspot.url)
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "sdk@acme.com", "firstname": "Sam"})
    )
    assert created.properties["email"] == "sdk@acme.com"

    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="sdk@acme.com")])]
    )
    found = client.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert found.total == 1 and found.results[0].id == created.id

    fetched = client.crm.contacts.basic_api.get_by_id("sdk@acme.com", id_property="email")
    assert fetched.id == created.id
    assert any("sdk%40acme.com" in r.path for r in hubspot.received)

    with pytest.raises(ApiException) as conflict:
        client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "SDK@acme.com"}))
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["category"] == "CONFLICT"


def test_concurrent_creates_of_one_email_make_exactly_one_contact(hubspot):
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> int:
        return requests.post(
            f"{hubspot.url}/crm/v3/objects/contacts", headers=AUTH, json={"properties": {"email": "race@acme.com"}}
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(16)))
    assert statuses == [201] + [409] * 15
    assert len(hubspot.contacts()) == 1
    assert len(hubspot.received) == 16


def test_stop_closes_idle_keep_alive_connections():
    server = SandboxHubSpot().start()
    with requests.Session() as s:
        s.headers.update(AUTH)
        assert s.get(f"{server.url}/crm/v3/objects/contacts").status_code == 200
        url = server.url
        server.stop()
        with pytest.raises(requests.ConnectionError):
            s.get(f"{url}/crm/v3/objects/contacts")


def test_batch_upsert_updates_what_its_id_names_and_creates_the_rest(hubspot, session):
    url = f"{hubspot.url}/crm/v3/objects/contacts"
    jane = hubspot.add_contact("jane@acme.com", firstname="Jane")
    upsert = session.post(f"{url}/batch/upsert", json={"inputs": [
        {"id": jane, "properties": {"email": "taken-over@evil.io"}},                       # by object id
        {"id": jane, "idProperty": "hs_object_id", "properties": {"phone": "1"}},
        {"id": "999999", "properties": {"email": "fresh@acme.com"}},                       # no such id: created
        {"id": "Other@Acme.com", "idProperty": "email", "properties": {"firstname": "O"}},  # no such email
    ]})
    assert upsert.status_code == 200, upsert.text
    results = upsert.json()["results"]
    assert [r["new"] for r in results] == [False, False, True, True]
    assert results[0]["id"] == results[1]["id"] == jane and results[2]["id"] not in (jane, "999999")
    assert hubspot.find_contact("jane@acme.com") is None  # overwritten in place
    assert hubspot.find_contact("taken-over@evil.io")["properties"]["phone"] == "1"
    assert hubspot.find_contact("other@acme.com")["properties"]["firstname"] == "O"


def test_legacy_contact_updates_and_batch_create_or_update(hubspot, session):
    jane = hubspot.add_contact("jane@acme.com")
    legacy = f"{hubspot.url}/contacts/v1/contact"
    by_vid = session.post(f"{legacy}/vid/{jane}/profile", json={"properties": [{"property": "phone", "value": "1"}]})
    by_email = session.post(f"{legacy}/email/jane@acme.com/profile",
                            json={"properties": [{"property": "firstname", "value": "J"}]})
    assert by_vid.status_code == by_email.status_code == 204
    assert session.post(f"{legacy}/vid/424242/profile", json={"properties": []}).status_code == 404
    batch = session.post(f"{legacy}/batch", json=[
        {"vid": int(jane), "properties": [{"property": "lastname", "value": "Doe"}]},
        {"email": "new@acme.com", "properties": [{"property": "firstname", "value": "N"}]}])
    assert batch.status_code == 202
    properties = hubspot.find_contact("jane@acme.com")["properties"]
    assert properties.items() >= {"phone": "1", "firstname": "J", "lastname": "Doe"}.items()
    assert hubspot.find_contact("new@acme.com")["properties"]["firstname"] == "N"
