import gzip
import json
import uuid

import pytest
import responses

from connectors.base import Refusal, Upstream, Wire
from connectors.hubspot import Config, HubSpotConnector
from connectors.hubspot import Wire as HubSpotWire
from enact_proxy.httpcall import build_call

LIMIT = 1024 * 1024


def call(method, target, body=None, headers=None, raw=None):
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return build_call(method, "api.hubapi.com", target, headers or {"content-type": "application/json"}, data, LIMIT)


# What the fake HubSpot behind the ``wire`` fixture holds, for upsert lookups.
EXISTING = {"contacts": [{"id": "101", "properties": {"email": "jane@acme.com", "external_id": "ext-1"}}],
            "deals": [{"id": "77", "properties": {"dealname": "D"}}]}


def fake_lookup(object_type, keys, id_property):
    answer = {}
    for key in keys:
        for found in EXISTING[object_type]:
            if id_property in (None, "hs_object_id") and found["id"] == key:
                answer[key] = found
            if id_property and str(found["properties"].get(id_property, "")).lower() == key.lower():
                answer[key] = found
    return answer


@pytest.fixture
def wire():
    made = HubSpotWire(Config(), environ={})
    made._lookup = lambda call: fake_lookup  # never the network
    return made


def assoc(cid, type_id=204):
    return {"to": {"id": cid}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


CONTACT = {"properties": {"email": "jane@acme.com", "firstname": "Jane"}}
JANE = {"email": "jane@acme.com", "properties": {"email": "jane@acme.com", "firstname": "Jane"}}

CASES = [
    # --- contacts
    ("POST", "/crm/v3/objects/contacts", CONTACT, [("create_contact", JANE)]),
    ("POST", "/crm/v3/objects/0-1", CONTACT, [("create_contact", JANE)]),
    ("POST", "/crm/v3/objects/Contacts/", CONTACT, [("create_contact", JANE)]),
    ("POST", "//crm/v3/objects/./contacts", CONTACT, [("create_contact", JANE)]),
    ("POST", "/crm/v3/objects/deals/../contacts", CONTACT, [("create_contact", JANE)]),
    ("POST", "/crm/objects/2026-03/contacts", CONTACT, [("create_contact", JANE)]),
    ("POST", "/crm/v3/objects/contacts", {"properties": {"firstname": "x"}},
     [("create_contact", {"email": None, "properties": {"firstname": "x"}})]),
    ("POST", "/crm/v3/objects/contacts/batch/create",
     {"inputs": [CONTACT, {"properties": {"email": "b@x.io"}}]},
     [("create_contact", JANE), ("create_contact", {"email": "b@x.io", "properties": {"email": "b@x.io"}})]),
    ("POST", "/crm/v3/objects/contacts/batch/upsert",
     {"inputs": [{"idProperty": "email", "id": "c@x.io", "properties": {"phone": "1"}}]},
     [("create_contact", {"email": "c@x.io", "properties": {"phone": "1"}})]),
    ("POST", "/crm/v3/objects/0-1/batch/upsert", {"inputs": [{"id": "c@x.io", "idProperty": "email",
                                                               "properties": {"email": "d@x.io"}}]},
     [("create_contact", {"email": "d@x.io", "properties": {"email": "d@x.io"}})]),
    # an upsert naming an existing contact overwrites it: an update, whatever email it writes
    ("POST", "/crm/v3/objects/contacts/batch/upsert",
     {"inputs": [{"idProperty": "email", "id": "Jane@Acme.com", "properties": {"email": "evil@x.io"}},
                 {"idProperty": "email", "id": "new@x.io", "properties": {"firstname": "N"}}]},
     [("update_contact", {"contact_id": "101", "email": "Jane@Acme.com", "properties": {"email": "evil@x.io"}}),
      ("create_contact", {"email": "new@x.io", "properties": {"firstname": "N"}})]),
    ("POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"id": "101", "properties": {"phone": "1"}}]},
     [("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {"phone": "1"}})]),
    ("POST", "/crm/objects/2026-03/contacts/batch/upsert",
     {"inputs": [{"id": 101, "idProperty": "hs_object_id", "properties": {"phone": "1"}}]},
     [("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {"phone": "1"}})]),
    ("POST", "/crm/v3/objects/contacts/batch/upsert",
     {"idProperty": "external_id", "inputs": [{"id": "EXT-1", "properties": {"email": "x@x.io"}}]},
     [("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {"email": "x@x.io"}})]),
    ("POST", "/crm/v3/objects/contacts/batch/upsert?idProperty=email",
     {"inputs": [{"id": "jane@acme.com", "properties": {}}]},
     [("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {}})]),
    ("POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"properties": {"email": "n@x.io"}}]},
     [("create_contact", {"email": "n@x.io", "properties": {"email": "n@x.io"}})]),
    ("PATCH", "/crm/v3/objects/contacts/101", {"properties": {"email": "evil@x.io"}},
     [("update_contact", {"contact_id": "101", "email": None, "properties": {"email": "evil@x.io"}})]),
    ("PATCH", "/crm/v3/objects/0-1/jane%40acme.com?idProperty=email", {"properties": {"phone": "1"}},
     [("update_contact", {"contact_id": None, "email": "jane@acme.com", "properties": {"phone": "1"}})]),
    ("PATCH", "/crm/v3/objects/contacts/ext-1?idProperty=external_id", {"properties": {}},
     [("update_contact", {"contact_id": None, "email": None, "properties": {}, "id_property": "external_id",
                          "id": "ext-1"})]),
    ("POST", "/crm/v3/objects/contacts/batch/update",
     {"inputs": [{"id": "101", "properties": {"phone": "1"}},
                 {"id": "a@x.io", "idProperty": "email", "properties": {"firstname": "A"}}]},
     [("update_contact", {"contact_id": "101", "email": None, "properties": {"phone": "1"}}),
      ("update_contact", {"contact_id": None, "email": "a@x.io", "properties": {"firstname": "A"}})]),
    ("GET", "/crm/v3/objects/contacts/101", None, [("get_contact", {"contact_id": "101", "email": None})]),
    ("GET", "/crm/v3/objects/contacts/jane%40acme.com?idProperty=email", None,
     [("get_contact", {"contact_id": None, "email": "jane@acme.com"})]),
    ("GET", "/crm/v3/objects/contacts", None, [("get_contact", {"contact_id": None, "email": None})]),
    ("POST", "/crm/v3/objects/contacts/search",
     {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "j@a.com"}]}]},
     [("get_contact", {"contact_id": None, "email": "j@a.com"})]),
    ("POST", "/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": "1"}, {"id": "2"}]},
     [("get_contact", {"contact_id": "1", "email": None}), ("get_contact", {"contact_id": "2", "email": None})]),
    ("POST", "/crm/v3/objects/contacts/batch/read", {"idProperty": "email", "inputs": [{"id": "j@a.com"}]},
     [("get_contact", {"contact_id": None, "email": "j@a.com"})]),
    ("DELETE", "/crm/v3/objects/contacts/101", None,
     [("delete-/crm/objects/contacts/*", {"contactId": "101"})]),
    ("POST", "/crm/v3/objects/contacts/batch/update", {"inputs": []},
     [("unknown", {"method": "POST", "path": "/crm/v3/objects/contacts/batch/update"})]),
    # --- legacy contacts
    ("POST", "/contacts/v1/contact", {"properties": [{"property": "email", "value": "jane@acme.com"},
                                                     {"property": "firstname", "value": "Jane"}]},
     [("create_contact", JANE)]),
    ("POST", "/contacts/v1/contact/createOrUpdate/email/jane@acme.com",
     {"properties": [{"property": "firstname", "value": "Jane"}]},
     [("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {"firstname": "Jane"}})]),
    ("POST", "/contacts/v1/contact/createOrUpdate/email/new%40acme.com", {},
     [("create_contact", {"email": "new@acme.com", "properties": {}})]),
    ("POST", "/contacts/v1/contact/batch",
     [{"email": "a@x.io", "properties": [{"property": "firstname", "value": "A"}]},
      {"vid": 101, "properties": [{"property": "phone", "value": "1"}]}],
     [("create_contact", {"email": "a@x.io", "properties": {"firstname": "A"}}),
      ("update_contact", {"contact_id": "101", "email": "jane@acme.com", "properties": {"phone": "1"}})]),
    ("GET", "/contacts/v1/contact/vid/55/profile", None, [("get_contact", {"contact_id": "55", "email": None})]),
    ("GET", "/contacts/v1/contact/email/a@x.io/profile", None,
     [("get_contact", {"contact_id": None, "email": "a@x.io"})]),
    ("POST", "/contacts/v1/contact/vid/55/profile", {"properties": [{"property": "email", "value": "e@x.io"}]},
     [("update_contact", {"contact_id": "55", "email": None, "properties": {"email": "e@x.io"}})]),
    ("POST", "/contacts/v1/contact/email/a%40x.io/profile", {"properties": []},
     [("update_contact", {"contact_id": None, "email": "a@x.io", "properties": {}})]),
    # --- deals
    ("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "D"}, "associations": [assoc("101", 3)]},
     [("create_deal", {"deal_id": None, "properties": {"dealname": "D"}, "contact_ids": ["101"]})]),
    ("POST", "/crm/v3/objects/0-3/batch/create", {"inputs": [{"properties": {"dealname": "D"}}]},
     [("create_deal", {"deal_id": None, "properties": {"dealname": "D"}, "contact_ids": []})]),
    ("PATCH", "/crm/v3/objects/deals/77", {"properties": {"amount": "5"}},
     [("update_deal", {"deal_id": "77", "properties": {"amount": "5"}})]),
    ("POST", "/crm/v3/objects/deals/batch/update",
     {"inputs": [{"id": "1", "properties": {"a": "1"}}, {"id": 2, "properties": {"a": "2"}}]},
     [("update_deal", {"deal_id": "1", "properties": {"a": "1"}}),
      ("update_deal", {"deal_id": "2", "properties": {"a": "2"}})]),
    ("POST", "/crm/v3/objects/deals/batch/upsert", {"inputs": [{"id": "9", "properties": {"a": "1"}}]},
     [("create_deal", {"deal_id": "9", "properties": {"a": "1"}, "contact_ids": []})]),
    ("POST", "/crm/v3/objects/deals/batch/upsert", {"inputs": [{"id": "77", "properties": {"amount": "1"}}]},
     [("update_deal", {"deal_id": "77", "properties": {"amount": "1"}})]),
    ("PUT", "/deals/v1/deal/77", {"properties": [{"name": "amount", "value": "5"}]},
     [("update_deal", {"deal_id": "77", "properties": {"amount": "5"}})]),
    ("POST", "/deals/v1/deal", {"properties": [{"name": "dealname", "value": "D"}],
                                "associations": {"associatedVids": [101]}},
     [("create_deal", {"deal_id": None, "properties": {"dealname": "D"}, "contact_ids": ["101"]})]),
    ("GET", "/crm/v3/objects/deals/77", None, [("get-/crm/objects/deals/*", {"dealId": "77"})]),
    # --- tasks
    ("POST", "/crm/v3/objects/tasks",
     {"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"}, "associations": [assoc("101"), assoc("d1", 216)]},
     [("create_task", {"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"}, "contact_ids": ["101"]})]),
    ("POST", "/crm/v3/objects/0-27", {"properties": {}, "associations": [assoc(101, 999)]},
     [("create_task", {"properties": {}, "contact_ids": ["101"]})]),
    ("POST", "/crm/v3/objects/tasks/batch/create",
     {"inputs": [{"properties": {"a": 1}, "associations": [assoc("1")]}, {"properties": {"a": 2}}]},
     [("create_task", {"properties": {"a": 1}, "contact_ids": ["1"]}),
      ("create_task", {"properties": {"a": 2}, "contact_ids": []})]),
    ("POST", "/engagements/v1/engagements",
     {"engagement": {"type": "TASK", "timestamp": 1700000000000}, "associations": {"contactIds": [101, 102]},
      "metadata": {"subject": "Call", "status": "NOT_STARTED"}},
     [("create_task", {"properties": {"subject": "Call", "status": "NOT_STARTED", "hs_timestamp": 1700000000000},
                       "contact_ids": ["101", "102"]})]),
    ("POST", "/engagements/v1/engagements", {"engagement": {"type": "NOTE"}, "metadata": {"body": "x"}},
     [("post-/engagements/engagements", {"engagement": {"type": "NOTE"}, "metadata": {"body": "x"}})]),
    # --- anything else
    ("POST", "/crm/v3/objects/companies", {"properties": {}},
     [("post-/crm/objects/companies", {"properties": {}})]),
    ("POST", "/crm/v3/no-such-thing", {}, [("unknown", {"method": "POST", "path": "/crm/v3/no-such-thing"})]),
    ("GET", "/", None, [("unknown", {"method": "GET", "path": "/"})]),
]


@pytest.mark.parametrize(("method", "target", "body", "expected"), CASES)
def test_recognise(wire, method, target, body, expected):
    actions = wire.recognise(call(method, target, body))
    assert [(a.action, a.payload) for a in actions] == expected
    assert all(a.system == "hubspot" and a.request.host == "api.hubapi.com" for a in actions)


def test_recognise_gzip_body(wire):
    actions = wire.recognise(call("POST", "/crm/v3/objects/contacts", raw=gzip.compress(json.dumps(CONTACT).encode()),
                                  headers={"content-encoding": "gzip"}))
    assert [(a.action, a.payload) for a in actions] == [("create_contact", JANE)]


def test_request_summary(wire):
    (action,) = wire.recognise(call("POST", "/crm/v3/objects/contacts/", CONTACT))
    assert action.request.model_dump() == {"method": "POST", "host": "api.hubapi.com",
                                           "path": "/crm/v3/objects/contacts"}


REFUSED = [
    ("POST", "/crm/v3/objects/contacts", b"{not json", "body is not valid JSON"),
    ("POST", "/crm/v3/objects/contacts", b"\xff\xfe{}", "not UTF-8"),
    ("POST", "/crm/v3/objects/contacts", b"[1, 2]", "expected a JSON object"),
    ("POST", "/crm/v3/objects/contacts",
     b'{"properties": {"email": "a@x.io"}, "properties": {"email": "b@x.io"}}', "duplicate key"),
    ("POST", "/crm/v3/objects/contacts", b'{"properties": {"n": NaN}}', "NaN"),
    ("POST", "/crm/v3/objects/contacts", b'{"properties": "email=a@x.io"}', "properties"),
    ("POST", "/crm/v3/objects/contacts/batch/create", b'{"inputs": "x"}', "inputs"),
    ("POST", "/crm/v3/objects/contacts/batch/create", b'{}', "inputs"),
    ("POST", "/crm/v3/objects/tasks", b'{"associations": [{"types": []}]}', "association"),
    ("POST", "/crm/v3/objects/tasks", b'{"associations": {"to": 1}}', "associations"),
    ("POST", "/contacts/v1/contact/batch", b'{"email": "a@x.io"}', "list of contacts"),
    ("POST", "/contacts/v1/contact", b'{"properties": [{"value": "x"}]}', "no name"),
]


@pytest.mark.parametrize(("method", "target", "raw", "reason"), REFUSED)
def test_recognise_refuses(wire, method, target, raw, reason):
    with pytest.raises(Refusal) as caught:
        wire.recognise(call(method, target, raw=raw))
    assert reason in caught.value.reason


def test_refuse_shape(wire):
    answer = wire.refuse(call("POST", "/crm/v3/objects/contacts", CONTACT), "Blocked by Enact: no", 403)
    assert answer.status == 403
    assert answer.headers["content-type"].startswith("application/json")
    body = json.loads(answer.body)
    assert body["status"] == "error"
    assert body["message"] == "Blocked by Enact: no"
    assert body["category"] == "FORBIDDEN"
    uuid.UUID(body["correlationId"])


def test_refuse_413(wire):
    answer = wire.refuse(call("POST", "/crm/v3/objects/contacts", CONTACT), "Blocked by Enact: too big", 413)
    assert answer.status == 413
    assert json.loads(answer.body)["category"] == "PAYLOAD_TOO_LARGE"


def test_is_a_wire(wire):
    assert isinstance(wire, Wire)
    assert wire.hosts == frozenset({"api.hubapi.com"})


def test_upstream():
    wire = HubSpotWire(Config(upstream="http://127.0.0.1:9999/prefix/"), environ={})
    assert wire.upstream(call("GET", "/")) == Upstream("http", "127.0.0.1", 9999, "/prefix")
    assert HubSpotWire(Config(), environ={}).upstream(call("GET", "/")) == Upstream("https", "api.hubapi.com", 443)


def test_credentials_from_env():
    wire = HubSpotWire(Config(token_env="HS_TOKEN"), environ={"HS_TOKEN": "pat-123"})
    assert wire.credential_headers(call("GET", "/")) == {"authorization": "Bearer pat-123"}
    assert "pat-123" not in repr(wire)


def test_no_credentials_without_token_env(wire):
    assert wire.credential_headers(call("GET", "/")) == {}


def test_missing_token_env_is_an_error():
    with pytest.raises(ValueError, match="HS_TOKEN"):
        HubSpotWire(Config(token_env="HS_TOKEN"), environ={})


def test_config_is_strict():
    with pytest.raises(ValueError):
        Config(upstream="https://x", tokenenv="typo")


@responses.activate
def test_lookup_uses_configured_token():
    wire = HubSpotWire(Config(upstream="http://hubspot.test", token_env="T"), environ={"T": "ours"})
    responses.post("http://hubspot.test/crm/v3/objects/contacts/search", json={"results": []},
                   match=[responses.matchers.header_matcher({"authorization": "Bearer ours"})])
    systems = wire.lookup_systems(call("POST", "/crm/v3/objects/contacts", CONTACT,
                                       headers={"authorization": "Bearer agents"}))
    assert isinstance(systems["hubspot"], HubSpotConnector)
    assert systems["hubspot"].find_contact_by_email("a@x.io") is None


@responses.activate
def test_lookup_uses_agents_token_without_token_env():
    wire = HubSpotWire(Config(upstream="http://hubspot.test"), environ={})
    responses.post("http://hubspot.test/crm/v3/objects/contacts/search", json={"results": [{"id": "1"}]},
                   match=[responses.matchers.header_matcher({"authorization": "Bearer agents"})])
    systems = wire.lookup_systems(call("POST", "/crm/v3/objects/contacts", CONTACT,
                                       headers={"Authorization": "Bearer agents"}))
    assert systems["hubspot"].find_contact_by_email("a@x.io") == {"id": "1"}


def test_lookup_dials_upstream_directly_even_with_a_proxy_in_the_environment(monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Upstream(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            seen.append((self.path, self.headers["authorization"]))
            self.rfile.read(int(self.headers["content-length"]))
            body = b'{"results": []}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # If the lookup honoured these, it would go to a closed port and fail.
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        wire = HubSpotWire(Config(upstream=f"http://127.0.0.1:{server.server_port}", token_env="T"),
                           environ={"T": "ours"})
        connector = wire.lookup_systems(call("POST", "/crm/v3/objects/contacts", CONTACT))["hubspot"]
        assert connector.find_contact_by_email("a@x.io") is None
        assert seen == [("/crm/v3/objects/contacts/search", "Bearer ours")]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


UPSERT = {"inputs": [{"idProperty": "email", "id": "jane@acme.com", "properties": {"phone": "1"}}]}


def test_an_upsert_is_refused_when_hubspot_cannot_say_whether_its_target_exists(wire):
    def down(object_type, keys, id_property):
        raise RuntimeError("HubSpot GET /crm/v3/objects/contacts/jane%40acme.com answered 503: unavailable")

    wire._lookup = lambda call: down
    with pytest.raises(Refusal) as refused:
        wire.recognise(call("POST", "/crm/v3/objects/contacts/batch/upsert", UPSERT))
    assert "cannot tell whether the upsert of contact 'jane@acme.com' updates an existing contact" in str(refused.value)
    assert "503" in str(refused.value)


@pytest.mark.parametrize(("target", "body"), [
    ("/crm/v3/objects/contacts/batch/upsert?idProperty=hs_object_id", UPSERT),
    ("/crm/v3/objects/contacts/batch/upsert", {"idProperty": "external_id", **UPSERT}),
    ("/crm/v3/objects/contacts/batch/update?idProperty=email", {"inputs": [{"id": "1", "idProperty": "x"}]}),
])
def test_an_ambiguous_id_property_is_refused(wire, target, body):
    with pytest.raises(Refusal, match="ambiguous idProperty"):
        wire.recognise(call("POST", target, body))


def test_only_upserts_are_recognised_off_the_event_loop(wire):
    assert wire.recognition_may_block(call("POST", "/crm/v3/objects/contacts/batch/upsert", UPSERT))
    assert wire.recognition_may_block(call("POST", "/contacts/v1/contact/createOrUpdate/email/a@x.io", {}))
    assert wire.recognition_may_block(call("POST", "/contacts/v1/contact/batch", []))
    assert not wire.recognition_may_block(call("POST", "/crm/v3/objects/contacts", CONTACT))
    assert not wire.recognition_may_block(call("PATCH", "/crm/v3/objects/contacts/1", CONTACT))


@responses.activate
def test_upsert_lookup_is_one_batch_read_per_id_property_with_the_forwarded_credential():
    wire = HubSpotWire(Config(upstream="http://hubspot.test", token_env="T"), environ={"T": "ours"})
    read = "http://hubspot.test/crm/v3/objects/contacts/batch/read"
    jane = {"id": "101", "properties": {"email": "jane@acme.com"}}
    responses.post(read, json={"status": "COMPLETE", "results": [jane]},
                   match=[responses.matchers.header_matcher({"authorization": "Bearer ours"}),
                          responses.matchers.json_params_matcher({
                              "inputs": [{"id": "Jane@Acme.com"}, {"id": "n@x.io"}], "properties": ["email"],
                              "idProperty": "email"})])
    responses.post(read, status=207, json={"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": ["404"]}}]},
                   match=[responses.matchers.json_params_matcher({"inputs": [{"id": "404"}], "properties": ["email"]})])
    actions = wire.recognise(call("POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [
        {"idProperty": "email", "id": "Jane@Acme.com", "properties": {"phone": "1"}},
        {"idProperty": "email", "id": "n@x.io", "properties": {}},
        {"id": "404", "properties": {"email": "m@x.io"}}]}))
    assert [(a.action, a.payload.get("contact_id"), a.payload["email"]) for a in actions] == [
        ("update_contact", "101", "Jane@Acme.com"), ("create_contact", None, "n@x.io"),
        ("create_contact", None, "m@x.io")]
    assert len(responses.calls) == 2


@responses.activate
def test_an_answer_naming_an_object_no_input_asked_for_refuses_the_upsert():
    wire = HubSpotWire(Config(upstream="http://hubspot.test"), environ={})
    responses.post("http://hubspot.test/crm/v3/objects/contacts/batch/read",
                   json={"results": [{"id": "999", "properties": {"email": "other@x.io"}}]})
    with pytest.raises(Refusal, match="which no input names"):
        wire.recognise(call("POST", "/crm/v3/objects/contacts/batch/upsert", UPSERT,
                            headers={"authorization": "Bearer agents"}))
