"""End to end: a real ``enact-proxy run`` process between plain clients and the sandbox upstreams.

Each test asserts on three things: what the upstream really received (a refused action never
arrives), what the client saw (status, ``X-Enact-*`` headers, the vendor's error shape) and the receipt.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from enact_proxy.sandbox import SandboxGitHub, SandboxHubSpot
from tests.e2e.conftest import UPSTREAM_TOKEN
from tests.e2e.harness import DEFAULT_WORKFLOWS, RunningSidecar, agent_session, wait_until

HUBSPOT = "https://api.hubapi.com"
GITHUB = "https://api.github.com"
CONTACTS = f"{HUBSPOT}/crm/v3/objects/contacts"
AGENT_AUTH = {"authorization": "Bearer agent-own-token"}
HUBSPOT_ONLY = {"new_lead_workflow": DEFAULT_WORKFLOWS["new_lead_workflow"]}
GITHUB_ONLY = {"agent_git": DEFAULT_WORKFLOWS["agent_git"]}


def agent(sidecar: RunningSidecar) -> requests.Session:
    return agent_session(sidecar)


def writes(server: Any, method: str | None = None, path_part: str = "") -> list[Any]:
    """What the upstream received, minus reads and the lookups policies (search) and upserts (batch/read) make."""
    return [r for r in server.received
            if r.method not in ("GET", "HEAD") and not r.path.endswith(("/search", "/batch/read"))
            and path_part in r.path
            and (method is None or r.method == method)]


def enact_headers(response: requests.Response) -> tuple[str, str]:
    return response.headers["X-Enact-Decision"], response.headers["X-Enact-Receipt"]


def assert_hubspot_refusal(response: requests.Response, *names: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["status"] == "error" and body["category"] and body["correlationId"]
    assert body["message"].startswith("Blocked by Enact:"), body
    for name in names:
        assert name in body["message"], body
    assert response.headers["X-Enact-Decision"] == "BLOCK"
    return body


def assert_github_refusal(response: requests.Response, *names: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) >= {"message", "documentation_url"}
    assert body["message"].startswith("Blocked by Enact:"), body
    for name in names:
        assert name in body["message"], body
    assert response.headers["X-Enact-Decision"] == "BLOCK"
    return body


# -- HubSpot ---------------------------------------------------------------------------------------

def test_create_contact_passes_then_a_case_and_whitespace_duplicate_is_blocked(
        sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    client = agent(sidecar)
    created = client.post(CONTACTS, json={"properties": {"email": "jane@acme.com", "firstname": "Jane"}},
                          headers=AGENT_AUTH)
    assert created.status_code == 201, created.text
    decision, run_id = enact_headers(created)
    assert decision == "PASS"
    receipt = sidecar.receipt(run_id)
    assert receipt["decision"] == "PASS" and receipt["action"] == "hubspot.create_contact"
    assert receipt["payload"]["email"] == "jane@acme.com"
    assert receipt["payload"]["properties"]["firstname"] == "Jane"
    assert {p["policy"] for p in receipt["policy_results"]} >= {
        "no_duplicate_contacts", "limit_tasks_per_contact", "require_actor_role", "contractor_cannot_write_pii",
        "no_push_to_main", "max_files_per_commit", "require_branch_prefix"}
    assert all(p["passed"] for p in receipt["policy_results"])
    (taken,) = receipt["actions_taken"]
    assert taken["success"] is True
    assert taken["output"]["status"] == 201 and taken["output"]["id"] == created.json()["id"]

    duplicate = client.post(CONTACTS, json={"properties": {"email": "  JANE@Acme.COM "}}, headers=AGENT_AUTH)
    assert_hubspot_refusal(duplicate, "no_duplicate_contacts")
    blocked = sidecar.receipt(duplicate.headers["X-Enact-Receipt"])
    assert blocked["decision"] == "BLOCK" and blocked["actions_taken"] == []
    assert [p["passed"] for p in blocked["policy_results"] if p["policy"] == "no_duplicate_contacts"] == [False]
    assert len(writes(hubspot, "POST", "/contacts")) == 1  # only the first create arrived
    assert len(hubspot.contacts()) == 1


def test_batch_create_with_one_duplicate_is_refused_whole(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    hubspot.add_contact("dup@acme.com")
    inputs = [{"properties": {"email": "new1@acme.com"}}, {"properties": {"email": " Dup@ACME.com"}},
              {"properties": {"email": "new2@acme.com"}}]
    response = agent(sidecar).post(f"{CONTACTS}/batch/create", json={"inputs": inputs}, headers=AGENT_AUTH)
    assert_hubspot_refusal(response, "no_duplicate_contacts")
    run_ids = response.headers["X-Enact-Receipt"].split(",")
    assert len(run_ids) == 3
    receipts = [sidecar.receipt(r) for r in run_ids]
    assert {r["decision"] for r in receipts} == {"BLOCK"}
    assert sorted(r["payload"]["email"] for r in receipts) == [" Dup@ACME.com", "new1@acme.com", "new2@acme.com"]
    assert writes(hubspot, path_part="batch") == []
    assert [c["properties"]["email"] for c in hubspot.contacts()] == ["dup@acme.com"]


def test_legacy_v1_contact_route_is_recognised(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    hubspot.add_contact("old@acme.com")
    client = agent(sidecar)
    legacy = f"{HUBSPOT}/contacts/v1/contact"
    ok = client.post(legacy, json={"properties": [{"property": "email", "value": "fresh@acme.com"}]},
                     headers=AGENT_AUTH)
    assert ok.status_code == 200, ok.text
    receipt = sidecar.receipt(ok.headers["X-Enact-Receipt"])
    assert receipt["action"] == "hubspot.create_contact" and receipt["payload"]["email"] == "fresh@acme.com"
    dup = client.post(legacy, json={"properties": [{"property": "email", "value": "OLD@acme.com"}]},
                      headers=AGENT_AUTH)
    assert_hubspot_refusal(dup, "no_duplicate_contacts")
    assert len(writes(hubspot, "POST", "/contacts/v1/contact")) == 1


def test_upsert_naming_an_existing_contact_is_an_update_and_refused_unless_allowed(
        sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    """The issue's attack: an upsert that overwrites an existing contact's email, passed off as a create."""
    jane = hubspot.add_contact("jane@acme.com", firstname="Jane")
    client = agent(sidecar)
    for body in ({"inputs": [{"idProperty": "email", "id": "JANE@acme.com", "properties": {"email": "x@evil.io"}}]},
                 {"inputs": [{"id": jane, "properties": {"email": "x@evil.io"}}]},
                 {"inputs": [{"id": jane, "idProperty": "hs_object_id", "properties": {"email": "x@evil.io"}}]}):
        response = client.post(f"{CONTACTS}/batch/upsert", json=body, headers=AGENT_AUTH)
        assert_hubspot_refusal(response, "hubspot.update_contact")
        receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
        assert receipt["action"] == "hubspot.update_contact" and receipt["decision"] == "BLOCK"
        assert receipt["payload"]["contact_id"] == jane
        assert receipt["payload"]["properties"] == {"email": "x@evil.io"}
    patched = client.patch(f"{CONTACTS}/{jane}", json={"properties": {"email": "x@evil.io"}}, headers=AGENT_AUTH)
    assert_hubspot_refusal(patched, "hubspot.update_contact")
    batch = client.post(f"{CONTACTS}/batch/update", json={"inputs": [{"id": jane, "properties": {"phone": "1"}}]},
                        headers=AGENT_AUTH)
    assert_hubspot_refusal(batch, "hubspot.update_contact")
    assert writes(hubspot) == []
    assert hubspot.find_contact("jane@acme.com")["properties"]["firstname"] == "Jane"

    # An upsert of an email nobody has is a create, judged (and passed) as one.
    fresh = client.post(f"{CONTACTS}/batch/upsert", headers=AGENT_AUTH,
                        json={"inputs": [{"idProperty": "email", "id": "new@acme.com", "properties": {}}]})
    assert fresh.status_code == 200, fresh.text
    assert sidecar.receipt(fresh.headers["X-Enact-Receipt"])["action"] == "hubspot.create_contact"
    assert hubspot.find_contact("new@acme.com") is not None


def test_allowed_update_contact_passes_but_a_contractor_may_not_overwrite_an_email(
        sidecar_factory: Callable[..., RunningSidecar], hubspot: SandboxHubSpot) -> None:
    workflows = {"crm_upkeep": ["hubspot.update_contact", "hubspot.create_contact"]}
    staff = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=workflows)
    jane = hubspot.add_contact("jane@acme.com")
    body = {"inputs": [{"idProperty": "email", "id": "jane@acme.com", "properties": {"lifecyclestage": "lead"}}]}
    passed = agent(staff).post(f"{CONTACTS}/batch/upsert", json=body, headers=AGENT_AUTH)
    assert passed.status_code == 200 and passed.headers["X-Enact-Decision"] == "PASS", passed.text
    assert passed.json()["results"][0]["new"] is False
    receipt = staff.receipt(passed.headers["X-Enact-Receipt"])
    assert receipt["action"] == "hubspot.update_contact" and receipt["workflow"] == "crm_upkeep"
    assert receipt["payload"] == {"contact_id": jane, "email": "jane@acme.com",
                                  "properties": {"lifecyclestage": "lead"}}
    assert hubspot.find_contact("jane@acme.com")["properties"]["lifecyclestage"] == "lead"

    contractor = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, workflows=workflows,
                                 roles=["sales_agent", "contractor"])
    client = agent(contractor)
    overwrite = client.post(f"{CONTACTS}/batch/upsert", headers=AGENT_AUTH, json={"inputs": [
        {"idProperty": "email", "id": "jane@acme.com", "properties": {"email": "x@evil.io"}}]})
    assert_hubspot_refusal(overwrite, "contractor_cannot_write_pii", "email")
    legacy = client.post(f"{HUBSPOT}/contacts/v1/contact/createOrUpdate/email/jane@acme.com", headers=AGENT_AUTH,
                         json={"properties": [{"property": "phone", "value": "+49 1"}]})
    assert_hubspot_refusal(legacy, "contractor_cannot_write_pii", "phone")
    harmless = client.patch(f"{CONTACTS}/jane%40acme.com?idProperty=email", headers=AGENT_AUTH,
                            json={"properties": {"lifecyclestage": "customer"}})
    assert harmless.status_code == 200, harmless.text
    assert hubspot.find_contact("jane@acme.com")["properties"]["lifecyclestage"] == "customer"
    assert hubspot.find_contact("x@evil.io") is None


class _ReadsFail(SandboxHubSpot):
    def handle(self, request: Any) -> Any:
        if request.method == "GET" or request.path.endswith("/batch/read"):
            from enact_proxy.sandbox._http import json_response
            return json_response(503, {"status": "error", "message": "unavailable", "category": "INTERNAL"})
        return super().handle(request)


def test_upsert_whose_target_cannot_be_looked_up_is_refused(sidecar_factory: Callable[..., RunningSidecar]) -> None:
    with _ReadsFail() as upstream:
        upstream.add_contact("jane@acme.com")
        sidecar = sidecar_factory(systems={"hubspot": {"upstream": upstream.url}},
                                  workflows={"all": ["hubspot.create_contact", "hubspot.update_contact"]})
        response = agent(sidecar).post(f"{CONTACTS}/batch/upsert", headers=AGENT_AUTH, json={
            "inputs": [{"idProperty": "email", "id": "jane@acme.com", "properties": {"email": "x@evil.io"}}]})
        body = assert_hubspot_refusal(response, "cannot tell whether the upsert of contact 'jane@acme.com'")
        assert "503" in body["message"]
        assert writes(upstream) == []
        assert sidecar.receipt(response.headers["X-Enact-Receipt"])["decision"] == "BLOCK"


def test_unknown_hubspot_write_is_refused_by_default(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    contact_id = hubspot.add_contact("keep@acme.com")
    response = agent(sidecar).delete(f"{CONTACTS}/{contact_id}/undocumented", headers=AGENT_AUTH)
    body = assert_hubspot_refusal(response, "hubspot.unknown")
    assert "workflow" in body["message"]
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["action"] == "hubspot.unknown" and receipt["decision"] == "BLOCK"
    assert receipt["request"]["method"] == "DELETE"
    assert writes(hubspot) == []
    assert hubspot.find_contact("keep@acme.com") is not None


def test_a_documented_operation_no_workflow_names_is_refused(sidecar: RunningSidecar,
                                                             hubspot: SandboxHubSpot) -> None:
    contact_id = hubspot.add_contact("keep@acme.com")
    response = agent(sidecar).delete(f"{CONTACTS}/{contact_id}", headers=AGENT_AUTH)
    assert_hubspot_refusal(response, "hubspot.delete-/crm/objects/contacts/*")
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["action"] == "hubspot.delete-/crm/objects/contacts/*" and receipt["decision"] == "BLOCK"
    assert receipt["payload"] == {"contactId": contact_id}
    assert writes(hubspot) == []
    assert hubspot.find_contact("keep@acme.com") is not None


def test_an_action_no_workflow_names_is_refused(sidecar: RunningSidecar, github: SandboxGitHub) -> None:
    github_branch = github.branch_sha("acme", "app", "main")
    assert github_branch
    response = agent(sidecar).delete(f"{GITHUB}/repos/acme/app/git/refs/heads/agent/old", headers=AGENT_AUTH)
    assert_github_refusal(response, "github.delete_branch")
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["action"] == "github.delete_branch" and receipt["workflow"] is None
    assert receipt["payload"] == {"owner": "acme", "repo": "app", "branch": "agent/old"}
    assert writes(github) == []


def test_release_asset_upload_is_judged_as_github_not_refused_as_an_unknown_host(
        sidecar: RunningSidecar, github: SandboxGitHub) -> None:
    response = agent(sidecar).post("https://uploads.github.com/repos/acme/app/releases/1/assets?name=app.zip",
                                   data=b"PK\x03\x04 binary", headers={"content-type": "application/zip", **AGENT_AUTH})
    body = assert_github_refusal(response)
    assert "workflow" in body["message"], body
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["system"] == "github" and receipt["action"].startswith("github.")
    assert receipt["request"]["host"] == "uploads.github.com"
    assert writes(github) == []


def test_lookup_failure_refuses_the_create(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    hubspot.stop()  # the duplicate check cannot ask HubSpot any more
    response = agent(sidecar).post(CONTACTS, json={"properties": {"email": "x@acme.com"}}, headers=AGENT_AUTH)
    body = assert_hubspot_refusal(response)
    assert "lookup" in body["message"] or "no_duplicate_contacts" in body["message"], body
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["decision"] == "BLOCK" and receipt["actions_taken"] == []


class _SearchFails(SandboxHubSpot):
    def handle(self, request: Any) -> Any:
        if request.path.endswith("/search"):
            from enact_proxy.sandbox._http import json_response
            return json_response(500, {"status": "error", "message": "internal", "category": "INTERNAL"})
        return super().handle(request)


def test_lookup_answering_500_refuses_the_create(sidecar_factory: Callable[..., RunningSidecar]) -> None:
    with _SearchFails() as upstream:
        sidecar = sidecar_factory(systems={"hubspot": {"upstream": upstream.url}},
                                  workflows=HUBSPOT_ONLY)
        response = agent(sidecar).post(CONTACTS, json={"properties": {"email": "x@acme.com"}}, headers=AGENT_AUTH)
        body = assert_hubspot_refusal(response)
        assert "500" in body["message"], body
        assert writes(upstream) == []


# -- egress ----------------------------------------------------------------------------------------

def _raw_connect(sidecar: RunningSidecar, target: str) -> tuple[str, dict[str, str], str]:
    host, port = sidecar.http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return lines[0], headers, rest.decode("utf-8", "replace")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket that must never be dialled: a refused egress opens no connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def test_egress_to_an_unguarded_host_is_refused_before_any_connection(
        sidecar: RunningSidecar, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    status, headers, body = _raw_connect(sidecar, f"127.0.0.1:{port}")
    assert " 403 " in status + " "
    assert headers["x-enact-decision"] == "BLOCK"
    assert body.startswith("Blocked by Enact:")
    with pytest.raises(BlockingIOError):
        listener.accept()
    receipt = sidecar.receipt(headers["x-enact-receipt"])
    assert receipt["action"] == "egress.connect" and receipt["decision"] == "BLOCK"
    assert receipt["payload"] == {"host": "127.0.0.1", "port": port}

    curl = subprocess.run(["curl", "-sS", "-v", "--max-time", "10", "--proxy", sidecar.proxy_url,
                           "--cacert", str(sidecar.ca), "https://evil.example.com/steal"],
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode != 0
    assert "403" in curl.stderr and "X-Enact-Decision: BLOCK" in curl.stderr, curl.stderr

    with pytest.raises(requests.exceptions.ProxyError):
        agent(sidecar).get("https://evil.example.com/steal")
    refused = [r for r in sidecar.receipts() if r["action"] == "egress.connect"]
    assert {r["payload"]["host"] for r in refused} == {"127.0.0.1", "evil.example.com"}


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, bytes, list[bytes]]]:
    """A TLS server on loopback with its own self-signed certificate: (port, its DER cert, requests)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "passthrough-upstream")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "up.pem", tmp_path / "up.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                raw, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], cert.public_bytes(serialization.Encoding.DER), seen
    server.close()


