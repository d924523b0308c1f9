"""No receipt, no action — and no action without its receipt, even across a crash (SPEC §6)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.verify import verify_directory
from tests.e2e.harness import start_sidecar, write_config


class _Stalling(BaseHTTPRequestHandler):
    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        _Stalling.arrived.set()
        _Stalling.release.wait(30)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stalling_upstream() -> Iterator[str]:
    _Stalling.arrived.clear()
    _Stalling.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Stalling.release.set()
    server.shutdown()
    server.server_close()


def test_a_crash_mid_request_still_ends_in_one_receipt_with_unknown_outcome(tmp_path: Path,
                                                                            stalling_upstream: str) -> None:
    write_config(tmp_path, systems={"github": {"upstream": stalling_upstream, "git_upstream": stalling_upstream}},
                 workflows={"reads": ["github.read"]}, policies=[])
    sidecar = start_sidecar(tmp_path)
    env = sidecar.agent_env()

    def agent() -> None:
        with contextlib.suppress(requests.RequestException):  # the sidecar dies under it
            requests.get("https://api.github.com/repos/acme/app", timeout=30,
                         proxies={"https": env["HTTPS_PROXY"]}, verify=env["REQUESTS_CA_BUNDLE"])

    caller = threading.Thread(target=agent)
    caller.start()
    assert _Stalling.arrived.wait(20), "the passed request never reached the upstream"
    # The PASS was durable before forwarding, but the response never came back: crash now.
    sidecar.process.send_signal(signal.SIGKILL)
    sidecar.process.wait()
    caller.join(30)
    assert list(sidecar.receipts_dir.rglob("*.json")) == []  # only the journal knows so far

    restarted = start_sidecar(tmp_path)
    assert restarted.stop() == 0
    receipts = restarted.receipts()
    assert len(receipts) == 1
    (receipt,) = receipts
    assert receipt["decision"] == "PASS"
    assert receipt["action"] == "github.read"
    assert receipt["actions_taken"] == [{"action": "github.read", "system": "github", "success": None,
                                         "output": {"outcome": "unknown"}}]
    key = ReceiptKey.load(tmp_path / "certs", create=False)
    assert verify_directory(sidecar.receipts_dir, key).ok


def test_sigterm_flushes_every_receipt_and_exits_zero(tmp_path: Path, stalling_upstream: str) -> None:
    write_config(tmp_path, systems={"github": {"upstream": stalling_upstream, "git_upstream": stalling_upstream}},
                 workflows={"reads": ["github.read"]}, policies=[])
    _Stalling.release.set()
    sidecar = start_sidecar(tmp_path)
    env = sidecar.agent_env()
    for _ in range(20):
        response = requests.get("https://api.github.com/repos/acme/app", timeout=30,
                                proxies={"https": env["HTTPS_PROXY"]}, verify=env["REQUESTS_CA_BUNDLE"])
        assert response.headers["X-Enact-Decision"] == "PASS"
    assert sidecar.stop() == 0
    receipts = sidecar.receipts()
    assert len(receipts) == 20
    assert all(r["actions_taken"][0]["success"] is True for r in receipts)
    assert (sidecar.receipts_dir / ".journal").read_bytes() == b""
    assert verify_directory(sidecar.receipts_dir, ReceiptKey.load(tmp_path / "certs", create=False)).ok
