"""``admin.webhook_url`` (enact_proxy/admin/webhook.py) against a local HTTP server, and the state
store's hook that feeds it: one notice per *new* pending approval, never blocking or failing a decision."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from enact_proxy.admin.webhook import Webhook, message
from enact_proxy.state import Approval, SqliteStateStore, approval_digest
from tests.e2e.harness import wait_until

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Receiver:
    """A local HTTP server that records every POST; ``status`` is what it answers; ``gate`` holds it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver.gate.wait(30)
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret-part"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.gate.set()
    found.server.shutdown()
    found.server.server_close()


def approval(action: str = "github.merge_pr", actor: str = "agent@company.com", **payload: Any) -> Approval:
    return Approval(id="8b54a94f-6870-4959-96c0-2e06ced3fd11", digest="d" * 64, status="pending", actor=actor,
                    action=action, payload=payload, created_at=NOW, expires_at=NOW + timedelta(hours=1))


def test_a_notice_names_id_action_and_actor_and_nothing_of_the_payload(receiver: Receiver) -> None:
    hook = Webhook(receiver.url).start()
    try:
        hook.notify(approval(number=7, ssn="123-45-6789", token="ghp_secret"))
        wait_until(lambda: hook.sent == 1, what="the notice to be delivered")
    finally:
        hook.stop()
    (body,) = receiver.bodies
    assert receiver.headers[0]["Content-Type"] == "application/json"
    text = body["text"]
    assert "github.merge_pr" in text and "agent@company.com" in text and "8b54a94f-6870-4959-96c0-2e06ced3fd11" in text
    assert body["approval"]["id"] == "8b54a94f-6870-4959-96c0-2e06ced3fd11"
    assert "123-45-6789" not in json.dumps(body) and "ghp_secret" not in json.dumps(body)


def test_slack_markup_in_what_the_agent_names_is_escaped() -> None:
    text = message(approval(action="github.<!channel>", actor="<https://evil.example|click> & co"))["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil" not in text and "&amp; co" in text


def test_a_slow_or_failing_receiver_never_blocks_or_fails_notify(receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver hangs on every request
    hook = Webhook(receiver.url, timeout=30).start()
    try:
        for _ in range(3):
            hook.notify(approval())  # returns although the first POST is still hanging
        assert receiver.bodies == []
        receiver.status = 500
        receiver.gate.set()
        wait_until(lambda: hook.failed == 3, what="the three notices to be answered 500")
        assert hook.sent == 0 and len(receiver.bodies) == 3
    finally:
        hook.stop()


def test_an_unreachable_receiver_is_logged_without_its_url(caplog: pytest.LogCaptureFixture) -> None:
    hook = Webhook("http://127.0.0.1:9/hooks/secret-part", timeout=2).start()
    try:
        hook.notify(approval())
        wait_until(lambda: hook.failed == 1, what="the notice to fail")
    finally:
        hook.stop()
    assert "not delivered" in caplog.text and "secret-part" not in caplog.text


def test_only_http_urls_are_taken() -> None:
    for bad in ("file:///etc/passwd", "ftp://example.com/x", "not a url", "https://"):
        with pytest.raises(ValueError, match="admin.webhook_url"):
            Webhook(bad)


def test_the_store_announces_each_new_pending_approval_once() -> None:
    store = SqliteStateStore(":memory:")
    seen: list[Approval] = []
    store.on_new_approval = seen.append
    digest = approval_digest("agent@company.com", "github.merge_pr", {"number": 1})
    kwargs: dict[str, Any] = {"digest": digest, "actor": "agent@company.com", "action": "github.merge_pr",
                              "payload": {"number": 1}, "expires": timedelta(hours=1)}
    first = store.request_approval(now=NOW, **kwargs)
    again = store.request_approval(now=NOW + timedelta(seconds=5), **kwargs)  # the agent retried: same approval
    assert again.id == first.id and [a.id for a in seen] == [first.id]
    store.decide_approval(first.id, approve=False, by="alice", reason="no", now=NOW + timedelta(seconds=6))
    second = store.request_approval(now=NOW + timedelta(seconds=7), **kwargs)  # a new one after the denial
    assert [a.id for a in seen] == [first.id, second.id]
    store.close()


def test_a_failing_hook_never_fails_the_approval() -> None:
    store = SqliteStateStore(":memory:")

    def broken(_: Approval) -> None:
        raise RuntimeError("receiver exploded")

    store.on_new_approval = broken
    made = store.request_approval(digest="e" * 64, actor="a@b.c", action="github.merge_pr", payload={}, now=NOW,
                                  expires=timedelta(hours=1))
    assert store.list_approvals("pending", NOW)[0].id == made.id
    store.close()
