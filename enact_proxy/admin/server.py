"""The admin listener: tornado on a thread and event loop of its own.

Why tornado: it already ships with mitmproxy (no new dependency), is asyncio-native, and running it on
its own loop keeps the console's work (reading receipts, rendering) off the proxy's event loop; the
state store and receipt reads it makes run in worker threads.

Every ``/api/`` and ``/metrics`` request needs ``Authorization: Bearer <token>`` (401 otherwise). The
API answers JSON only and accepts writes only as ``application/json``: a cross-site form cannot send
that (or the header), and no CORS header is ever granted, so a page elsewhere cannot approve anything.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from enact_proxy.admin import receipts
from enact_proxy.receipts import ReceiptError
from enact_proxy.state import ApprovalNotPending

if TYPE_CHECKING:
    from enact_proxy.sidecar import Sidecar

log = logging.getLogger("enact_proxy.admin")
MAX_REASON = 2000
INCLUSION_SECONDS = 60  # the first proof on a long log builds the reader's index of it
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


class _Base(tornado.web.RequestHandler):
    sidecar: Sidecar
    needs_token = True

    def initialize(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.person: str | None = None

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def prepare(self) -> None:
        if not self.needs_token:
            return
        self.person = self.sidecar.admin_tokens.who(self.request.headers.get("Authorization"))
        if self.person is None:
            self.set_header("WWW-Authenticate", 'Bearer realm="enact"')
            self.answer(401, {"error": "a valid admin token is required (Authorization: Bearer <token>)"})

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.answer(status_code, {"error": self._reason})

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        if "application/json" not in self.request.headers.get("Content-Type", ""):
            raise tornado.web.HTTPError(415, reason="send application/json")
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise tornado.web.HTTPError(400, reason="the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, reason="the body must be a JSON object")
        return body


class Health(_Base):
    needs_token = False

    def get(self) -> None:
        self.answer(200, {"status": "serving"})


class Ready(_Base):
    needs_token = False

    async def get(self) -> None:
        problems = await asyncio.to_thread(self.sidecar.readiness_problems)
        self.answer(503 if problems else 200, {"ready": not problems, "problems": problems})


class MetricsPage(_Base):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.sidecar.metrics.render())


class WhoAmI(_Base):
    """The name of the token sent: the person the console shows as signed in (never the token)."""

    def get(self) -> None:
        self.answer(200, {"name": self.person})


class Approvals(_Base):
    async def get(self) -> None:
        status = self.get_query_argument("status", None)
        found = await asyncio.to_thread(self.sidecar.state.list_approvals, status, datetime.now(UTC))
        self.answer(200, {"approvals": [a.to_json() for a in found]})


class Decide(_Base):
    async def post(self, approval_id: str, verb: str) -> None:
        reason = str(self.json_body().get("reason") or "")[:MAX_REASON]
        try:
            approval = await asyncio.to_thread(self.sidecar.decide_approval, approval_id, verb == "approve",
                                               self.person or "", reason)
        except ApprovalNotPending as exc:
            status = 404 if exc.status is None else 409
            self.answer(status, {"error": str(exc), "status": exc.status})
            return
        except ReceiptError as exc:
            self.answer(503, {"error": str(exc)})
            return
        self.answer(200, {"approval": approval.to_json()})


class Reload(_Base):
    async def post(self) -> None:
        errors = await asyncio.to_thread(self.sidecar.reload_from_any_thread)
        if errors:
            self.answer(422, {"reloaded": False, "errors": errors})
        else:
            self.answer(200, {"reloaded": True, "config_sha256": self.sidecar.config.sha256})


class ReceiptList(_Base):
    async def get(self) -> None:
        since = _since(self.get_query_argument("since", None))
        limit = max(1, min(1000, int(self.get_query_argument("limit", "100") or 100)))
        stats: dict[str, Any] = {}
        found = await asyncio.to_thread(
            receipts.query, self.sidecar.config.receipts_dir, decision=self.get_query_argument("decision", None),
            action=self.get_query_argument("action", None), actor=self.get_query_argument("actor", None),
            since=since, limit=limit, stats=stats)
        # complete: False when the search stopped at receipts.MAX_SCANNED records before finding ``limit``
        self.answer(200, {"receipts": found, "complete": stats["complete"]})


class ReceiptOne(_Base):
    async def get(self, run_id: str) -> None:
        found = await asyncio.to_thread(receipts.find, self.sidecar.config.receipts_dir, run_id)
        if found is None:
            self.answer(404, {"error": f"no receipt {run_id}"})
            return
        verification: dict[str, Any] = {"signature": self.sidecar.key.verify(found)}
        verification.update(await asyncio.to_thread(inclusion, self.sidecar, run_id))
        self.answer(200, {"receipt": found, "verification": verification})


def inclusion(sidecar: Sidecar, run_id: str) -> dict[str, Any]:
    """Whether the receipt is in the newest signed checkpoint (see enact_proxy/admin/inclusion.py),
    worked out in a child process so the proof's index work never holds this process's GIL."""
    if importlib.util.find_spec("enact_proxy.receipts.prove") is None:
        return {}  # a log without signed checkpoints: the signature is all there is to check
    signer = getattr(sidecar, "log_signer", None)
    command = [sys.executable, "-m", "enact_proxy.admin.inclusion", str(sidecar.config.receipts_dir), run_id]
    if signer is not None:
        command.append(signer.verifier.text)
    try:
        done = subprocess.run(command, capture_output=True, timeout=INCLUSION_SECONDS, check=False)
        answer = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        return {"inclusion": f"not checked: proving took longer than {INCLUSION_SECONDS} s"}
    except (OSError, ValueError) as exc:
        return {"inclusion": f"not checked: {type(exc).__name__}"}
    return answer if isinstance(answer, dict) else {"inclusion": "not checked"}


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise tornado.web.HTTPError(400, reason="since: use 30m, 24h, 7d or an RFC 3339 time") from None


def routes(sidecar: Sidecar) -> list[Any]:
    args = {"sidecar": sidecar}
    found: list[Any] = [
        (r"/healthz", Health, args),
        (r"/readyz", Ready, args),
        (r"/metrics", MetricsPage, args),
        (r"/api/whoami", WhoAmI, args),
        (r"/api/approvals", Approvals, args),
        (r"/api/approvals/([0-9a-fA-F-]{1,64})/(approve|deny)", Decide, args),
        (r"/api/reload", Reload, args),
        (r"/api/receipts", ReceiptList, args),
        (r"/api/receipts/([0-9a-fA-F-]{1,64})", ReceiptOne, args),
    ]
    try:
        console = importlib.import_module("enact_proxy.admin.console")
    except ImportError:  # the console is optional; the API is not
        return found
    return [*console.routes(sidecar), *found]


class AdminServer:
    """Serves the admin listener on a thread of its own until :meth:`stop`."""

    def __init__(self, sidecar: Sidecar, host: str, port: int):
        self.sidecar = sidecar
        self._sockets = tornado.netutil.bind_sockets(port, address=host)
        bound = self._sockets[0].getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="enact-admin", daemon=True)
        self._ready = threading.Event()

    def start(self) -> AdminServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = tornado.web.Application(routes(self.sidecar), autoreload=False, debug=False, compress_response=True,
                                      xheaders=False)
        server = tornado.httpserver.HTTPServer(app, max_body_size=64 * 1024)
        server.add_sockets(self._sockets)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.stop()
            loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