def test_passthrough_host_is_tunnelled_without_interception(
        sidecar_factory: Callable[..., RunningSidecar], hubspot: SandboxHubSpot,
        tls_server: tuple[int, bytes, list[bytes]], tmp_path: Path) -> None:
    import http.client

    port, upstream_der, seen = tls_server
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, passthrough=["127.0.0.1"],
                              workflows=HUBSPOT_ONLY)
    proxy_host, proxy_port = sidecar.http.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(tmp_path / "up.pem"))
    conn = http.client.HTTPSConnection(proxy_host, int(proxy_port), context=context, timeout=10)
    conn.set_tunnel("127.0.0.1", port)
    conn.request("GET", "/v1/models")
    assert conn.sock.getpeercert(binary_form=True) == upstream_der  # the upstream's own certificate: no MITM
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"ok"
    assert "x-enact-decision" not in {k.lower() for k, _ in response.getheaders()}
    conn.close()
    assert seen and seen[0].startswith(b"GET /v1/models")
    assert not [r for r in sidecar.receipts() if r.get("action") == "egress.connect"]


# -- credentials and headers -----------------------------------------------------------------------

def test_credential_isolation(sidecar_factory: Callable[..., RunningSidecar]) -> None:
    with SandboxHubSpot(token=UPSTREAM_TOKEN) as upstream:
        sidecar = sidecar_factory(systems={"hubspot": {"upstream": upstream.url, "token_env": "HUBSPOT_TOKEN"}},
                                  env={"HUBSPOT_TOKEN": UPSTREAM_TOKEN}, workflows=HUBSPOT_ONLY)
        client = agent(sidecar)
        created = client.post(CONTACTS, json={"properties": {"email": "iso@acme.com"}})  # no Authorization
        assert created.status_code == 201, created.text
        spoofed = client.post(CONTACTS, json={"properties": {"email": "iso2@acme.com"}},
                              headers={"Authorization": "Bearer agent-guess"})
        assert spoofed.status_code == 201, spoofed.text
        dup = client.post(CONTACTS, json={"properties": {"email": "iso@acme.com"}})
        assert_hubspot_refusal(dup, "no_duplicate_contacts")
        assert upstream.received
        assert {r.headers.get("authorization") for r in upstream.received} == {f"Bearer {UPSTREAM_TOKEN}"}
        sidecar.stop()
        for path in sidecar.receipts_dir.rglob("*"):
            if path.is_file():
                assert UPSTREAM_TOKEN.encode() not in path.read_bytes(), path
        assert UPSTREAM_TOKEN not in "".join(sidecar.output)
        assert "agent-guess" not in json.dumps(sidecar.receipts())


