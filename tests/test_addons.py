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

from enact_proxy.addons import Decide, Egress, Enact, Recognise, Record
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
    egress, recognise, decide, record = enact.addons
    assert isinstance(egress, Egress) and isinstance(recognise, Recognise)
    assert isinstance(decide, Decide) and isinstance(record, Record)
    return egress, recognise, decide, record


def run(enact: Enact, f: Any) -> Any:
    """The request hooks in proxy order, as mitmproxy would call them."""
    egress, recognise, decide, _record = parts(enact)

    async def go() -> None:
        with taddons.context(enact):
            for addon in (egress, recognise, decide):
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

    monkeypatch.setattr(decide_module, "_judge_all", broken)
    flow = tflow.tflow(req=tutils.treq(host="api.github.com", port=443, path="/repos/acme/app", method=b"GET"))

    class Engine:
        mode = "enforce"

        def needs_systems(self, actions: object) -> bool:
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
