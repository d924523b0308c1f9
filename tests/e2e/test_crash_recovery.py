"""No receipt, no action — and no action without its receipt, even across a crash (SPEC §6)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from enact_proxy.receipts import ReceiptStore
from enact_proxy.receipts.checkpoint import load_verifier
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import is_live
from enact_proxy.receipts.verify import verify_log
from tests.conftest import independent_verify, spec_records
from tests.e2e.harness import RunningSidecar, start_sidecar, wait_until, write_config


def _verified(directory: Path, receipts: Path) -> None:
    certs = directory / "certs"
    key = ReceiptKey.load(certs, create=False)
    report = verify_log(receipts, key, load_verifier(certs / "receipt-log.pub"))
    assert report.ok, report.problems
    assert independent_verify(receipts, key.secret, (certs / "receipt-log.pub").read_text()) == []


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
    intents = [r for r in sidecar.records() if r["kind"] == "intent"]
    assert len(intents) == 1 and "actions_taken" not in intents[0]  # durable before it was forwarded

    restarted = start_sidecar(tmp_path)
    assert restarted.stop() == 0
    receipts = restarted.receipts()
    assert len(receipts) == 1
    (receipt,) = receipts
    assert receipt["run_id"] == intents[0]["run_id"] and receipt["seq"] > intents[0]["seq"]
    assert receipt["decision"] == "PASS"
    assert receipt["action"] == "github.read"
    assert receipt["actions_taken"] == [{"action": "github.read", "system": "github", "success": None,
                                         "output": {"outcome": "unknown"}}]
    _verified(tmp_path, sidecar.receipts_dir)


def test_a_torn_last_line_is_cut_off_at_restart_and_the_log_goes_on(tmp_path: Path, stalling_upstream: str) -> None:
    write_config(tmp_path, systems={"github": {"upstream": stalling_upstream, "git_upstream": stalling_upstream}},
                 workflows={"reads": ["github.read"]}, policies=[])
    _Stalling.release.set()
    sidecar = start_sidecar(tmp_path)

    def read(running: RunningSidecar) -> requests.Response:
        env = running.agent_env()
        return requests.get("https://api.github.com/repos/acme/app", timeout=30,
                            proxies={"https": env["HTTPS_PROXY"]}, verify=env["REQUESTS_CA_BUNDLE"])

    assert read(sidecar).headers["X-Enact-Decision"] == "PASS"
    sidecar.process.send_signal(signal.SIGKILL)  # no clean stop
    sidecar.process.wait()
    # The writer child drains what its fronts still send (with listen.workers, the other fronts stop
    # on their own once the main process is gone) and then lets go of the folder: only then is the
    # log the crash's to tear.
    wait_until(lambda: not is_live(sidecar.receipts_dir), what="the old writer to let go of the log", timeout=60)
    (segment,) = sorted(sidecar.receipts_dir.glob("*/*.jsonl"))
    before = segment.read_bytes()
    segment.write_bytes(before + b'{"kind":"receipt","seq":')  # a write the crash cut short
    restarted = start_sidecar(tmp_path)
    assert read(restarted).headers["X-Enact-Decision"] == "PASS"
    assert restarted.stop() == 0
    after = segment.read_bytes()
    assert after.startswith(before) and after.endswith(b"\n") and b'"seq":{' not in after
    assert [r["kind"] for r in restarted.records()] == ["intent", "receipt", "intent", "receipt"]
    _verified(tmp_path, sidecar.receipts_dir)


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
    # A clean stop leaves a checkpoint of every record: HEAD covers the whole log.
    records = sidecar.records()
    assert len(records) == 40
    assert (sidecar.receipts_dir / "HEAD").read_text().split("\n")[1] == "40"
    _verified(tmp_path, sidecar.receipts_dir)


WRITER = """
import sys
from pathlib import Path
from enact_proxy.receipts import ReceiptKey, ReceiptStore
from tests.conftest import draft

store = ReceiptStore(Path(sys.argv[1]), ReceiptKey(b"crash-key"), segment_bytes=20_000).start()
futures = []
n = 0
while True:  # until killed: keep many records in flight, print each one acknowledged
    futures += [store.write(draft(n + i, payload={"blob": "x" * 300})) for i in range(50)]
    n += 50
    while len(futures) > 100:
        print(futures.pop(0).result().run_id, flush=True)
"""


def test_kill_9_mid_write_loses_nothing_acknowledged_and_the_log_verifies(tmp_path: Path) -> None:
    receipts = tmp_path / "receipts"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(receipts)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert writer.stdout is not None
    acknowledged = []
    for line in writer.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) >= 3000:
            break
    writer.send_signal(signal.SIGKILL)  # mid-write: records are in flight
    writer.wait()
    acknowledged += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
    key = ReceiptKey(b"crash-key")
    with ReceiptStore(receipts, key):  # the restart: cuts a torn line, checkpoints
        pass
    on_disk = {r["run_id"] for r in spec_records(receipts) if r["kind"] == "receipt"}
    assert set(acknowledged) <= on_disk
    assert independent_verify(receipts, key.secret, (tmp_path / "certs" / "receipt-log.pub").read_text()) == []
