"""The receipt log writer (SPEC §6): one append-only, signed, Merkle-checkpointed log per folder.

:class:`LogWriter` is the log itself, driven by one thread in rounds (group commit): every record of a
round is numbered, chained to the one before, HMAC-signed and appended to the current segment with one
write and one ``fdatasync``; only then is any of them acknowledged. A round that cannot be written is
cut back off the segment (no partial line stays behind), every record of it is refused with the reason,
and the writer is *unwritable* until a write succeeds again (it probes at least once a second); the
receipt of an already-durable intent is kept and written first once the disk takes it.

Checkpoints (an RFC 6962 root signed as a C2SP note) are written within ``checkpoint_seconds`` of any
new record and at a clean stop. One writer per folder: an exclusive ``flock`` on ``<dir>/.lock``.

On open the writer cuts a torn last line off, continues the chain and the tree after the last record,
and appends a receipt with an unknown outcome for every intent that never got one (a crash), before it
takes any new record. At a clean stop it does the same for intents still open, so a stopped log has
none.

:class:`ReceiptStore` runs a :class:`LogWriter` on a thread (library mode); the sidecar runs it in a
writer process (:mod:`enact_proxy.receipts.process`). Both are a :class:`StoreFront`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enact_proxy.models import ActionResult, Receipt, Signature, built
from enact_proxy.receipts.checkpoint import load_log_signer, sign_checkpoint
from enact_proxy.receipts.merkle import CompactRange, leaf_hash
from enact_proxy.receipts.note import Signer
from enact_proxy.receipts.segments import iter_lines, list_segments, loads
from enact_proxy.receipts.signing import ReceiptKey, canonical_bytes

HEAD = "HEAD"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"
STATE = ".writer-state"  # where the writer stood at its last checkpoint (a cache for a fast restart)
UNKNOWN_OUTCOME = {"outcome": "unknown"}
# The members of a record body (``Receipt.body()``) that hold arbitrary values; every other one is typed.
FREE_FORM = ("payload", "actions_taken", "request", "approval")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
LOCK_WAIT_SECONDS = 1.0  # long enough for a crashed sidecar's writer to finish, short enough to say so
PROBE_SECONDS = 1.0  # while unwritable, a write is retried at least this often
MAX_ROUND = 4096  # records per round at most


class ReceiptError(Exception):
    """A record could not be made durable: the action it describes must not run."""


class WriterBusy(ReceiptError):
    """Another writer holds the folder."""


Answer = tuple[int, str | None, dict[str, str]]  # (seq, prev_hash, signature) of a durable record


class Op:
    """One record to append. Its outcome goes to ``future``, or to ``callback(answer, error)`` where a
    future per record would only cost (the writer process answers through the pipe)."""

    __slots__ = ("body", "callback", "future", "kind", "settled")

    def __init__(self, kind: str, body: dict[str, Any],
                 callback: Callable[[Answer | None, BaseException | None], None] | None = None):
        self.kind = kind  # "intent" | "receipt"
        self.body = body
        self.callback = callback
        self.future: Future[Answer] | None = Future() if callback is None else None
        self.settled: BaseException | None = None

    def done(self) -> bool:
        return self.future.done() if self.future is not None else self.settled is not None

    def resolve(self, answer: Answer) -> None:
        if self.future is not None:
            self.future.set_result(answer)
        elif self.callback is not None:
            self.settled = _DONE
            self.callback(answer, None)

    def fail(self, error: BaseException) -> None:
        if self.future is not None:
            self.future.set_exception(error)
        elif self.callback is not None:
            self.settled = error
            self.callback(None, error)

    def error(self) -> BaseException | None:
        if self.future is not None:
            return self.future.exception() if self.future.done() else None
        return self.settled if self.settled is not _DONE else None


_DONE = ReceiptError("settled")  # marks a callback op answered successfully


def unknown_action(body: dict[str, Any]) -> dict[str, Any]:
    return {"action": body.get("action"), "system": body.get("system"), "success": None,
            "output": dict(UNKNOWN_OUTCOME)}


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


class _Days:
    """``day_of`` for a clock that mostly stays within one UTC day: worked out again only past midnight
    (a round of the writer asks every time; formatting a date each round showed in its profile)."""

    def __init__(self) -> None:
        self._start = self._end = 0.0
        self._day = ""

    def __call__(self, epoch: float) -> str:
        if not self._start <= epoch < self._end:
            # UTC days are 86,400 s of epoch time (no leap seconds); the day is named from its exact start,
            # not from ``epoch`` (which fromtimestamp rounds to the microsecond, across midnight too).
            self._start = epoch - epoch % 86400
            self._end = self._start + 86400
            self._day = day_of(self._start)
        return self._day


# -- the front doors ---------------------------------------------------------------------------
class StoreFront:
    """What the engine uses; a store supplies ``_submit`` (in-process thread, or a writer process)."""

    unwritable: str | None = None  # why records cannot be written right now (None: they can)

    def open_intent(self, draft: Receipt | dict[str, Any]) -> Future[Ticket]:
        """Make the intent of ``draft`` durable; the future's ticket closes it with its receipt."""
        receipt = _as_receipt(draft)
        return self._submit_as("intent", receipt.intent_body(), lambda answer: Ticket(self, receipt, answer[0]))

    def write(self, draft: Receipt | dict[str, Any]) -> Future[Receipt]:
        """Append the receipt of a decision; the future holds it signed, once it is durable."""
        receipt = _as_receipt(draft)
        return self._submit_as("receipt", receipt.body(), lambda answer: _signed(receipt, answer))

    def _submit(self, kind: str, body: dict[str, Any]) -> Future[Answer]:
        """Queue one record; the future holds its (seq, prev_hash, signature) once it is durable."""
        return self._submit_as(kind, body, lambda answer: answer)

    def _submit_as(self, kind: str, body: dict[str, Any], wrap: Callable[[Answer], Any]) -> Future[Any]:
        """Queue one record; the future resolves with ``wrap(answer)`` once it is durable. The stores
        override this (one future per record); a front that only has ``_submit`` gets it chained."""
        inner = self._submit(kind, body)
        outer: Future[Any] = Future()
        inner.add_done_callback(lambda f: settle(outer, wrap, None if f.exception() else f.result(), f.exception()))
        return outer

    def start(self) -> StoreFront:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _as_receipt(draft: Receipt | dict[str, Any]) -> Receipt:
    return draft if isinstance(draft, Receipt) else Receipt.model_validate(draft)