def test_enact_request_headers_are_stripped(sidecar: RunningSidecar, github: SandboxGitHub) -> None:
    response = agent(sidecar).get(f"{GITHUB}/repos/acme/app",
                                  headers={"X-Enact-Decision": "PASS", "X-Enact-Receipt": "forged",
                                           "x-enact-anything": "1", "X-Other": "kept"})
    assert response.status_code == 200 and response.headers["X-Enact-Decision"] == "PASS"
    assert response.headers["X-Enact-Receipt"] != "forged"
    (received,) = github.received
    assert not [name for name in received.headers if name.lower().startswith("x-enact-")]
    assert received.headers["x-other"] == "kept"


# -- modes and limits ------------------------------------------------------------------------------

def test_shadow_mode_forwards_a_would_be_block(sidecar_factory: Callable[..., RunningSidecar],
                                               hubspot: SandboxHubSpot) -> None:
    hubspot.add_contact("seen@acme.com")
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, mode="shadow",
                              workflows=HUBSPOT_ONLY)
    response = agent(sidecar).post(CONTACTS, json={"properties": {"email": "SEEN@acme.com"}}, headers=AGENT_AUTH)
    assert response.status_code == 409  # HubSpot's own answer: the request was forwarded
    assert response.headers["X-Enact-Decision"] == "BLOCK"
    assert response.headers["X-Enact-Mode"] == "shadow"
    receipt = sidecar.receipt(response.headers["X-Enact-Receipt"])
    assert receipt["mode"] == "shadow" and receipt["decision"] == "BLOCK"
    assert receipt["actions_taken"] and receipt["actions_taken"][0]["output"]["status"] == 409
    assert len(writes(hubspot, "POST", "/contacts")) == 1


