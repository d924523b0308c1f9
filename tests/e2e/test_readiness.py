"""End to end: /healthz, /readyz and enact_receipts_unwritable follow the sidecar's real state (SPEC §8).

A full disk under the receipts makes every action refused with the reason while the sidecar keeps
answering; /readyz and the metric say so within 2 s, and say so again within 2 s once space returns.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import RunningSidecar, agent_session

CONTACT = "https://api.hubapi.com/crm/v3/objects/contacts/1001"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _within(seconds: float, predicate: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s")


class Probe:
    def __init__(self, sidecar: RunningSidecar):
        self.base = f"http://{sidecar.admin}"
        self.token = (sidecar.directory / "certs" / "admin.token").read_text().strip()
        self.http = requests.Session()
        self.http.trust_env = False

    def ready(self) -> requests.Response:
        return self.http.get(self.base + "/readyz", timeout=5)

    def healthy(self) -> bool:
        return self.http.get(self.base + "/healthz", timeout=5).status_code == 200

    def unwritable(self) -> float:
        text = self.http.get(self.base + "/metrics", headers={"Authorization": f"Bearer {self.token}"}, timeout=5).text
        line = next(line for line in text.splitlines() if line.startswith("enact_receipts_unwritable "))
        return float(line.split()[1])


def test_a_full_disk_flips_readyz_and_the_metric_both_ways_within_2_seconds(sidecar_factory, hubspot, small_disk):
    hubspot.add_contact("jane@acme.com")
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, policies=[],
                              workflows={"crm": ["hubspot.get_contact"]}, receipts_dir=str(small_disk / "receipts"),
                              state={"url": f"sqlite:///{small_disk.parent}/state.sqlite"})
    probe, agent = Probe(sidecar), _agent(sidecar)
    assert agent.get(CONTACT, timeout=30).status_code == 200
    assert probe.ready().status_code == 200 and probe.unwritable() == 0.0
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    refused = None
    for _ in range(50):  # the segment's last page may still take a record or two
        answer = agent.get(CONTACT, timeout=30)
        if answer.status_code == 403:
            refused = answer
            break
    assert refused is not None and "receipt could not be written" in refused.json()["message"]
    assert "No space left on device" in refused.json()["message"]
    _within(2.0, lambda: probe.ready().status_code == 503 and probe.unwritable() == 1.0, "readyz turning 503")
    assert probe.healthy()  # still serving
    assert "receipts cannot be written" in probe.ready().json()["problems"]
    filler.unlink()
    _within(2.5, lambda: probe.ready().status_code == 200 and probe.unwritable() == 0.0, "readyz turning 200")
    assert agent.get(CONTACT, timeout=30).status_code == 200


def test_readyz_names_an_unreachable_state_store(sidecar_factory, hubspot):
    sidecar = sidecar_factory(systems={"hubspot": {"upstream": hubspot.url}}, policies=[],
                              workflows={"crm": ["hubspot.get_contact"]},
                              state={"url": "postgresql://enact@127.0.0.1:1/enact", "timeout_seconds": 1})
    probe = Probe(sidecar)
    ready = probe.ready()
    assert ready.status_code == 503
    assert any("state store postgresql://enact@127.0.0.1:1/enact" in p for p in ready.json()["problems"])
    assert probe.healthy()


def _agent(sidecar: RunningSidecar) -> requests.Session:
    return agent_session(sidecar, "Bearer agent")