def _signed(receipt: Receipt, answer: Answer) -> Receipt:
    seq, prev_hash, signature = answer
    return built(type(receipt), {**receipt.__dict__, "seq": seq, "prev_hash": prev_hash, "signature": built(
        Signature, {"alg": signature["alg"], "key_id": signature["key_id"], "value": signature["value"]})})


def settle(future: Future[Any], wrap: Callable[[Answer], Any], answer: Answer | None,
           error: BaseException | None) -> None:
    if error is not None:
        future.set_exception(error)
        return
    try:
        future.set_result(wrap(answer))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a record that cannot be handed back fails its caller
        future.set_exception(exc)


class Ticket:
    """A durable intent; close it exactly once with what was done."""

    def __init__(self, store: StoreFront, draft: Receipt, intent_seq: int | None = None):
        self._store = store
        self.draft = draft
        self.run_id: str = draft.run_id
        self.intent_seq = intent_seq
        self._closed = False

    def close(self, actions_taken: Sequence[ActionResult | dict[str, Any]],
              redacted: list[str] | None = None) -> Future[Receipt]:
        if self._closed:
            raise RuntimeError(f"receipt {self.run_id} already closed")
        self._closed = True
        taken = [a if isinstance(a, ActionResult) else ActionResult.model_validate(a) for a in actions_taken]
        update: dict[str, Any] = {"actions_taken": taken}
        if redacted is not None:
            update["redacted"] = redacted
        return self._store.write(built(Receipt, {**self.draft.__dict__, **update}))