def test_body_over_the_limit_is_answered_413(sidecar_factory: Callable[..., RunningSidecar],
                                            hubspot: SandboxHubSpot) -> None:
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, limits={"max_body_bytes": 2048},
                              workflows=HUBSPOT_ONLY)
    body = {"properties": {"email": "big@acme.com", "notes": "x" * 5000}}
    response = agent(sidecar).post(CONTACTS, json=body, headers=AGENT_AUTH)
    assert response.status_code == 413
    payload = response.json()
    assert payload["status"] == "error" and payload["message"].startswith("Blocked by Enact:")
    assert "2048" in payload["message"]
    assert response.headers["X-Enact-Decision"] == "BLOCK"
    assert sidecar.receipt(response.headers["X-Enact-Receipt"])["decision"] == "BLOCK"
    assert hubspot.received == []


def test_gzip_encoded_json_is_read(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    hubspot.add_contact("zip@acme.com")
    client = agent(sidecar)
    headers = {**AGENT_AUTH, "content-type": "application/json", "content-encoding": "gzip"}
    fresh = client.post(CONTACTS, data=gzip.compress(b'{"properties": {"email": "new@acme.com"}}'), headers=headers)
    assert fresh.status_code == 201, fresh.text
    assert sidecar.receipt(fresh.headers["X-Enact-Receipt"])["payload"]["email"] == "new@acme.com"
    dup = client.post(CONTACTS, data=gzip.compress(b'{"properties": {"email": "ZIP@acme.com"}}'), headers=headers)
    assert_hubspot_refusal(dup, "no_duplicate_contacts")
    assert len(writes(hubspot, "POST")) == 1


@pytest.mark.parametrize(("data", "encoding", "reason"), [
    (gzip.compress(b'{"properties": {"email": "a@acme.com"}}')[:-9], "gzip", "could not be decoded"),
    (b"\x1f\x8bnot gzip at all", "gzip", "could not be decoded"),
    (b'{"properties": {"email": "a@acme.com"', None, "not valid JSON"),
    (b'{"properties": {"email": "a@acme.com"}, "properties": {"email": "b@acme.com"}}', None, "duplicate key"),
])
def test_unreadable_body_is_refused_with_a_reason(sidecar: RunningSidecar, hubspot: SandboxHubSpot, data: bytes,
                                                  encoding: str | None, reason: str) -> None:
    headers = {**AGENT_AUTH, "content-type": "application/json"}
    if encoding:
        headers["content-encoding"] = encoding
    response = agent(sidecar).post(CONTACTS, data=data, headers=headers)
    assert_hubspot_refusal(response, reason)
    assert sidecar.receipt(response.headers["X-Enact-Receipt"])["decision"] == "BLOCK"
    assert hubspot.received == []


def test_method_override_header_is_refused(sidecar: RunningSidecar, hubspot: SandboxHubSpot) -> None:
    response = agent(sidecar).post(CONTACTS, json={"properties": {"email": "m@acme.com"}},
                                   headers={**AGENT_AUTH, "X-HTTP-Method-Override": "DELETE"})
    assert_hubspot_refusal(response, "method-override")
    assert hubspot.received == []


# -- GitHub ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/repos/acme/app/git/refs/heads%2Fmain",
    "/repos/ACME/App//git/refs/heads/main",
    "/repos/acme/app/git/refs/heads/agent/../main",
    "/api/v3/repos/Acme/APP/git/refs/heads/MAIN",
])
def test_path_tricks_are_still_a_push_to_main(sidecar: RunningSidecar, github: SandboxGitHub, path: str) -> None:
    before = github.refs("acme", "app")
    sha = before["refs/heads/main"]
    # curl --path-as-is sends the target exactly as written (requests would tidy some of these up).
    result = subprocess.run(
        ["curl", "-sS", "--path-as-is", "-D", "-", "--max-time", "10", "--proxy", sidecar.proxy_url,
         "--cacert", str(sidecar.ca), "-X", "PATCH", "-H", "authorization: token agent",
         "-H", "content-type: application/json", "--data", json.dumps({"sha": sha, "force": True}),
         f"{GITHUB}{path}"], capture_output=True, text=True, timeout=30)
    *_, head, body = re.split(r"\r?\n\r?\n", result.stdout)  # the CONNECT answer's headers come first
    assert " 403" in head.splitlines()[0], result.stdout + result.stderr
    assert "x-enact-decision: block" in head.lower()
    message = json.loads(body)["message"]
    assert message.startswith("Blocked by Enact:") and "no_push_to_main" in message
    run_id = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                  if line.lower().startswith("x-enact-receipt:"))
    receipt = sidecar.receipt(run_id)
    assert receipt["action"] == "github.push_commit"
    assert receipt["payload"]["owner"] == "acme" and receipt["payload"]["repo"] == "app"
    assert receipt["payload"]["branch"].lower() == "main"
    assert writes(github) == []
    assert github.refs("acme", "app") == before


