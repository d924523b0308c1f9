"""Faults around the receipt log: a full disk, a second writer on one folder, hostile segment bytes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.receipts.segments import Segment, Torn, iter_lines
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import ReceiptError, ReceiptStore, WriterBusy
from enact_proxy.receipts.verify import verify_log
from tests.conftest import draft, independent_verify, spec_lines


def _wait(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs of its own (needs root; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("kind", [ReceiptStore, ProcessReceiptStore], ids=["threads", "process"])
def test_a_full_disk_refuses_with_the_reason_keeps_answering_and_resumes_by_itself(
        kind, small_disk: Path, tmp_path: Path, receipt_key: ReceiptKey) -> None:
    receipts = small_disk / "receipts"
    store = kind(receipts, receipt_key, certs_dir=tmp_path / "certs").start()
    try:
        before = store.write(draft(0)).result(timeout=10)
        ticket = store.open_intent(draft(1)).result(timeout=10)  # durable: its action may run
        filler = _fill(small_disk)
        big = {"blob": "x" * 9000}  # more than the free part of the segment's last page
        with pytest.raises(ReceiptError, match="No space left on device"):
            store.open_intent(draft(2, payload=big)).result(timeout=10)  # no receipt, no action
        with pytest.raises(ReceiptError, match="No space left on device"):
            ticket.close([{"action": "x", "system": "hubspot", "success": True, "output": big}]).result(timeout=10)
        _wait(lambda: store.unwritable is not None, "the unwritable flag")
        assert "No space left on device" in (store.unwritable or "")
        for n in range(3):  # it keeps answering, every time with the reason
            with pytest.raises(ReceiptError, match="No space left"):
                store.write(draft(10 + n, payload=big)).result(timeout=10)
        # No partial line was left behind by any failed round.
        assert all(p.read_bytes().endswith(b"\n") for p in receipts.glob("*/*.jsonl"))
        filler.unlink()
        _wait(lambda: store.unwritable is None, "the store to notice the space by itself")
        after = store.write(draft(20)).result(timeout=10)
    finally:
        store.close()
    records = spec_lines(receipts)
    assert after.seq == len(records) - 1
    kinds = [(r.split(b'"kind":"')[1][:6], r) for r in records]
    assert [k for k, _ in kinds] == [b"receip", b"intent", b"receip", b"receip"]  # the kept receipt first
    assert before.seq == 0
    pub = (tmp_path / "certs" / "receipt-log.pub").read_text()
    assert independent_verify(receipts, receipt_key.secret, pub) == []


def test_a_library_client_on_a_running_sidecars_folder_refuses_to_start(tmp_path: Path) -> None:
    from enact_proxy import EnactClient
    from tests.e2e.harness import start_sidecar, write_config

    write_config(tmp_path, systems={}, workflows={}, policies=[])
    sidecar = start_sidecar(tmp_path)
    try:
        with pytest.raises(WriterBusy, match="another receipt writer .* one writer per receipts folder"):
            EnactClient(systems={}, receipts_dir=tmp_path / "receipts", certs_dir=tmp_path / "certs")
    finally:
        assert sidecar.stop() == 0
    with EnactClient(systems={}, receipts_dir=tmp_path / "receipts", certs_dir=tmp_path / "certs"):
        pass  # free once the sidecar has stopped


def test_a_sidecar_on_a_library_clients_folder_refuses_to_start(tmp_path: Path) -> None:
    from enact_proxy import EnactClient
    from tests.e2e.harness import start_sidecar, write_config

    write_config(tmp_path, systems={}, workflows={}, policies=[])
    with EnactClient(systems={}, receipts_dir=tmp_path / "receipts", certs_dir=tmp_path / "certs"), \
            pytest.raises(RuntimeError, match=r"cannot start: another receipt writer \(pid \d+\)"):
        sidecar = start_sidecar(tmp_path, timeout=30)
        sidecar.stop()


# -- the line reader against arbitrary bytes ------------------------------------------------------
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=8),
       tail=st.binary(max_size=16).filter(lambda b: b"\n" not in b))
def test_the_line_reader_splits_any_bytes_into_complete_lines_and_one_torn_tail(tmp_path_factory, chunks, tail):
    folder = tmp_path_factory.mktemp("seg") / "2024-01-01"
    folder.mkdir()
    path = folder / "000000000000.jsonl"
    body = b"".join(c.replace(b"\n", b"") + b"\n" for c in chunks)
    path.write_bytes(body + tail)
    torn: list[Torn] = []
    lines = list(iter_lines([Segment(0, path)], torn))
    assert [line.data for line in lines] == [c.replace(b"\n", b"") for c in chunks]
    assert all(body[line.offset:line.offset + len(line.data)] == line.data for line in lines)
    assert [t.data for t in torn] == ([tail] if tail else [])


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(garbage=st.binary(max_size=300))
def test_verify_names_garbage_lines_and_never_crashes(tmp_path_factory, garbage, receipt_key):
    root = tmp_path_factory.mktemp("log")
    with ReceiptStore(root / "receipts", receipt_key) as store:
        store.write(draft(0)).result(timeout=10)
    (segment,) = (root / "receipts").glob("*/*.jsonl")
    segment.write_bytes(segment.read_bytes() + garbage.replace(b"\n", b" ") + b"\n")
    report = verify_log(root / "receipts", receipt_key, None, live=False)
    assert not report.ok  # a line the writer never wrote is always named
