"""The console's pages on the admin listener (enact_proxy/admin/console.py), with tornado's test client.

The pages load without a token and hold no data; they carry the strict CSP and no inline script or
style; the API behind them still answers 401 without a token. The browser side is tests/e2e/test_console.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import tornado.testing
import tornado.web

from enact_proxy.admin import AdminTokens
from enact_proxy.admin import console as console_module
from enact_proxy.admin.server import routes

TEMPLATES = Path(console_module.__file__).parent / "templates"
TOKEN = "t" * 32


def fake_sidecar(tmp: Path) -> SimpleNamespace:
    return SimpleNamespace(admin_tokens=AdminTokens({"alice": TOKEN}), config=SimpleNamespace(receipts_dir=tmp),
                           state=SimpleNamespace(list_approvals=lambda status, now: []))


class ConsolePagesTest(tornado.testing.AsyncHTTPTestCase):
    def get_app(self) -> tornado.web.Application:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        return tornado.web.Application(routes(fake_sidecar(Path(self._tmp.name))))  # type: ignore[arg-type]

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def test_the_console_page_loads_without_a_token_with_the_strict_headers(self) -> None:
        answer = self.fetch("/")
        assert answer.code == 200
        assert answer.headers["Content-Type"].startswith("text/html")
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["Cache-Control"] == "no-store"
        html = answer.body.decode()
        assert 'id="signin"' in html and 'src="/static/console.js?v=' in html

    def test_the_receipt_page_only_takes_a_run_id_and_escapes_what_it_echoes(self) -> None:
        run_id = "0b0e7f7e-3c1a-4a43-9d55-3f1f3f6f0a11"
        answer = self.fetch(f"/receipts/{run_id}")
        assert answer.code == 200 and f'data-run-id="{run_id}"' in answer.body.decode()
        assert self.fetch("/receipts/%22%3E%3Cscript%3E").code == 404  # not a run id: no page at all

    def test_the_script_and_stylesheet_are_served_with_the_same_headers(self) -> None:
        for path, kind in (("/static/console.js", "javascript"), ("/static/console.css", "text/css")):
            answer = self.fetch(path)
            assert answer.code == 200 and kind in answer.headers["Content-Type"]
            assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert self.fetch("/static/../console.py").code == 404
        assert self.fetch("/static/other.js").code == 404

    def test_whoami_names_the_token_and_needs_it(self) -> None:
        answer = self.fetch("/api/whoami", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.code == 200 and answer.body == b'{"name": "alice"}'
        assert self.fetch("/api/whoami").code == 401

    def test_the_api_behind_the_pages_still_needs_the_token(self) -> None:
        for path in ("/api/whoami", "/api/approvals", "/api/receipts"):
            assert self.fetch(path).code == 401
            assert self.fetch(path, headers={"Authorization": "Bearer wrong"}).code == 401
            assert self.fetch(path, headers={"Authorization": f"Bearer {TOKEN}"}).code == 200


def test_templates_hold_no_inline_script_or_style() -> None:
    """The CSP forbids them; keeping them out of the templates keeps the console working under it."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text, re.IGNORECASE), template.name


def test_the_script_never_writes_html() -> None:
    script = (Path(console_module.__file__).parent / "static" / "console.js").read_text()
    script = re.sub(r"^\s*//.*$", "", script, flags=re.MULTILINE)  # comments may name what the code avoids
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
