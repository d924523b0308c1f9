"""``admin.webhook_url``: a notice on each new pending approval (SPEC §8), Slack-compatible.

The state store calls :meth:`Webhook.notify` when it has made an approval pending; ``notify`` only
queues the notice and returns, and a background thread POSTs it. A slow, failing or unreachable
receiver never blocks or fails a decision: a notice that cannot be sent is logged (without the URL,
which for Slack is itself a secret) and dropped, and so is one that finds the queue full.

The body is ``{"text": ..., "approval": {id, action, actor, created_at, expires_at}}``: Slack's
incoming webhooks read ``text`` and ignore the rest. The payload is left out (it may hold what the
agent wrote, possibly personal data); the console and ``enact-proxy approvals list`` show it to a
person who signed in.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from enact_proxy.state import Approval

log = logging.getLogger("enact_proxy.admin.webhook")
QUEUE_SIZE = 100
TIMEOUT_SECONDS = 5.0
MAX_FIELD = 200


def _slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions (``<!channel>``); ``&``, ``<``, ``>`` must be escaped."""
    text = text[:MAX_FIELD]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(approval: Approval) -> dict[str, Any]:
    """What is POSTed for ``approval``: no payload, no token, nothing but who asked for what."""
    text = (f"Enact: {_slack_escape(approval.action)} by {_slack_escape(approval.actor)} is waiting for approval "
            f"{approval.id} (expires {approval.expires_at.isoformat(timespec='seconds')}). "
            f"Approve or deny it in the console or with `enact-proxy approvals approve|deny {approval.id}`.")
    return {"text": text,
            "approval": {"id": approval.id, "action": approval.action[:MAX_FIELD], "actor": approval.actor[:MAX_FIELD],
                         "created_at": approval.created_at.isoformat(), "expires_at": approval.expires_at.isoformat()}}


class Webhook:
    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("admin.webhook_url: expected an http:// or https:// URL")
        self._url = url
        self._timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="enact-webhook", daemon=True)
        self.sent = 0  # notices the receiver accepted (2xx), for tests and logs
        self.failed = 0

    def start(self) -> Webhook:
        self._thread.start()
        return self

    def notify(self, approval: Approval) -> None:
        """Queue a notice for ``approval``; returns at once (the store calls it on a deciding thread)."""
        try:
            self._queue.put_nowait(message(approval))
        except queue.Full:
            self.failed += 1
            log.warning("webhook: %d notices waiting already; the one for approval %s is dropped",
                        QUEUE_SIZE, approval.id)

    def _run(self) -> None:
        session = requests.Session()
        session.trust_env = False  # sent directly: not through a proxy from the environment (the agent's, say)
        while True:
            body = self._queue.get()
            if body is None:
                return
            approval_id = body["approval"]["id"]
            try:
                answer = session.post(self._url, json=body, timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                self.failed += 1
                log.warning("webhook: notice for approval %s not delivered (%s)", approval_id, type(exc).__name__)
                continue
            if 200 <= answer.status_code < 300:
                self.sent += 1
            else:
                self.failed += 1
                log.warning("webhook: notice for approval %s answered HTTP %d", approval_id, answer.status_code)

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (within ``timeout``), then end the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
