"""The receipt log writer in its own process, so chaining, signing and writing never hold the sidecar's GIL.

The sidecar keeps a thin front (:class:`ProcessReceiptStore`, the same API as :class:`ReceiptStore`)
that pickles each record body onto a pipe; a child process drives a :class:`LogWriter` from one
thread, in rounds (everything that arrived: one write, one fdatasync), and answers in batches with each
record's ``seq``, ``prev_hash`` and signature, so the front hands back the signed record without it
being shipped twice. Started inside an event loop (the sidecar), the front reads the answers on that
loop; elsewhere on a thread. The child never blocks writing answers, so a front blocked on a full pipe
can never wait for a child blocked on the other one. Whether records can be written at all
(``unwritable``) travels on the same stream.

Fail closed: if the child dies, every unanswered record and every later one fails with
:class:`ReceiptError`, so nothing more is forwarded. The child outlives a crashed sidecar only long
enough to drain its pipe (EOF is its one stop signal; it ignores SIGINT and SIGTERM), and it holds
the folder's writer lock, so a second sidecar or ``EnactClient`` on the folder refuses to start.

Several fronts (``listen.workers`` > 1: HTTP front processes on one port): the store started with
``fronts=True`` keeps a control socket to the child, and :meth:`ProcessReceiptStore.add_front` makes
a fresh pipe pair for one more front, hands the child its ends (``SCM_RIGHTS``) and returns the other
ends for the front process, which attaches to them (``attach=``). The child multiplexes every front in
its one select loop: one chain, one ``seq`` order, each front answered on its own pipe, and the
``unwritable`` status sent to every front. It stops only once every front has gone (EOF on all).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from enact_proxy.receipts.checkpoint import load_log_signer
from enact_proxy.receipts.note import Signer
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import (
    DEFAULT_SEGMENT_BYTES,
    LOCK_WAIT_SECONDS,
    MAX_ROUND,
    Answer,
    LogWriter,
    Op,
    ReceiptError,
    StoreFront,
    WriterBusy,
    settle,
)

STATUS = -1  # an answer that is not about a record: whether records can be written (reason or None)
PIPE_BYTES = 1 << 20  # room for ~1k records in flight before a slow child pushes back on the sidecar
_LENGTH = struct.Struct(">I")


def _frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


def _next_frame(reader: _FrameReader) -> Any:
    """Block for one frame (start-up only); None if the other side ended first."""
    while not reader.ended:
        frames = reader.read(None)
        if frames:
            return frames[0]
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[attr-defined]


class ProcessReceiptStore(StoreFront):
    """A :class:`ReceiptStore` run by a child process; the futures resolve as the child answers."""

    def __init__(self, directory: Path | str, key: ReceiptKey, *, signer: Signer | None = None,
                 certs_dir: Path | str | None = None, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 checkpoint_seconds: float = 1.0, lock_wait_seconds: float = LOCK_WAIT_SECONDS,
                 fronts: bool = False, attach: tuple[int, int] | None = None):
        """``fronts``: the child also takes more fronts (:meth:`add_front`). ``attach``: no child of our
        own; be one more front of a writer another process started, on the two pipe ends it gave us
        (frames out, answers in)."""
        self.directory = Path(directory)
        self.key = key
        self.signer = signer
        self.certs_dir = Path(certs_dir) if certs_dir is not None else self.directory.parent / "certs"
        self.segment_bytes = segment_bytes
        self.checkpoint_seconds = checkpoint_seconds
        self.lock_wait_seconds = lock_wait_seconds
        self.unwritable: str | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._out = -1
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._seq = itertools.count()
        self._pending: dict[int, tuple[Future[Any], Callable[[Answer], Any]]] = {}
        self._outbox: list[bytes] = []  # frames submitted on the event loop, written once per iteration
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = -1
        self._failed: BaseException | None = None
        self._fronts = fronts
        self._attach = attach
        self._control: socket.socket | None = None  # to the child, for add_front
        self._control_lock = threading.Lock()
        self._running = False

    def start(self) -> ProcessReceiptStore:
        if self._attach is not None:
            self._out, answers = self._attach
            self._acks = _FrameReader(answers)
            self._running = True
            self._read_answers_here()
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        signer = self.signer or load_log_signer(self.certs_dir)
        command = [sys.executable, "-m", "enact_proxy.receipts.process"]
        passed: tuple[int, ...] = ()
        theirs = None
        if self._fronts:
            self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            command += ["--fronts", str(theirs.fileno())]
            passed = (theirs.fileno(),)
        try:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, pass_fds=passed,
                start_new_session=True, env=_child_environ())
        finally:
            if theirs is not None:
                theirs.close()
        assert child.stdin is not None and child.stdout is not None
        self._child = child
        self._out = child.stdin.fileno()
        _grow_pipe(self._out)
        # The keys travel on the pipe: never in argv or the environment of a process listing.
        _write_all(self._out, _frame({"directory": str(self.directory), "key": self.key.secret,
                                      "signer": signer.text, "segment_bytes": self.segment_bytes,
                                      "checkpoint_seconds": self.checkpoint_seconds,
                                      "lock_wait_seconds": self.lock_wait_seconds}))
        self._acks = _FrameReader(child.stdout.fileno())
        ready = _next_frame(self._acks)
        if not isinstance(ready, dict) or not ready.get("ready"):
            self._stop_child()
            if self._control is not None:
                self._control.close()
                self._control = None
            if isinstance(ready, dict) and ready.get("busy"):
                raise WriterBusy(str(ready["error"]))
            detail = ready.get("error") if isinstance(ready, dict) else "it exited"
            raise ReceiptError(f"receipt writer process did not start: {detail}")
        self._running = True
        self._read_answers_here()
        return self

    def _read_answers_here(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        except RuntimeError:
            self._loop = None
        if self._loop is not None:  # the sidecar: answers are read by its event loop, no thread at all
            os.set_blocking(self._acks.fd, False)  # read when the loop says so: never wait in os.read
            self._loop.add_reader(self._acks.fd, self._on_readable)
        else:
            self._reader = threading.Thread(target=self._read_acks, name="enact-receipt-acks", daemon=True)
            self._reader.start()

    def add_front(self) -> tuple[int, int]:
        """One more front for the child (``fronts=True``): returns ``(frames_out, answers_in)``, the pipe
        ends a front process attaches to (``attach=``); the caller passes them on and closes its copies."""
        with self._control_lock:
            if self._control is None or not self._running or self._failed is not None:
                raise ReceiptError(f"receipt writer takes no more fronts: {self._failed or 'not running'}")
            to_child, frames_out = os.pipe()
            answers_in, from_child = os.pipe()
            _grow_pipe(frames_out)
            _grow_pipe(from_child)
            try:
                socket.send_fds(self._control, [b"F"], [to_child, from_child])
            except OSError as exc:
                os.close(frames_out)
                os.close(answers_in)
                raise ReceiptError(f"receipt writer process is gone: {exc}") from exc
            finally:  # in flight, the child's ends stay open until it takes them (or closes the socket)
                os.close(to_child)
                os.close(from_child)
            return frames_out, answers_in

    def close(self) -> None:
        """Let the child write everything sent so far, then wait for it to exit."""
        if not self._running:
            return
        self._running = False
        self._flush_outbox()  # what this loop iteration submitted goes out before the pipe closes
        with self._write_lock:
            if self._child is None:
                with contextlib.suppress(OSError):
                    os.close(self._out)
            elif self._child.stdin is not None:
                with contextlib.suppress(OSError):
                    self._child.stdin.close()
            self._out = -1  # a late submit fails on a closed descriptor, never writes to a reused one
        with self._control_lock:
            if self._control is not None:
                self._control.close()  # no more fronts; the child stops once every front has gone
                self._control = None
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        elif self._loop is not None:
            self._loop.remove_reader(self._acks.fd)
            self._read_acks()  # the last answers, read right here: the loop is ours until we return
        self._stop_child()

    def __enter__(self) -> ProcessReceiptStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            if self._attach is not None:
                with contextlib.suppress(OSError):
                    os.close(self._acks.fd)
            return
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _submit(self, kind: str, body: dict[str, Any]) -> Future[Answer]:
        return self._submit_as(kind, body, lambda answer: answer)

    def _submit_as(self, kind: str, record: dict[str, Any], wrap: Callable[[Answer], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        if not self._running or self._failed is not None:
            future.set_exception(ReceiptError(f"receipt store is not running: {self._failed or 'stopped'}"))
            return future
        # The pending map has no lock of its own (dict operations are atomic): the ack reader must
        # never wait behind a submitter blocked on a full pipe, or the two processes would deadlock.
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            # On the event loop: every record submitted in this loop iteration goes in one write.
            seq = next(self._seq)
            self._pending[seq] = (future, wrap)
            self._outbox.append(_frame((seq, kind, record)))
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_outbox)
            return future
        with self._write_lock:
            seq = next(self._seq)
            self._pending[seq] = (future, wrap)
            try:
                _write_all(self._out, _frame((seq, kind, record)))
            except (OSError, ValueError) as exc:
                self._failed = self._failed or ReceiptError(f"receipt writer process is gone: {exc}")
        if self._failed is not None and self._pending.pop(seq, None) is not None:
            future.set_exception(self._failed)
        return future

    def _flush_outbox(self) -> None:
        self._flush_scheduled = False
        frames, self._outbox = self._outbox, []
        if not frames:
            return
        with self._write_lock:
            try:
                _write_all(self._out, b"".join(frames))
            except (OSError, ValueError) as exc:
                self._failed = self._failed or ReceiptError(f"receipt writer process is gone: {exc}")
        if self._failed is not None:
            self._writer_gone(self._failed)

    def _read_acks(self) -> None:
        while not self._acks.ended:
            if not self._take_acks(None):
                return
        self._writer_gone(ReceiptError("receipt writer process exited"))

    def _on_readable(self) -> None:
        # The loop says the pipe is readable: read it (no select of our own first).
        if not self._take_acks(None, readable=True) or self._acks.ended:
            assert self._loop is not None
            self._loop.remove_reader(self._acks.fd)
            self._writer_gone(ReceiptError("receipt writer process exited"))

    def _take_acks(self, timeout: float | None, readable: bool = False) -> bool:
        """Settle the answered futures; False (and every pending future failed) on an answer that makes
        no sense, so a confused writer refuses actions instead of leaving them waiting forever."""
        try:
            if readable:
                self._acks.fill()
            for batch in self._acks.frames() if readable else self._acks.read(timeout):
                for token, error, answer in batch:
                    if token == STATUS:
                        self.unwritable = error
                        continue
                    future, wrap = self._pending.pop(token)
                    settle(future, wrap, answer, ReceiptError(error) if error is not None else None)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError) as exc:
            self._writer_gone(ReceiptError(f"receipt writer answered garbage: {type(exc).__name__}: {exc}"))
            return False
        return True

    def _writer_gone(self, why: BaseException) -> None:
        self._failed = self._failed or why
        for seq in list(self._pending):
            entry = self._pending.pop(seq, None)
            if entry is not None:
                entry[0].set_exception(self._failed)


def _child_environ() -> dict[str, str]:
    """The child imports the very package this process runs, wherever it was imported from."""
    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k != "ENACT_RECEIPT_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env


# -- the child ---------------------------------------------------------------------------------
class _FrameReader:
    """Frames off a pipe without blocking past a timeout: the child's one thread must also checkpoint."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.ended = False

    def read(self, timeout: float | None) -> list[Any]:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            self.fill()
        return self.frames()

    def fill(self) -> None:
        """One read of what is there (the fd is readable, or non-blocking)."""
        try:
            chunk = os.read(self.fd, PIPE_BYTES)
        except BlockingIOError:  # nothing after all (a non-blocking fd): not the end either
            return
        self.ended = not chunk
        self.buffer += chunk

    def frames(self) -> list[Any]:
        frames = []
        while len(self.buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < _LENGTH.size + length:
                break
            frames.append(pickle.loads(self.buffer[_LENGTH.size:_LENGTH.size + length]))
            del self.buffer[:_LENGTH.size + length]
        return frames


class _Answers:
    """Acknowledgements to the sidecar, written without ever blocking: a sidecar blocked writing to
    this process must not wait for this process blocked writing to it (two full pipes, a deadlock)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.unsent = bytearray()
        os.set_blocking(fd, False)

    def send(self, data: bytes) -> None:
        self.unsent += data
        self.flush()

    def flush(self) -> None:
        while self.unsent:
            try:
                sent = os.write(self.fd, self.unsent)
            except BlockingIOError:
                return
            except OSError:  # the sidecar is gone; the journal keeps everything for its restart
                self.unsent.clear()
                return
            del self.unsent[:sent]

    def finish(self) -> None:
        os.set_blocking(self.fd, True)
        self.flush()


class _Front:
    """One front as the child sees it: records in on one pipe, answers out on the other."""

    def __init__(self, reader: _FrameReader, out: int):
        self.reader = reader
        self.answers = _Answers(out)
        self.acks: list[tuple[int, str | None, Answer | None]] = []

    def answerer(self, seq: int) -> Callable[[Answer | None, BaseException | None], None]:
        acks = self.acks

        def answer(result: Answer | None, error: BaseException | None) -> None:
            acks.append((seq, str(error), None) if error is not None else (seq, None, result))
        return answer

    def send(self) -> None:
        if self.acks:
            self.answers.send(_frame(self.acks))
            self.acks.clear()

    @property
    def gone(self) -> bool:
        """Ended and every answer delivered (or undeliverable): its pipes can be closed."""
        return self.reader.ended and not self.answers.unsent and not self.acks

    def close(self) -> None:
        for fd in (self.reader.fd, self.answers.fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _take_front(control: socket.socket, fronts: list[_Front], told: str | None) -> socket.socket | None:
    """A new front's two pipe ends off the control socket; None once the sidecar closed it."""
    try:
        message, fds, _, _ = socket.recv_fds(control, 1, 2)
    except OSError:
        message, fds = b"", []
    if not message:
        for fd in fds:
            os.close(fd)
        control.close()
        return None
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return control
    front = _Front(_FrameReader(fds[0]), fds[1])
    if told is not None:  # it must refuse from its first action on, like the others
        front.acks.append((STATUS, told, None))
        front.send()
    fronts.append(front)
    return control


def _serve(inp: int, out: int, control: socket.socket | None = None) -> None:
    """One thread does it all, in rounds: append what arrived from every front (one write, one
    fdatasync), answer each front, checkpoint when due. Threads here would only trade the GIL back and forth."""
    reader = _FrameReader(inp)
    hello = _next_frame(reader)
    try:
        assert isinstance(hello, dict), "no start-up message"
        writer = LogWriter(Path(hello["directory"]), ReceiptKey(hello["key"]), Signer.parse(hello["signer"]),
                           segment_bytes=hello["segment_bytes"], checkpoint_seconds=hello["checkpoint_seconds"],
                           lock_wait_seconds=hello["lock_wait_seconds"])
        writer.open()
    except WriterBusy as exc:
        _write_all(out, _frame({"error": str(exc), "busy": True}))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the sidecar, which refuses to start
        _write_all(out, _frame({"error": f"{type(exc).__name__}: {exc}"}))
        return
    _write_all(out, _frame({"ready": True}))
    first = _Front(reader, out)
    fronts = [first]
    told: str | None = None

    def flush() -> None:
        nonlocal told
        if writer.unwritable != told:
            told = writer.unwritable
            for front in fronts:
                front.acks.append((STATUS, told, None))
        for front in fronts:
            front.send()

    while any(not front.reader.ended for front in fronts):
        reading = {front.reader.fd: front for front in fronts if not front.reader.ended}
        waiting = [front.answers.fd for front in fronts if front.answers.unsent]
        watched = [*reading, control.fileno()] if control is not None else list(reading)
        ready, writable, _ = select.select(watched, waiting, [], writer.wait_seconds())
        if writable:
            for front in fronts:
                if front.answers.fd in writable:
                    front.answers.flush()
        ops = []
        for fd in ready:
            source = reading.get(fd)
            if source is None:  # the control socket
                assert control is not None
                control = _take_front(control, fronts, told)
                continue
            source.reader.fill()
            for seq, kind, record in source.reader.frames():
                ops.append(Op(kind, record, source.answerer(seq)))
        for at in range(0, len(ops), MAX_ROUND):
            writer.commit(ops[at:at + MAX_ROUND])
            flush()
        writer.tick()
        flush()
        for front in [f for f in fronts if f is not first and f.gone]:  # a stopped or replaced front
            front.close()
            fronts.remove(front)
    writer.close()
    flush()
    for front in fronts:
        front.answers.finish()
    if control is not None:
        control.close()


def main() -> None:
    # EOF on the pipe is the only stop signal: a Ctrl-C or SIGTERM to the sidecar's process group must
    # not cut the writer off before it has written what the sidecar already sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the ack stream
    _grow_pipe(out)
    control = None
    if len(sys.argv) == 3 and sys.argv[1] == "--fronts":  # more fronts will come over this socket
        control = socket.socket(fileno=int(sys.argv[2]))
    _serve(sys.stdin.fileno(), out, control)


if __name__ == "__main__":
    main()