# -- the log itself ----------------------------------------------------------------------------
def lock_folder(directory: Path, wait_seconds: float = LOCK_WAIT_SECONDS) -> Any:
    """Hold ``<dir>/.lock`` exclusively, or raise :class:`WriterBusy` naming who holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK, "a+b")  # noqa: SIM115 - held for the life of the writer
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read(64).decode("ascii", "replace").strip() or "unknown"
                handle.close()
                raise WriterBusy(f"another receipt writer (pid {holder}) is writing to {directory}: one writer "
                                 "per receipts folder; stop it or give this one its own receipts.dir") from None
            time.sleep(0.02)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()).encode())
    handle.flush()
    return handle


def is_live(directory: Path) -> bool:
    """Whether a writer holds the folder right now."""
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class LogWriter:
    def __init__(self, directory: Path | str, key: ReceiptKey, signer: Signer, *,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES, checkpoint_seconds: float = 1.0,
                 lock_wait_seconds: float = LOCK_WAIT_SECONDS, clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.key = key
        self.signer = signer
        self.segment_bytes = max(1, int(segment_bytes))
        self.checkpoint_seconds = checkpoint_seconds
        self.lock_wait_seconds = lock_wait_seconds
        self.clock = clock
        self._days = _Days()
        # Bodies come from Receipt.body() (the stores' fronts): typed but for FREE_FORM. Set False to
        # have every member of every body checked before the fast encoder is used.
        self.typed_bodies = True
        self.seq = 0  # the next record's
        self.tip: str | None = None  # SHA-256 hex of the last record's bytes
        self.tree = CompactRange()
        self.open_intents: dict[str, dict[str, Any]] = {}  # run_id -> intent body
        self.unwritable: str | None = None
        self._deferred: list[Op] = []  # receipts of durable intents whose write failed: written first
        self._lock: Any = None
        self._fd = -1
        self._segment: Path | None = None
        self._segment_day = ""
        self._size = 0  # bytes of the current segment that are durable records
        self._checkpointed = -1
        self._last_checkpoint = 0.0
        self._last_probe = 0.0
        self._dirs_synced: set[Path] = set()
        self._tip_at: tuple[Path, int, int] | None = None  # where the last record is: segment, offset, length

    # -- open / close --------------------------------------------------------------------------
    def open(self) -> None:
        self._lock = lock_folder(self.directory, self.lock_wait_seconds)
        try:
            self._recover()
            # Intents a crash left without their receipt get one now, before any new record.
            self._close_open_intents()
            self.checkpoint(force=True)
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """A clean stop: every open intent gets its unknown-outcome receipt, then a final checkpoint."""
        if self._lock is None:
            return
        with contextlib.suppress(ReceiptError):
            self._close_open_intents()
        with contextlib.suppress(OSError):
            self.checkpoint(force=True)
        for op in self._deferred:
            if not op.done():
                op.fail(ReceiptError("receipt store stopped"))
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _close_open_intents(self) -> None:
        if not self.open_intents:
            return
        ops = [Op("receipt", {**body, "actions_taken": [unknown_action(body)]})
               for body in list(self.open_intents.values())]
        self.commit(ops)
        failed = [op.error() for op in ops if op.error() is not None]
        if failed:
            raise ReceiptError(f"could not write the receipts of interrupted actions: {failed[0]}")

    def _recover(self) -> None:
        """Continue after the last complete record; cut a torn line off the last segment.

        From the state saved with the last checkpoint when it still matches the log (then only the
        records after it are read), else from a scan of the whole log."""
        segments = list_segments(self.directory)
        start, offset = self._resume(segments)
        torn: list[Any] = []
        for line in iter_lines(segments, torn, start=start, offset=offset):
            self._tip_at = (line.segment.path, line.offset, len(line.data))
            self.seq += 1
            self.tip = hashlib.sha256(line.data).hexdigest()
            self.tree.append(leaf_hash(line.data))
            try:
                record = loads(line.data)
                kind, run_id = record.get("kind"), record.get("run_id")
            except (ValueError, AttributeError):
                continue  # not a record: verify names it; the chain continues after its bytes
            if kind == "intent" and isinstance(run_id, str):
                body = {k: v for k, v in record.items() if k not in ("kind", "seq", "prev_hash", "signature")}
                self.open_intents[run_id] = body
            elif kind == "receipt":
                self.open_intents.pop(run_id, None)
        for piece in torn:
            if segments and piece.segment == segments[-1]:
                # Never acknowledged (the fsync that would have made it a record did not return).
                with open(piece.segment.path, "r+b") as fh:
                    fh.truncate(piece.offset)
                    os.fsync(fh.fileno())
        if segments:
            newest = segments[-1]
            size = newest.path.stat().st_size
            if size == 0 and newest.first != self.seq:
                newest.path.unlink()  # an empty segment named for another seq: never held a record
            else:
                self._open_segment(newest.path, newest.path.parent.name, size)

    def _resume(self, segments: list[Any]) -> tuple[int, int]:
        """(segment index, byte offset) to read on from: after the saved state when it matches the log
        (its last record's bytes hash to the saved tip), else (0, 0) with everything reset."""
        try:
            state = loads((self.directory / STATE).read_bytes())
            path = self.directory / state["tip_segment"]
            index = next(i for i, s in enumerate(segments) if s.path == path)
            tip_offset, tip_length = int(state["tip_offset"]), int(state["tip_length"])
            with open(path, "rb") as fh:
                fh.seek(tip_offset)
                last = fh.read(tip_length + 1)
            if len(last) != tip_length + 1 or last[-1:] != b"\n" or \
                    hashlib.sha256(last[:-1]).hexdigest() != state["tip"]:
                raise ValueError("the saved state does not match the log")
            tree = CompactRange(int(state["size"]), [bytes.fromhex(h) for h in state["tree"]])
            intents = state["intents"]
            if not isinstance(intents, dict):
                raise ValueError("bad intents")
        except (OSError, ValueError, KeyError, TypeError, StopIteration, AttributeError):
            return 0, 0
        self.seq, self.tip, self.tree = tree.size, state["tip"], tree
        self.open_intents = dict(intents)
        self._tip_at = (path, tip_offset, tip_length)
        return index, tip_offset + tip_length + 1

    def _save_state(self) -> None:
        """What a restart needs to go on without reading the whole log (a cache: checked, never trusted)."""
        if self._tip_at is None:
            with contextlib.suppress(OSError):
                (self.directory / STATE).unlink()
            return
        path, offset, length = self._tip_at
        state = {"size": self.seq, "tip": self.tip, "tree": [h.hex() for h in self.tree.hashes],
                 "tip_segment": str(path.relative_to(self.directory)), "tip_offset": offset,
                 "tip_length": length, "intents": self.open_intents}
        tmp = self.directory / f".{STATE}.tmp"
        tmp.write_bytes(canonical_bytes(state))
        os.replace(tmp, self.directory / STATE)

    # -- appending -----------------------------------------------------------------------------
    def _open_segment(self, path: Path, day: str, size: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._segment, self._segment_day, self._size = path, day, size

    def _reopen(self) -> None:
        """Reopen the current segment cut back to its last durable record (OSError if it cannot be)."""
        assert self._segment is not None
        os.truncate(self._segment, self._size)
        self._open_segment(self._segment, self._segment_day, self._size)

    def _new_segment(self, day: str) -> None:
        folder = self.directory / day
        folder.mkdir(exist_ok=True)
        path = folder / f"{self.seq:012d}.jsonl"
        self._open_segment(path, day, 0)
        # The new name must survive a crash before any record in it is acknowledged.
        os.fsync(self._fd)
        if folder not in self._dirs_synced:
            _fsync_dir(self.directory)
            self._dirs_synced.add(folder)
        _fsync_dir(folder)

    def commit(self, ops: list[Op]) -> None:
        """Append ``ops`` as one round: one write and one fdatasync per segment touched, then answer."""
        if self._deferred:
            ops = self._deferred + ops
            self._deferred = []
        if not ops:
            return
        saved = (self.seq, self.tip, self.tree.copy())
        segment_before = (self._segment, self._segment_day, self._size)
        tip_before = self._tip_at
        created: list[Path] = []
        answers: list[Answer] = []
        try:
            today = self._days(self.clock())
            if self._fd < 0 and self._segment is not None:
                self._reopen()  # a failed round could not be cut back before: do it now, or refuse
            if self._fd < 0 or self._segment_day != today:
                self._new_segment(today)
                created.append(self._segment)  # type: ignore[arg-type]
            chunk: list[bytes] = []
            pending = 0
            sign = self.key.signed_with_bytes
            free = FREE_FORM if self.typed_bodies else None
            for op in ops:
                unsigned = op.body
                unsigned["kind"] = op.kind
                unsigned["seq"] = self.seq
                unsigned["prev_hash"] = self.tip
                signed, line = sign(unsigned, free)
                for k in ("kind", "seq", "prev_hash"):
                    del unsigned[k]
                if self._size + pending and self._size + pending + len(line) + 1 > self.segment_bytes:
                    self._flush(chunk)
                    chunk, pending = [], 0
                    self._new_segment(today)
                    created.append(self._segment)  # type: ignore[arg-type]
                chunk.append(line)
                pending += len(line) + 1
                answers.append((self.seq, self.tip, signed["signature"]))
                self.tip = hashlib.sha256(line).hexdigest()
                self.tree.append(leaf_hash(line))
                self.seq += 1
            self._flush(chunk)
        except OSError as exc:
            self._undo(saved, segment_before, created)
            self._tip_at = tip_before
            self._refuse(ops, exc)
            return
        if self.unwritable is not None:
            self.unwritable = None
        for op, answer in zip(ops, answers, strict=True):
            run_id = op.body.get("run_id")
            if op.kind == "intent":
                self.open_intents[run_id] = op.body  # type: ignore[index]
            else:
                self.open_intents.pop(run_id, None)  # type: ignore[arg-type]
            if not op.done():
                op.resolve(answer)

    def _flush(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        data = b"\n".join(chunk) + b"\n"
        last = (self._segment, self._size + len(data) - len(chunk[-1]) - 1, len(chunk[-1]))
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "short write")
            view = view[written:]
        os.fdatasync(self._fd)
        self._size += len(data)
        self._tip_at = last  # type: ignore[assignment]

    def _undo(self, saved: tuple[int, str | None, CompactRange], segment_before: tuple[Path | None, str, int],
              created: list[Path]) -> None:
        """Leave the log exactly as it was before the failed round: no partial line behind."""
        self.seq, self.tip, self.tree = saved
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        self._segment, self._segment_day, self._size = segment_before
        if self._segment is not None:
            # If this fails too, the next round (or the probe) cuts it back before writing anything.
            with contextlib.suppress(OSError):
                self._reopen()

    def _refuse(self, ops: list[Op], exc: OSError) -> None:
        reason = f"receipts cannot be written to {self.directory}: {exc.strerror or exc}"
        self.unwritable = reason
        self._last_probe = time.monotonic()
        for op in ops:
            if op.kind == "receipt" and op.body.get("run_id") in self.open_intents:
                # Its intent is durable (the action may have run): keep it, write it first.
                self._deferred.append(Op(op.kind, op.body))
                if not op.done():
                    op.fail(ReceiptError(f"{reason}; kept, written once the disk takes it"))
            elif not op.done():
                op.fail(ReceiptError(reason))

    # -- time-driven work ----------------------------------------------------------------------
    def wait_seconds(self) -> float:
        """How long the driver may block before ``tick`` has something to do."""
        waits = [PROBE_SECONDS if self.unwritable else 3600.0]
        if self.seq != self._checkpointed:
            waits.append(self._last_checkpoint + self.checkpoint_seconds - time.monotonic())
        return max(0.0, min(waits))

    def tick(self) -> None:
        if self.unwritable is not None and time.monotonic() - self._last_probe >= PROBE_SECONDS:
            self.probe()
        if self.seq != self._checkpointed and time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds:
            with contextlib.suppress(OSError):  # retried next tick; records are durable already
                self.checkpoint()

    def probe(self) -> None:
        """While unwritable: write what is deferred, or a probe file, to learn whether writes work again."""
        self._last_probe = time.monotonic()
        if self._deferred:
            self.commit([])
            return
        probe = self.directory / ".probe"
        try:
            if self._fd < 0 and self._segment is not None:
                self._reopen()
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"\0" * 65536)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.unwritable = f"receipts cannot be written to {self.directory}: {exc.strerror or exc}"
        else:
            self.unwritable = None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def checkpoint(self, *, force: bool = False) -> None:
        """Sign the tree of every record so far; ``checkpoints/<size>`` then ``HEAD``."""
        if self.seq == self._checkpointed and not force:
            return
        size = self.seq
        note = sign_checkpoint(self.signer, size, self.tree.root()).encode("utf-8")
        folder = self.directory / CHECKPOINTS
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            _fsync_dir(self.directory)
        _atomic_write(folder / str(size), note)
        _atomic_write(self.directory / HEAD, note)
        _fsync_dir(folder)
        _fsync_dir(self.directory)
        self._checkpointed = size
        self._last_checkpoint = time.monotonic()
        with contextlib.suppress(OSError, ValueError):
            self._save_state()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- library mode: the writer on a thread ------------------------------------------------------
class ReceiptStore(StoreFront):
    """The log written by a thread of this process (``EnactClient``; tests)."""

    def __init__(self, directory: Path | str, key: ReceiptKey, *, signer: Signer | None = None,
                 certs_dir: Path | str | None = None, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 checkpoint_seconds: float = 1.0, lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.directory = Path(directory)
        self.key = key
        self.certs_dir = Path(certs_dir) if certs_dir is not None else self.directory.parent / "certs"
        self.signer = signer
        self.segment_bytes = segment_bytes
        self.checkpoint_seconds = checkpoint_seconds
        self.lock_wait_seconds = lock_wait_seconds
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._writer: LogWriter | None = None
        self._failed: BaseException | None = None

    def start(self) -> ReceiptStore:
        signer = self.signer or load_log_signer(self.certs_dir)
        writer = LogWriter(self.directory, self.key, signer, segment_bytes=self.segment_bytes,
                           checkpoint_seconds=self.checkpoint_seconds, lock_wait_seconds=self.lock_wait_seconds)
        writer.open()  # raises WriterBusy when another writer has the folder
        self._writer = writer
        self._thread = threading.Thread(target=self._run, name="enact-receipts", daemon=True)
        self._thread.start()
        return self

    @property
    def unwritable(self) -> str | None:  # type: ignore[override]
        return self._writer.unwritable if self._writer is not None else None

    def close(self) -> None:
        """Write everything queued, close open intents, checkpoint, release the folder."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> ReceiptStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, kind: str, body: dict[str, Any]) -> Future[Answer]:
        return self._submit_as(kind, body, lambda answer: answer)

    def _submit_as(self, kind: str, body: dict[str, Any], wrap: Callable[[Answer], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        if self._thread is None or self._failed is not None:
            future.set_exception(ReceiptError(f"receipt store is not running: {self._failed or 'stopped'}"))
        else:
            self._queue.put(Op(kind, body, lambda answer, error: settle(future, wrap, answer, error)))
        return future

    def _run(self) -> None:
        writer = self._writer
        assert writer is not None
        stopping = False
        try:
            while not stopping:
                try:
                    first = self._queue.get(timeout=writer.wait_seconds())
                except queue.Empty:
                    writer.tick()
                    continue
                batch: list[Op] = []
                item: Op | None = first
                while True:
                    if item is None:
                        stopping = True
                    else:
                        batch.append(item)
                    if len(batch) >= MAX_ROUND:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                writer.commit(batch)
                writer.tick()
        except BaseException as exc:  # noqa: BLE001 - fail closed: every later record is refused
            self._failed = exc
            raise
        finally:
            writer.close()
            self._drain_refused()

    def _drain_refused(self) -> None:
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                return
            if op is not None and not op.done():
                op.fail(ReceiptError("receipt store stopped"))