def test_graphql_mutation_to_main_is_refused_and_a_query_passes(sidecar: RunningSidecar,
                                                                github: SandboxGitHub) -> None:
    client = agent(sidecar)
    query = client.post(f"{GITHUB}/graphql", json={"query": "query { viewer { login } }"}, headers=AGENT_AUTH)
    assert query.status_code == 200 and query.json()["data"]["viewer"]["login"]
    assert query.headers["X-Enact-Decision"] == "PASS"
    assert sidecar.receipt(query.headers["X-Enact-Receipt"])["action"] == "github.read"

    document = """mutation($repo: ID!, $oid: GitObjectID!) {
      a: createRef(input: {repositoryId: $repo, name: "refs/heads/agent/ok", oid: $oid}) { ref { id } }
      b: createRef(input: {repositoryId: $repo, name: "refs/heads/main", oid: $oid}) { ref { id } }
    }"""
    sha = github.branch_sha("acme", "app", "main")
    repo_id = "R_" + base64.b64encode(b"acme/app").decode()
    github.clear_received()
    refused = client.post(f"{GITHUB}/graphql", json={"query": document, "variables": {"repo": repo_id, "oid": sha}},
                          headers=AGENT_AUTH)
    assert refused.status_code == 200
    assert refused.headers["X-Enact-Decision"] == "BLOCK"
    body = refused.json()
    assert body["data"] is None and body["errors"][0]["type"] == "FORBIDDEN"
    assert body["errors"][0]["message"].startswith("Blocked by Enact:")
    assert not [r for r in github.received if b"createRef" in r.body]
    assert "refs/heads/agent/ok" not in github.refs("acme", "app")


