import json

import pytest
import requests
import responses
from responses import matchers

from connectors.hubspot import HubSpotConnector, HubSpotError

BASE = "https://hubspot.test"


@pytest.fixture
def hubspot():
    return HubSpotConnector(api_key="secret-key", base_url=BASE + "/", timeout=2)


def _sent(call_index: int = -1) -> dict:
    return json.loads(responses.calls[call_index].request.body)


@responses.activate
def test_create_contact(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts", json={"id": "101", "properties": {"email": "jane@acme.com"}},
                   status=201, match=[matchers.header_matcher({"authorization": "Bearer secret-key"})])
    created = hubspot.create_contact("jane@acme.com", {"company": "Acme"})
    assert created["id"] == "101"
    assert _sent() == {"properties": {"company": "Acme", "email": "jane@acme.com"}}


@responses.activate
def test_create_contact_conflict_raises_with_status(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts", status=409,
                   json={"status": "error", "message": "Contact already exists. Existing ID: 101",
                         "category": "CONFLICT"})
    with pytest.raises(HubSpotError) as caught:
        hubspot.create_contact("jane@acme.com")
    assert caught.value.status == 409
    assert "already exists" in str(caught.value)
    assert "secret-key" not in str(caught.value)


@responses.activate
def test_get_contact_by_id_and_email(hubspot):
    responses.get(f"{BASE}/crm/v3/objects/contacts/101", json={"id": "101"})
    responses.get(f"{BASE}/crm/v3/objects/contacts/jane%40acme.com", json={"id": "102"},
                  match=[matchers.query_param_matcher({"idProperty": "email"})])
    assert hubspot.get_contact(contact_id="101") == {"id": "101"}
    assert hubspot.get_contact(email="jane@acme.com") == {"id": "102"}


@responses.activate
def test_get_contact_missing_is_none(hubspot):
    responses.get(f"{BASE}/crm/v3/objects/contacts/9", status=404, json={"message": "not found"})
    assert hubspot.get_contact(contact_id="9") is None


def test_get_contact_needs_exactly_one_key(hubspot):
    with pytest.raises(ValueError):
        hubspot.get_contact()
    with pytest.raises(ValueError):
        hubspot.get_contact(contact_id="1", email="a@b.c")


@responses.activate
def test_find_contact_by_email(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts/search", json={"total": 1, "results": [{"id": "7"}]})
    assert hubspot.find_contact_by_email("Jane@Acme.com") == {"id": "7"}
    sent = _sent()
    assert sent["filterGroups"] == [
        {"filters": [{"propertyName": "email", "operator": "EQ", "value": "Jane@Acme.com"}]}
    ]


@responses.activate
def test_find_contact_by_email_none(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})
    assert hubspot.find_contact_by_email("x@y.z") is None


@responses.activate
def test_find_contact_by_email_fails_closed_on_error(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts/search", status=500, body="oops")
    with pytest.raises(HubSpotError, match="500"):
        hubspot.find_contact_by_email("x@y.z")


@responses.activate
def test_find_contact_by_email_fails_closed_on_timeout(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts/search", body=requests.Timeout("slow"))
    with pytest.raises(HubSpotError, match="timed out"):
        hubspot.find_contact_by_email("x@y.z")


@responses.activate
def test_find_contact_by_email_fails_closed_on_garbage(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/contacts/search", json={"unexpected": True})
    with pytest.raises(HubSpotError, match="results"):
        hubspot.find_contact_by_email("x@y.z")


@responses.activate
def test_create_deal_with_contact(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/deals", json={"id": "d1"}, status=201)
    assert hubspot.create_deal({"dealname": "Acme"}, contact_ids=["101"]) == {"id": "d1"}
    assert _sent() == {
        "properties": {"dealname": "Acme"},
        "associations": [{"to": {"id": "101"},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
    }


@responses.activate
def test_update_deal(hubspot):
    responses.patch(f"{BASE}/crm/v3/objects/deals/d1", json={"id": "d1"})
    hubspot.update_deal("d1", {"amount": "10"})
    assert _sent() == {"properties": {"amount": "10"}}


@responses.activate
def test_create_task_sets_timestamp_and_association(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/tasks", json={"id": "t1"}, status=201)
    hubspot.create_task({"hs_task_subject": "Call"}, contact_ids=["101"])
    sent = _sent()
    assert sent["properties"]["hs_task_subject"] == "Call"
    assert sent["properties"]["hs_timestamp"].endswith("+00:00")
    assert sent["associations"][0]["types"][0]["associationTypeId"] == 204


@responses.activate
def test_create_task_keeps_given_timestamp(hubspot):
    responses.post(f"{BASE}/crm/v3/objects/tasks", json={"id": "t1"}, status=201)
    hubspot.create_task({"hs_timestamp": "2026-01-01T00:00:00Z"})
    assert _sent()["properties"] == {"hs_timestamp": "2026-01-01T00:00:00Z"}
    assert "associations" not in _sent()


def test_repr_hides_key(hubspot):
    assert "secret-key" not in repr(hubspot)


@responses.activate
def test_update_contact_by_id_and_by_email(hubspot):
    responses.patch(f"{BASE}/crm/v3/objects/contacts/101", json={"id": "101"})
    responses.patch(f"{BASE}/crm/v3/objects/contacts/jane%40acme.com", json={"id": "101"},
                    match=[matchers.query_param_matcher({"idProperty": "email"})])
    assert hubspot.update_contact(contact_id="101", properties={"phone": "1"}) == {"id": "101"}
    assert _sent() == {"properties": {"phone": "1"}}
    hubspot.update_contact(email="jane@acme.com", properties={"firstname": "J"})
    assert _sent() == {"properties": {"firstname": "J"}}
    with pytest.raises(ValueError):
        hubspot.update_contact(properties={"phone": "1"})


@responses.activate
def test_get_object_is_none_on_404_and_raises_on_other_errors(hubspot):
    responses.get(f"{BASE}/crm/v3/objects/contacts/7", status=404, json={"message": "not found"})
    responses.get(f"{BASE}/crm/v3/objects/deals/8", status=500, json={"message": "boom"})
    assert hubspot.get_object("contacts", "7") is None
    with pytest.raises(HubSpotError) as caught:
        hubspot.get_object("deals", "8")
    assert caught.value.status == 500


@responses.activate
def test_find_objects_reads_in_batches_of_100_and_maps_answers_to_keys(hubspot):
    keys = [f"u{i}@x.io" for i in range(150)]
    responses.post(f"{BASE}/crm/v3/objects/contacts/batch/read",
                   json={"results": [{"id": "1", "properties": {"email": "U3@x.io"}}]})
    responses.post(f"{BASE}/crm/v3/objects/contacts/batch/read", json={"results": []})
    found = hubspot.find_objects("contacts", keys, "email")
    assert found == {"u3@x.io": {"id": "1", "properties": {"email": "U3@x.io"}}}
    assert [len(json.loads(c.request.body)["inputs"]) for c in responses.calls] == [100, 50]
    assert _sent(0)["idProperty"] == "email"
