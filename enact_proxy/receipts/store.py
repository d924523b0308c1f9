"""The receipt writer: durable, chained, and fast enough to sit on every request.

Durability is batched through a journal (group commit): a writer thread chains and signs every
pending record of a batch, appends them to ``.journal`` and fsyncs it once; only then is a record
durable. A file thread then writes the receipt files atomically (temp file, rename) and HEAD, so the
writer never waits on them. Every checkpoint the writer seals the journal (renames it
``.journal.<n>``, starts a fresh one holding the still-open intents); the file thread makes the files
written so far durable together (``syncfs``, or fsync per file where that is unavailable) and only
then deletes the sealed segment. A restart replays every segment, so every acknowledged record
becomes its file.

A PASS is opened as an *intent* (durable before the action is forwarded) and closed with what was
done; an intent never closed becomes a receipt whose outcome is unknown (on restart at the latest).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enact_proxy.receipts.signing import ReceiptKey, canonical_bytes, receipt_hash

JOURNAL = ".journal"
HEAD = "HEAD"
UNKNOWN_OUTCOME = {"outcome": "unknown"}
MAX_FILE_BACKLOG = 1024  # receipts journalled but not yet written as files


class ReceiptError(Exception):
    """A receipt could not be made durable: the action it describes must not run."""


@dataclass
class Op:
    kind: str  # "intent" | "final"
    record: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)


@dataclass
class _FileWork:
    """Committed finals whose files are to be written, and the chain tip (run_id, hash, count) after them."""

    finals: list[tuple[dict[str, Any], bytes, Future[Any]]]
    head: tuple[str | None, str | None, int]


class StoreFront:
    """The API front doors use; a store supplies ``_submit`` (in-process threads, or a writer process)."""

    def open_intent(self, draft: dict[str, Any]) -> Future[Ticket]:
        """Make ``draft`` durable as an intent; the future's ticket closes it later."""
        record = {**draft, "actions_taken": [_unknown_action(draft)]}
        inner = self._submit("intent", record)
        outer: Future[Ticket] = Future()

        def done(f: Future[Any]) -> None:
            exc = f.exception()
            if exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(Ticket(self, draft))

        inner.add_done_callback(done)
        return outer

    def write(self, record: dict[str, Any]) -> Future[dict[str, Any]]:
        """Chain, sign and durably write a finished record; the future holds the signed receipt
        once its file exists."""
        return self._submit("final", record)

    def _submit(self, kind: str, record: dict[str, Any]) -> Future[Any]:
        raise NotImplementedError

    def start(self) -> StoreFront:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Ticket:
    """An opened (durable) intent; close it exactly once with what was done."""

    def __init__(self, store: StoreFront, draft: dict[str, Any]):
        self._store = store
        self.draft = draft
        self.run_id: str = draft["run_id"]
        self._closed = False

    def close(self, actions_taken: list[dict[str, Any]]) -> Future[dict[str, Any]]:
        if self._closed:
            raise RuntimeError(f"receipt {self.run_id} already closed")
        self._closed = True
        return self._store._submit("final", {**self.draft, "actions_taken": actions_taken})


def receipt_path(directory: Path, record: dict[str, Any]) -> Path:
    day = str(record.get("timestamp", ""))[:10] or "undated"
    return directory / day / f"{record['run_id']}.json"


def _load_syncfs() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


