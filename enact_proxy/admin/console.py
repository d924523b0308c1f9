"""The console: a web page on the admin listener to review receipts and decide approvals (SPEC §8).

Design: the pages are server-rendered shells (Jinja2, autoescape on) that hold no data at all, so they
load without a token. The person signs in with a token typed into the page; it is kept in
``sessionStorage`` (gone when the tab closes) and every data request is a ``fetch`` to ``/api/...``
with ``Authorization: Bearer``. Why this rather than server-rendered data behind a cookie: the API
stays the only door to data (one authentication path, one set of tests), there is no cookie for a
cross-site request to ride on (approve/deny are JSON POSTs with a bearer header, which no other site's
page can send), and the proxy process does no HTML rendering per poll.

The script builds the DOM with ``textContent`` only (never ``innerHTML`` with data): payloads, branch
names, actions and reasons are written by agents. The listener's Content-Security-Policy allows only
scripts and styles from this origin; the templates carry no inline script or style.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import tornado.web

from enact_proxy.admin.server import SECURITY_HEADERS

if TYPE_CHECKING:
    from enact_proxy.sidecar import Sidecar

HERE = Path(__file__).parent
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("enact-proxy")
    except Exception:  # noqa: BLE001 - only shown in the footer and used to bust the static cache
        return "dev"


VERSION = _version()


class _Page(tornado.web.RequestHandler):
    """A page shell: no data, no token needed."""

    template = ""

    def initialize(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def render_page(self, **context: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(TEMPLATES.get_template(self.template).render(version=VERSION, **context))


class ConsolePage(_Page):
    template = "console.html"

    def get(self) -> None:
        self.render_page(page="console")


class ReceiptPage(_Page):
    template = "receipt.html"

    def get(self, run_id: str) -> None:
        self.render_page(page="receipt", run_id=run_id)


class Static(tornado.web.StaticFileHandler):
    """The console's own script and stylesheet, with the listener's security headers."""

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)


def routes(sidecar: Sidecar) -> list[Any]:
    args = {"sidecar": sidecar}
    return [
        (r"/", ConsolePage, args),
        (r"/receipts/([0-9a-fA-F-]{1,64})", ReceiptPage, args),
        (r"/static/(console\.(?:js|css))", Static, {"path": str(HERE / "static")}),
    ]
