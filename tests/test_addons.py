"""The mitmproxy addons, hook by hook, on flows built with ``mitmproxy.test`` (no proxy process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mitmproxy import connection
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow, tutils

from enact_proxy.addons import Decide, Egress, Enact, Hygiene, Recognise, Record
from enact_proxy.config import load_config
from enact_proxy.sidecar import Sidecar
from tests.e2e.harness import log_records

TOKEN = "ghp_sidecarsecret0123456789"
MAIN_SHA = "a" * 40


def write(tmp_path: Path, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "actor": {"email": "agent@company.com", "roles": ["engineer"]},
        "egress": {"passthrough": ["api.openai.com"]},
        "systems": {"github": {"upstream": "http://127.0.0.1:9", "git_upstream": "http://127.0.0.1:9",
                               "token_env": "GH_TOKEN"},
                    "hubspot": {"upstream": "http://127.0.0.1:9"}},
        "workflows": {"agent_git": ["github.create_branch", "github.push_commit", "github.create_issue"],
                      "deals": ["hubspot.create_deal"]},
        "policies": ["no_push_to_main", {"require_actor_role": {"roles": ["engineer"]}}],
        "limits": {"max_body_bytes": 512},
    }
    config.update(overrides)
    path = tmp_path / "enact.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def make_sidecar(tmp_path: Path) -> Iterator[Any]:
    made: list[Sidecar] = []

    def make(**overrides: Any) -> Sidecar:
        sidecar = Sidecar(load_config(write(tmp_path, **overrides)), environ={"GH_TOKEN": TOKEN}).start()
        made.append(sidecar)
        return sidecar

    yield make
    for sidecar in made:
        sidecar.close()


def flow(method: str, host: str, path: str, body: Any = b"", headers: dict[str, str] | None = None) -> Any:
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    request = tutils.treq(method=method.encode(), host=host, port=443, scheme=b"https", authority=b"",
                          path=path.encode(), content=content, headers=tutils.http.Headers(
                              [(k.encode(), v.encode()) for k, v in {"host": host, **(headers or {})}.items()]))
    f = tflow.tflow(req=request)
    f.client_conn.sni = host
    return f


def parts(enact: Enact) -> tuple[Egress, Recognise, Decide, Record]:
    egress, hygiene, recognise, decide, record = enact.addons
    assert isinstance(egress, Egress) and isinstance(hygiene, Hygiene) and isinstance(recognise, Recognise)
    assert isinstance(decide, Decide) and isinstance(record, Record)
    return egress, recognise, decide, record


def hygiene_of(enact: Enact) -> Hygiene:
    addon = enact.addons[1]
    assert isinstance(addon, Hygiene)
    return addon


def run(enact: Enact, f: Any) -> Any:
    """The request hooks in proxy order, as mitmproxy would call them."""
    egress, recognise, decide, _record = parts(enact)

    async def go() -> None:
        with taddons.context(enact):
            for addon in (egress, hygiene_of(enact), recognise, decide):
                await addon.request(f)

    asyncio.run(go())
    return f


def receipts(sidecar: Sidecar) -> list[dict[str, Any]]:
    sidecar.close()  # flushes every pending receipt
    found = [r for r in log_records(sidecar.config.receipts_dir) if r["kind"] == "receipt"]
    return sorted(found, key=lambda r: (r["timestamp"], r["seq"]))


def test_a_pass_is_forwarded_to_the_upstream_with_the_sidecar_credential(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    enact = Enact(sidecar=sidecar)
    f = run(enact, flow("POST", "api.github.com", "/repos/acme/app/git/refs",
                        {"ref": "refs/heads/agent/x", "sha": MAIN_SHA},
                        {"authorization": "token agent", "x-enact-decision": "PASS"}))
    assert f.response is None
    assert (f.request.scheme, f.request.host, f.request.port) == ("http", "127.0.0.1", 9)
    assert f.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-enact-decision" not in f.request.headers
    f.response = tutils.tresp(status_code=201, content=json.dumps({"ref": "refs/heads/agent/x"}).encode(),
                              headers=tutils.http.Headers([(b"content-type", b"application/json")]))
    parts(enact)[3].response(f)
    assert f.response.headers["X-Enact-Decision"] == "PASS"
    (receipt,) = receipts(sidecar)
    assert receipt["run_id"] == f.response.headers["X-Enact-Receipt"]
    assert receipt["action"] == "github.create_branch" and receipt["decision"] == "PASS"
    assert receipt["actions_taken"][0]["success"] is True
    assert receipt["actions_taken"][0]["output"]["status"] == 201
    assert TOKEN not in json.dumps(receipt)


def test_a_block_is_answered_in_githubs_shape_and_not_forwarded(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    f = run(Enact(sidecar=sidecar), flow("PATCH", "api.github.com", "/repos/acme/app/git/refs/heads%2FMain",
                                         {"sha": MAIN_SHA, "force": True}))
    assert f.response is not None and f.response.status_code == 403
    body = json.loads(f.response.content)
    assert body["message"].startswith("Blocked by Enact: no_push_to_main") and body["documentation_url"]
    assert f.request.host == "api.github.com"  # never pointed at the upstream
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and receipt["payload"]["force"] is True


def test_shadow_mode_forwards_and_marks_the_would_be_block(make_sidecar: Any) -> None:
    sidecar = make_sidecar(mode="shadow")
    enact = Enact(sidecar=sidecar)
    f = run(enact, flow("PATCH", "api.github.com", "/repos/acme/app/git/refs/heads/main", {"sha": MAIN_SHA}))
    assert f.response is None and f.request.host == "127.0.0.1"
    f.response = tutils.tresp(status_code=200)
    parts(enact)[3].response(f)
    assert f.response.headers["X-Enact-Decision"] == "BLOCK"
    assert f.response.headers["X-Enact-Mode"] == "shadow"
    (receipt,) = receipts(sidecar)
    assert receipt["mode"] == "shadow" and receipt["decision"] == "BLOCK"


@pytest.mark.parametrize(("host", "body", "headers", "status", "reason"), [
    ("api.hubapi.com", {"properties": {"notes": "x" * 600}}, {}, 413, "exceeds the limit of 512 bytes"),
    ("api.hubapi.com", b"\x1f\x8b broken", {"content-encoding": "gzip"}, 403, "could not be decoded"),
    ("api.hubapi.com", {"properties": {}}, {"x-http-method-override": "DELETE"}, 403, "method-override"),
    ("api.github.com", b"{not json", {}, 403, "not valid JSON"),
])
def test_unreadable_requests_are_refused_in_the_vendor_shape(make_sidecar: Any, host: str, body: Any,
                                                              headers: dict[str, str], status: int,
                                                              reason: str) -> None:
    sidecar = make_sidecar()
    path = "/crm/v3/objects/deals" if host == "api.hubapi.com" else "/repos/acme/app/issues"
    f = run(Enact(sidecar=sidecar), flow("POST", host, path, body, headers))
    assert f.response.status_code == status
    assert f.response.headers["content-type"].startswith("application/json")
    message = json.loads(f.response.content)["message"]
    assert message.startswith("Blocked by Enact:") and reason in message
    assert f.response.headers["X-Enact-Decision"] == "BLOCK"
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and reason in receipt["reason"]


def test_host_header_and_sni_must_agree(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    f = flow("POST", "api.github.com", "/repos/acme/app/issues", {"title": "t"})
    f.client_conn.sni = "evil.example.com"
    run(Enact(sidecar=sidecar), f)
    assert f.response.status_code == 403
    assert "TLS server name" in json.loads(f.response.content)["message"]


def test_egress_to_an_unknown_host_is_refused_at_connect(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    enact = Enact(sidecar=sidecar)
    f: Any = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="evil.example.com", port=443, path=b"",
                                    authority=b"evil.example.com:443"))

    async def go() -> None:
        with taddons.context(enact):
            await parts(enact)[0].http_connect(f)

    asyncio.run(go())
    assert f.response.status_code == 403 and f.response.headers["X-Enact-Decision"] == "BLOCK"
    assert f.response.content.startswith(b"Blocked by Enact:")
    (receipt,) = receipts(sidecar)
    assert receipt["action"] == "egress.connect" and receipt["payload"]["host"] == "evil.example.com"


def test_passthrough_connect_is_not_refused(make_sidecar: Any) -> None:
    enact = Enact(sidecar=make_sidecar())
    f: Any = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="api.openai.com", port=443, path=b"",
                                    authority=b"api.openai.com:443"))

    async def go() -> None:
        with taddons.context(enact):
            await parts(enact)[0].http_connect(f)

    asyncio.run(go())
    assert f.response is None and f.metadata["enact.passthrough"] is True


@pytest.mark.parametrize(("address", "allowed"), [
    (("127.0.0.1", 9), True),          # the configured upstream
    (("api.openai.com", 443), True),   # passthrough
    (("127.0.0.1", 10), False),
    (("evil.example.com", 443), False),
])
def test_server_connect_dials_only_upstreams_and_passthrough(make_sidecar: Any, address: tuple[str, int],
                                                             allowed: bool) -> None:
    enact = Enact(sidecar=make_sidecar())
    server = connection.Server(address=address)
    data = server_hooks.ServerConnectionHookData(server=server, client=tflow.tclient_conn())
    with taddons.context(enact):
        parts(enact)[0].server_connect(data)
    assert (server.error is None) is allowed


def test_a_bug_while_deciding_refuses_the_request_instead_of_forwarding_it(monkeypatch) -> None:
    """mitmproxy logs a raising hook and carries on with the flow: Decide must refuse it itself."""
    import asyncio

    from mitmproxy.test import taddons, tflow, tutils

    from enact_proxy.addons import decide as decide_module
    from enact_proxy.addons._common import ACTIONS, CALL, WIRE
    from enact_proxy.addons.decide import Decide
    from enact_proxy.httpcall import build_call
    from enact_proxy.models import ActionRequest

    class Root:
        class state:  # noqa: N801 - stands in for the Sidecar attribute
            engine = None

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(decide_module.pipeline, "judge", broken)
    flow = tflow.tflow(req=tutils.treq(host="api.github.com", port=443, path="/repos/acme/app", method=b"GET"))

    class Engine:
        mode = "enforce"

        def may_block(self, actions: object) -> bool:
            return False

    Root.state.engine = Engine()  # type: ignore[assignment]
    flow.metadata[WIRE] = type("W", (), {"system": "github"})()
    flow.metadata[CALL] = build_call("GET", "api.github.com", "/repos/acme/app", {}, b"", 1024)
    flow.metadata[ACTIONS] = [ActionRequest(system="github", action="read", payload={})]
    addon = Decide(Root())  # type: ignore[arg-type]
    with taddons.context():
        asyncio.run(addon.request(flow))
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Enact-Decision"] == "BLOCK"
    assert b"internal error while deciding" in flow.response.content


def run_as_mitmproxy(enact: Enact, f: Any) -> Any:
    """The request hooks in proxy order, where one that raises is logged and the flow goes on (mitmproxy)."""
    egress, recognise, decide, _record = parts(enact)

    async def go() -> None:
        with taddons.context(enact):
            for addon in (egress, hygiene_of(enact), recognise, decide):
                try:
                    await addon.request(f)
                except Exception:  # noqa: BLE001, S112 - what mitmproxy's addon manager does with it
                    continue

    asyncio.run(go())
    return f


def test_a_request_an_earlier_hook_failed_to_recognise_is_refused_with_a_receipt(make_sidecar: Any,
                                                                                  monkeypatch: Any) -> None:
    from enact_proxy.addons import recognise as recognise_module

    def broken(*args: object) -> None:
        raise RuntimeError("recogniser bug")

    monkeypatch.setattr(recognise_module, "normalise_host", broken)  # outside Recognise's own try
    sidecar = make_sidecar()
    f = run_as_mitmproxy(Enact(sidecar=sidecar), flow("GET", "api.github.com", "/repos/acme/app"))
    assert f.response is not None and f.response.status_code == 403
    assert f.request.host == "api.github.com"  # never pointed at the upstream
    assert f.response.content.startswith(b"Blocked by Enact: request was not judged")
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and receipt["run_id"] == f.response.headers["X-Enact-Receipt"]
    assert receipt["reason"] == "request was not judged (an earlier check failed)"


def test_a_bug_while_deciding_leaves_a_block_receipt(make_sidecar: Any, monkeypatch: Any) -> None:
    from enact_proxy.addons import decide as decide_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(decide_module.pipeline, "judge", broken)
    sidecar = make_sidecar()
    f = run(Enact(sidecar=sidecar), flow("GET", "api.github.com", "/repos/acme/app"))
    assert f.response.status_code == 403 and f.request.host == "api.github.com"
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and receipt["reason"] == "internal error while deciding (RuntimeError)"
    assert receipt["system"] == "github"


def test_shadow_mode_tunnels_an_unknown_host_only_once_its_receipt_is_durable(make_sidecar: Any,
                                                                                monkeypatch: Any) -> None:
    from concurrent.futures import Future

    sidecar = make_sidecar(mode="shadow")

    def unwritable(*args: object, **kwargs: object) -> Future[Any]:
        failed: Future[Any] = Future()
        failed.set_exception(OSError(28, "No space left on device"))
        return failed

    monkeypatch.setattr(sidecar.engine, "record", unwritable)
    f = run_as_mitmproxy(Enact(sidecar=sidecar), flow("GET", "evil.example.com", "/"))
    assert f.response is not None and f.response.status_code == 403
    assert not f.metadata.get("enact.passthrough")
    assert f.response.headers["X-Enact-Receipt-Error"] == "OSError"


def test_a_request_the_hygiene_check_cannot_read_is_refused_not_let_past(make_sidecar: Any, monkeypatch: Any) -> None:
    from enact_proxy.addons import hygiene as hygiene_module

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("parser bug")

    monkeypatch.setattr(hygiene_module, "malformed", broken)
    sidecar = make_sidecar()
    f = run_as_mitmproxy(Enact(sidecar=sidecar), flow("GET", "api.github.com", "/repos/acme/app"))
    assert f.response is not None and f.response.status_code == 400
    assert f.request.host == "api.github.com"
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and "could not be checked (ValueError)" in receipt["reason"]


# -- hygiene: a request every parser reads alike, or a 400 ------------------------------------------

def raw_flow(method: bytes, host: str, path: bytes, fields: list[tuple[bytes, bytes]], content: bytes = b"",
             http_version: bytes = b"HTTP/1.1") -> Any:
    """A flow whose head is given byte for byte (control characters included), as mitmproxy parsed it."""
    request = tutils.treq(method=method, host=host, port=443, scheme=b"https", authority=b"", path=path,
                          http_version=http_version, content=content,
                          headers=tutils.http.Headers([(b"host", host.encode()), *fields]))
    f = tflow.tflow(req=request)
    f.client_conn.sni = host
    return f


SMUGGLED = b"x\rPATCH /repos/acme/app/git/refs/heads/main HTTP/1.1\rHost: api.github.com\rX-Ignore: "


@pytest.mark.parametrize(("method", "path", "fields", "content", "reason"), [
    (b"GET", b"/repos/acme/app", [(b"x-note", SMUGGLED)], b"", "header x-note holds a control character (CR)"),
    (b"GET", b"/repos/acme/app", [(b"x-note", b"a\nGET /x HTTP/1.1")], b"", "control character (LF)"),
    (b"GET", b"/repos/acme/app", [(b"x-note", b"a\x00b")], b"", "control character (NUL)"),
    (b"GET", b"/repos/acme/app", [(b"x-note", b"a\x0bb")], b"", "control character (0x0b)"),
    (b"GET", b"/repos/acme/app", [(b"x-note", b"a\x7fb")], b"", "control character (DEL)"),
    (b"GET", b"/repos/acme/app", [(b"x-note", b"first\r\n second")], b"", "obs-fold"),
    (b"GET", b"/repos/acme/app", [(b"x\rnote", b"v")], b"", "header name holds a control character (CR)"),
    (b"GET", b"/repos/acme/app", [(b"x note", b"v")], b"", "outside a token"),
    (b"POST", b"/repos/acme/app/issues", [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
     b"{}", "both Content-Length and Transfer-Encoding"),
    (b"POST", b"/repos/acme/app/issues", [(b"content-length", b"2"), (b"content-length", b"20")],
     b"{}", "several differing Content-Length"),
    (b"POST", b"/repos/acme/app/issues", [(b"transfer-encoding", b"gzip, chunked")], b"{}",
     "Transfer-Encoding other than chunked"),
    (b"POST", b"/repos/acme/app/issues", [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")],
     b"{}", "Transfer-Encoding other than chunked"),
    (b"POST", b"/repos/acme/app/issues", [(b"content-length", b"2")], b'{"title": "t"}',
     "Content-Length 2 does not match the 14-byte body"),
    (b"GET", b"/repos/acme/app", [(b"content-length", b"5")], b"hello", "a body on GET"),
    (b"HEAD", b"/repos/acme/app", [(b"transfer-encoding", b"chunked")], b"", "a body on HEAD"),
    (b"GET", b"/repos/acme/app", [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
                                  (b"sec-websocket-version", b"13")], b"", "protocol upgrade (websocket)"),
    (b"GET", b"/repos/acme/app", [(b"connection", b"Upgrade, HTTP2-Settings"), (b"upgrade", b"h2c"),
                                  (b"http2-settings", b"AAMAAABkAAQAoAAAAAIAAAAA")], b"", "protocol upgrade (h2c)"),
    (b"GET", b"/repos/acme/app\x01", [], b"", "request target holds a control character (0x01)"),
    (b"G\x01T", b"/repos/acme/app", [], b"", "method is not a token"),
])
def test_a_request_an_upstream_could_read_differently_is_refused_400_with_a_receipt(
        make_sidecar: Any, method: bytes, path: bytes, fields: list[tuple[bytes, bytes]], content: bytes,
        reason: str) -> None:
    sidecar = make_sidecar(workflows={"agent_git": ["github.read", "github.create_issue"]})
    enact = Enact(sidecar=sidecar)
    f = run(enact, raw_flow(method, "api.github.com", path, fields, content))
    assert f.response is not None and f.response.status_code == 400
    assert f.request.host == "api.github.com"  # never pointed at the upstream
    body = json.loads(f.response.content)
    assert body["message"].startswith("Blocked by Enact: malformed request:") and reason in body["message"]
    assert body["documentation_url"] and f.response.headers["X-Enact-Decision"] == "BLOCK"
    hygiene_of(enact).response(f)
    assert f.response.headers["connection"] == "close"
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and reason in receipt["reason"]
    assert receipt["action"] == "github.unknown" and receipt["request"]["host"] == "api.github.com"


def test_hubspot_refusal_for_a_malformed_request_is_a_validation_error(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    f = run(Enact(sidecar=sidecar), raw_flow(b"POST", "api.hubapi.com", b"/crm/v3/objects/deals",
                                             [(b"x-trace", b"1\r\n\tmore")], b"{}"))
    assert f.response.status_code == 400
    body = json.loads(f.response.content)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert "obs-fold" in body["message"]


@pytest.mark.parametrize(("method", "fields", "content"), [
    (b"GET", [(b"accept", b"application/json"), (b"x-tab", b"a\tb"), (b"x-latin", "café".encode("latin-1"))], b""),
    (b"GET", [(b"content-length", b"0")], b""),
    (b"POST", [(b"transfer-encoding", b"Chunked")], b'{"title": "t"}'),
    (b"POST", [(b"content-length", b"14"), (b"content-length", b"14")], b'{"title": "t"}'),
])
def test_well_formed_requests_pass_hygiene(make_sidecar: Any, method: bytes, fields: list[tuple[bytes, bytes]],
                                          content: bytes) -> None:
    sidecar = make_sidecar(workflows={"agent_git": ["github.read", "github.create_issue"]})
    path = b"/repos/acme/app" if method == b"GET" else b"/repos/acme/app/issues"
    f = run(Enact(sidecar=sidecar), raw_flow(method, "api.github.com", path, fields, content))
    assert f.response is None, f.response and f.response.content
    assert f.request.host == "127.0.0.1"  # forwarded


def test_upgrade_to_a_passthrough_host_is_not_hygienes_business(make_sidecar: Any) -> None:
    enact = Enact(sidecar=make_sidecar())
    f = raw_flow(b"GET", "api.openai.com", b"/v1/realtime", [(b"connection", b"upgrade"), (b"upgrade", b"websocket")])
    f.metadata["enact.passthrough"] = True

    async def go() -> None:
        with taddons.context(enact):
            await hygiene_of(enact).request(f)

    asyncio.run(go())
    assert f.response is None


def test_a_control_character_to_a_plain_http_passthrough_host_is_refused_in_plain_text(make_sidecar: Any) -> None:
    sidecar = make_sidecar()
    enact = Enact(sidecar=sidecar)
    f = raw_flow(b"GET", "api.openai.com", b"/v1/models", [(b"x-note", b"a\rb")])
    f.request.scheme = "http"
    f.metadata["enact.passthrough"] = True

    async def go() -> None:
        with taddons.context(enact):
            await hygiene_of(enact).request(f)

    asyncio.run(go())
    assert f.response.status_code == 400 and f.response.content.startswith(b"Blocked by Enact: malformed request")
    (receipt,) = receipts(sidecar)
    assert receipt["action"] == "egress.request" and receipt["decision"] == "BLOCK"


def test_mitmproxys_own_framing_refusal_still_leaves_a_receipt(make_sidecar: Any) -> None:
    """mitmproxy answers TE+CL with its own 400 before any request hook: the error hook records it."""
    from mitmproxy import flow as mflow

    sidecar = make_sidecar()
    enact = Enact(sidecar=sidecar)
    f = raw_flow(b"POST", "api.github.com", b"/repos/acme/app/issues",
                 [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")])
    f.error = mflow.Error("Received message with both transfer-encoding and content-length headers from client, "
                          "refusing to prevent request smuggling attacks. Disable the validate_inbound_headers "
                          "option to skip this security check.")
    unrelated = raw_flow(b"GET", "api.github.com", b"/repos/acme/app", [])
    unrelated.error = mflow.Error("Client disconnected.")

    async def go() -> None:
        with taddons.context(enact):
            await hygiene_of(enact).error(f)
            await hygiene_of(enact).error(unrelated)

    asyncio.run(go())
    (receipt,) = receipts(sidecar)
    assert receipt["decision"] == "BLOCK" and receipt["action"] == "github.unknown"
    assert receipt["reason"] == ("malformed request: message with both transfer-encoding and content-length "
                                 "headers from client")


def test_hygiene_turns_mitmproxys_header_validation_back_on(make_sidecar: Any) -> None:
    from mitmproxy.addons.proxyserver import Proxyserver

    enact = Enact(sidecar=make_sidecar())
    with taddons.context(Proxyserver(), enact) as tctx:
        tctx.options.validate_inbound_headers = False
        hygiene_of(enact).configure({"validate_inbound_headers"})
        assert tctx.options.validate_inbound_headers is True


def test_an_h2c_upgrade_is_refused_though_mitmproxy_strips_it_before_our_request_hook(make_sidecar: Any) -> None:
    from mitmproxy.addons.disable_h2c import DisableH2C

    sidecar = make_sidecar(workflows={"agent_git": ["github.read"]})
    enact = Enact(sidecar=sidecar)
    f = raw_flow(b"GET", "api.github.com", b"/repos/acme/app",
                 [(b"connection", b"Upgrade, HTTP2-Settings"), (b"upgrade", b"h2c"), (b"http2-settings", b"AAMA")])
    hygiene_of(enact).requestheaders(f)
    with taddons.context(DisableH2C()):
        DisableH2C().request(f)  # built in: runs before any script's request hook
    assert "upgrade" not in f.request.headers
    run(enact, f)
    assert f.response.status_code == 400
    assert "protocol upgrade (h2c) is not allowed" in json.loads(f.response.content)["message"]


def test_uploads_github_com_is_guarded_as_github(make_sidecar: Any) -> None:
    """Release asset uploads are judged as GitHub actions, never refused (or passed) as an unguarded host."""
    sidecar = make_sidecar()
    enact = Enact(sidecar=sidecar)
    connect: Any = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="uploads.github.com", port=443, path=b"",
                                               authority=b"uploads.github.com:443"))

    async def go() -> None:
        with taddons.context(enact):
            await parts(enact)[0].http_connect(connect)

    asyncio.run(go())
    assert connect.response is None
    f = run(enact, flow("POST", "uploads.github.com", "/repos/acme/app/releases/1/assets?name=a.zip", b"PK\x03\x04",
                        {"content-type": "application/zip"}))
    assert f.response.status_code == 403
    assert json.loads(f.response.content)["message"].startswith("Blocked by Enact:")
    (receipt,) = receipts(sidecar)
    assert receipt["system"] == "github" and receipt["action"].startswith("github.")
    assert receipt["action"] != "egress.connect" and receipt["request"]["host"] == "uploads.github.com"