class ReceiptStore(StoreFront):
    def __init__(self, directory: Path | str, key: ReceiptKey, *, checkpoint_seconds: float = 0.5):
        self.directory = Path(directory)
        self.key = key
        self.checkpoint_seconds = checkpoint_seconds
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._files: queue.SimpleQueue[_FileWork | Path | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._filer: threading.Thread | None = None
        self._journal: Any = None
        self._open_intents: dict[str, dict[str, Any]] = {}
        self._folders: set[Path] = set()
        self._written: list[Path] = []  # files since the last sync (only where syncfs is missing)
        self._backlog = threading.BoundedSemaphore(MAX_FILE_BACKLOG)
        self._segment = 0
        self._dirty = False
        self._last_seal = time.monotonic()
        self._failed: BaseException | None = None
        self.tip_hash: str | None = None
        self.tip_run_id: str | None = None
        self.count = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ReceiptStore:
        self.open_inline()
        self._filer = threading.Thread(target=self._file_loop, name="enact-receipt-files", daemon=True)
        self._filer.start()
        self._thread = threading.Thread(target=self._run, name="enact-receipts", daemon=True)
        self._thread.start()
        return self

    # -- inline: the same store driven by one caller thread (the writer process) -------------
    def open_inline(self) -> None:
        """Recover what is on disk and open the journal (``start`` does this, then starts its threads)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._journal = open(self.directory / JOURNAL, "ab")  # noqa: SIM115 - held open for appends

    def commit_inline(self, batch: list[Op]) -> None:
        """Journal ``batch`` (one fsync) and answer its intents; ``files_inline`` answers its finals."""
        if self._failed is not None:
            for op in batch:
                op.future.set_exception(ReceiptError(f"receipt store is not running: {self._failed}"))
        elif batch:
            self._commit(batch)

    def files_inline(self) -> None:
        self._maybe_seal()
        self._file_round(self._take_files(block=False))

    def close_inline(self) -> None:
        with contextlib.suppress(OSError):
            self._seal()
        self._file_round(self._take_files(block=False))
        self._journal.close()
        self._journal = None

    def close(self) -> None:
        """Flush every queued record, sync every file and leave only the open intents journalled."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        with contextlib.suppress(OSError):
            self._seal()
        self._files.put(None)
        if self._filer is not None:
            self._filer.join()
            self._filer = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> ReceiptStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, kind: str, record: dict[str, Any]) -> Future[Any]:
        op = Op(kind, record)
        if self._thread is None or self._failed is not None:
            op.future.set_exception(ReceiptError(f"receipt store is not running: {self._failed or 'stopped'}"))
        else:
            self._queue.put(op)
        return op.future

    # -- the writer thread: chain, sign, journal --------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.checkpoint_seconds)
            except queue.Empty:
                self._maybe_seal()
                continue
            batch: list[Op] = []
            for op in self._drain(first):
                if op is None:
                    stopping = True
                else:
                    batch.append(op)
            if batch:
                self._commit(batch)
            self._maybe_seal()

    def _drain(self, first: Op | None) -> list[Op | None]:
        ops = [first]
        while len(ops) < MAX_FILE_BACKLOG:  # a batch never needs more backlog than exists
            try:
                ops.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return ops

    def _commit(self, batch: list[Op]) -> None:
        lines: list[bytes] = []
        finals: list[tuple[dict[str, Any], bytes, Future[Any]]] = []
        saved = (self.tip_hash, self.tip_run_id, self.count)
        for op in batch:
            if op.kind == "intent":
                lines.append(canonical_bytes({"t": "intent", "receipt": op.record}))
            else:
                signed, body = self._chain(op.record)
                # canonical_bytes({"n": ..., "receipt": ..., "t": "final"}) without serialising twice
                lines.append(b'{"n":%d,"receipt":%s,"t":"final"}' % (self.count, body))
                finals.append((signed, body, op.future))
        try:
            self._journal.write(b"\n".join(lines) + b"\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as exc:
            self.tip_hash, self.tip_run_id, self.count = saved
            error = ReceiptError(f"receipt journal write failed: {exc}")
            for op in batch:
                op.future.set_exception(error)
            return
        # Durable now. An intent is answered at once (its pass is waiting to be forwarded); a final
        # is answered by the file thread once its receipt file exists.
        self._dirty = True
        for op in batch:
            if op.kind == "intent":
                self._open_intents[op.record["run_id"]] = op.record
                op.future.set_result(op.record)
            else:
                self._open_intents.pop(op.record["run_id"], None)
        if finals:
            for _ in finals:  # bounded: a file thread that falls behind slows the writer, not memory
                self._backlog.acquire()
            self._files.put(_FileWork(finals, (self.tip_run_id, self.tip_hash, self.count)))

    def _chain(self, record: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Link ``record`` to the tip and sign it; returns it with its canonical bytes."""
        unsigned = {k: v for k, v in record.items() if k != "signature"}
        unsigned["prev_hash"] = self.tip_hash
        signed, body = self.key.signed_with_bytes(unsigned)
        self.tip_hash = hashlib.sha256(body).hexdigest()
        self.tip_run_id = signed["run_id"]
        self.count += 1
        return signed, body

    def _maybe_seal(self) -> None:
        if self._dirty and time.monotonic() - self._last_seal >= self.checkpoint_seconds:
            try:
                self._seal()
            except OSError as exc:
                self._failed = ReceiptError(f"receipt checkpoint failed: {exc}")

    def _seal(self) -> None:
        """Start a fresh journal (holding the still-open intents) and hand the sealed one to the
        file thread, which deletes it once every file it covers is durable."""
        self._segment += 1
        sealed = self.directory / f"{JOURNAL}.{self._segment}"
        self._journal.close()
        os.replace(self.directory / JOURNAL, sealed)
        lines = b"".join(
            canonical_bytes({"t": "intent", "receipt": r}) + b"\n" for r in self._open_intents.values()
        )
        self._journal = open(self.directory / JOURNAL, "ab")  # noqa: SIM115
        if lines:
            self._journal.write(lines)
            self._journal.flush()
            os.fsync(self._journal.fileno())
        self._files.put(sealed)
        self._dirty = False
        self._last_seal = time.monotonic()

    # -- the file thread: receipt files, HEAD, checkpoints ----------------------------------
    def _file_loop(self) -> None:
        while self._file_round(self._take_files(block=True)):
            pass

    def _take_files(self, *, block: bool) -> list[_FileWork | Path | None]:
        """Everything waiting for the file thread: one HEAD per round, not one per writer batch."""
        pending: list[_FileWork | Path | None] = [self._files.get()] if block else []
        while True:
            try:
                pending.append(self._files.get_nowait())
            except queue.Empty:
                return pending

    def _file_round(self, pending: list[_FileWork | Path | None]) -> bool:
        """Write the files and checkpoints of ``pending``; False once the stop marker is among them."""
        going = True
        work: list[_FileWork] = []
        for item in pending:
            if item is None:
                going = False
            elif isinstance(item, _FileWork):
                work.append(item)
            else:
                self._write_files(work)
                work = []
                self._checkpoint(item)
        self._write_files(work)
        return going

    def _checkpoint(self, sealed: Path) -> None:
        try:
            self._sync_files(self._written)
            self._written = []
            sealed.unlink()
        except OSError as exc:
            # The sealed segment stays: a restart replays it. New writes must not pretend otherwise.
            self._failed = ReceiptError(f"receipt checkpoint failed: {exc}")

    def _write_files(self, work: list[_FileWork]) -> None:
        if not work:
            return
        finals = [final for item in work for final in item.finals]
        try:
            for signed, body, _ in finals:
                path = self._write_file(signed, body)
                if _SYNCFS is None:
                    self._written.append(path)
            self._write_head(*work[-1].head)
        except OSError as exc:
            # Everything acknowledged is in the journal, which stays: a restart writes the files.
            self._failed = ReceiptError(f"receipt file write failed: {exc}")
        for signed, _, future in finals:
            if self._failed is None:
                future.set_result(signed)
            elif not future.done():
                future.set_exception(self._failed)
        self._backlog.release(len(finals))

    def _write_file(self, signed: dict[str, Any], body: bytes | None = None) -> Path:
        """The file holds the canonical bytes: what was hashed is what is on disk."""
        path = receipt_path(self.directory, signed)
        if path.parent not in self._folders:
            path.parent.mkdir(exist_ok=True)
            self._folders.add(path.parent)
        _atomic_write(path, (body if body is not None else canonical_bytes(signed)) + b"\n")
        return path

    def _write_head(self, run_id: str | None, digest: str | None, count: int) -> None:
        head = self.key.signed({"run_id": run_id, "hash": digest, "count": count})
        _atomic_write(self.directory / HEAD, canonical_bytes(head) + b"\n")

    def _sync_files(self, files: list[Path]) -> None:
        if _SYNCFS is not None:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
        for path in {*files, self.directory / HEAD}:
            with contextlib.suppress(FileNotFoundError):
                _fsync_path(path)
        for folder in {p.parent for p in files} | {self.directory}:
            _fsync_path(folder)

    # -- recovery ----------------------------------------------------------------------------
    def _recover(self) -> None:
        """Continue the chain found on disk and turn every journalled record into its file."""
        segments = sorted(self.directory.glob(f"{JOURNAL}.*"), key=lambda p: int(p.suffix[1:] or 0))
        finals, intents = _read_journal([*segments, self.directory / JOURNAL])
        head = self._read_head()
        if head is not None:
            self.tip_run_id, self.tip_hash, self.count = head["run_id"], head["hash"], head["count"]
        elif any(self.directory.rglob("*.json")):
            self._adopt_tip_by_scan()
        for n, signed in finals:
            path = receipt_path(self.directory, signed)
            if not path.exists():
                self._write_file(signed)
            if n > self.count:
                self.tip_hash, self.tip_run_id, self.count = receipt_hash(signed), signed["run_id"], n
        closed = {signed["run_id"] for _, signed in finals}
        for run_id, draft in intents.items():
            if run_id not in closed:
                self._write_file(*self._chain({**draft, "actions_taken": [_unknown_action(draft)]}))
        if self.count:
            self._write_head(self.tip_run_id, self.tip_hash, self.count)
        self._sync_files([])
        _atomic_write(self.directory / JOURNAL, b"")
        for segment in segments:
            segment.unlink()

    def _read_head(self) -> dict[str, Any] | None:
        path = self.directory / HEAD
        try:
            head = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or not self.key.verify(head):
            return None
        return head

    def _adopt_tip_by_scan(self) -> None:
        records = []
        for path in self.directory.rglob("*.json"):
            try:
                records.append(json.loads(path.read_bytes()))
            except (OSError, ValueError):
                continue
        referenced = {r.get("prev_hash") for r in records}
        tips = [r for r in records if receipt_hash(r) not in referenced]
        if tips:
            tip = max(tips, key=lambda r: str(r.get("timestamp")))
            self.tip_hash, self.tip_run_id, self.count = receipt_hash(tip), tip["run_id"], len(records)


def _unknown_action(draft: dict[str, Any]) -> dict[str, Any]:
    return {"action": draft.get("action"), "system": draft.get("system"), "success": None,
            "output": dict(UNKNOWN_OUTCOME)}


def _read_journal(paths: list[Path]) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, dict[str, Any]]]:
    finals: list[tuple[int, dict[str, Any]]] = []
    intents: dict[str, dict[str, Any]] = {}
    raw = b""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            raw += path.read_bytes() + b"\n"
    for line in raw.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line was never acknowledged
        if not isinstance(entry, dict) or not isinstance(entry.get("receipt"), dict):
            continue
        if entry.get("t") == "final":
            finals.append((int(entry.get("n", 0)), entry["receipt"]))
        elif entry.get("t") == "intent":
            intents[entry["receipt"]["run_id"]] = entry["receipt"]
    return finals, intents


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