def test_graphql_create_ref_to_main_names_no_push_to_main(sidecar: RunningSidecar, github: SandboxGitHub) -> None:
    repo_id = "R_" + base64.b64encode(b"acme/app").decode()
    document = 'mutation($r: ID!, $o: GitObjectID!) { createRef(input: {repositoryId: $r, name: "refs/heads/main",' \
               ' oid: $o}) { ref { id } } }'
    response = agent(sidecar).post(f"{GITHUB}/graphql", headers=AGENT_AUTH, json={
        "query": document, "variables": {"r": repo_id, "o": github.branch_sha("acme", "app", "main")}})
    assert "no_push_to_main" in response.json()["errors"][0]["message"]


def test_upstream_down_gives_502_and_a_failed_receipt(sidecar_factory: Callable[..., RunningSidecar]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()  # nothing listens there any more
    sidecar = sidecar_factory(systems={"github": {"upstream": dead, "git_upstream": dead}},
                              workflows=GITHUB_ONLY)
    response = agent(sidecar).post(f"{GITHUB}/repos/acme/app/issues", json={"title": "hello"}, headers=AGENT_AUTH)
    assert response.status_code == 502
    # mitmproxy writes the 502 itself, without the response hook: the receipt is found on disk.
    wait_until(lambda: any(r["action"] == "github.create_issue" for r in sidecar.receipts()), what="receipt")
    (receipt,) = [r for r in sidecar.receipts() if r["action"] == "github.create_issue"]
    assert receipt["decision"] == "PASS"
    (taken,) = receipt["actions_taken"]
    assert taken["success"] is False and "Connect call failed" in taken["output"]["error"]


# -- lifecycle -------------------------------------------------------------------------------------

def test_sigterm_flushes_every_receipt_and_they_verify(sidecar: RunningSidecar, hubspot: SandboxHubSpot,
                                                       github: SandboxGitHub) -> None:
    client = agent(sidecar)
    seen: list[str] = []
    for i in range(5):
        r = client.post(CONTACTS, json={"properties": {"email": f"lead{i % 3}@acme.com"}}, headers=AGENT_AUTH)
        seen += r.headers["X-Enact-Receipt"].split(",")
    r = client.get(f"{GITHUB}/repos/acme/app", headers=AGENT_AUTH)
    seen.append(r.headers["X-Enact-Receipt"])
    assert sidecar.stop() == 0
    assert sorted(r["run_id"] for r in sidecar.receipts()) == sorted(seen)
    assert [r["decision"] for r in sidecar.receipts() if r["action"] == "hubspot.create_contact"].count("BLOCK") == 2
    verify = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "receipts", "verify", "--dir",
                             str(sidecar.receipts_dir)], cwd=sidecar.directory, capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "6 receipt(s)" in verify.stdout and "checkpoint signatures" in verify.stdout
