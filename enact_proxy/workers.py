"""``listen.workers`` > 1: more HTTP(S) front processes on the one port, all feeding the one receipt writer.

Why: per HTTPS request most of the sidecar's CPU is mitmproxy's own work (TLS, HTTP/1 parsing, layers),
all on one event loop and one GIL. Several processes accepting on one port spread it over the cores.

How:
- Every front binds ``listen.http`` (and ``listen.transparent``) with ``SO_REUSEPORT``; the kernel
  spreads new connections over them by their 4-tuple (Linux lets only sockets of the same user join).
  The main process binds first (so port 0 resolves to one port) and then starts the others on it.
- The main process stays what it is with one front: admin listener, Postgres listener, the receipt
  writer child, reload, and its own HTTP front. The others (:func:`worker_main`) build their own
  engine, connectors and state-store connection from the same config file and serve only HTTP.
- Receipts: the writer child takes one pipe pair per front (:meth:`ProcessReceiptStore.add_front`),
  so every record goes into the one chain, in one ``seq`` order, under the same fail-closed rules.
- Metrics: each front sends its counter and histogram values to the main process about once a second
  (a pipe per front); the main process's ``/metrics`` adds them to its own.
- :class:`Fleet` (in the main process) starts them, replaces one that dies (a fresh pipe pair to the
  writer), forwards a reload to each (SIGHUP, once the main process accepted the new config), and at a
  stop ends them before the main process flushes the log. A front outlives no main process: it asks
  the kernel for SIGTERM when its parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enact_proxy.sidecar import Sidecar

STOP_SECONDS = 30.0  # a front gets this long to finish its requests and records at a stop
WATCH_SECONDS = 0.2  # how often the main process looks for a front that died
QUICK_DEATH_SECONDS = 10.0  # a front that dies sooner than this is restarted after a growing pause
MAX_PAUSE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1
METRICS_SECONDS = 1.0  # how often a front sends its metric values to the main process
_LENGTH = struct.Struct(">I")


def log(message: str) -> None:
    print(f"enact-proxy: {message}", file=sys.stderr, flush=True)


# -- binding -----------------------------------------------------------------------------------
def listen_with_reuse_port() -> None:
    """Make mitmproxy's TCP listeners (regular and transparent modes) bind with ``SO_REUSEPORT``."""
    from mitmproxy.proxy import mode_servers

    cls: Any = mode_servers.AsyncioServerInstance
    if getattr(cls.listen, "enact_reuse_port", False):
        return
    original = cls.listen

    async def listen(self: Any, host: str, port: int) -> list[Any]:
        if self.mode.transport_protocol != "tcp":
            return await original(self, host, port)  # type: ignore[no-any-return]
        return [await asyncio.start_server(self.handle_stream, host, port, reuse_port=True)]

    listen.enact_reuse_port = True  # type: ignore[attr-defined]
    cls.listen = listen


def port_in_use(address: str) -> str | None:
    """Why ``host:port`` cannot be bound by a plain listener right now (someone listens there), or None.
    Port 0 is always free."""
    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    if port == 0:
        return None
    try:
        found = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve: {exc}"
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds: TIME_WAIT is fine
            try:
                probe.bind(where)
            except OSError as exc:
                return f"already in use ({exc.strerror or exc})"
    return None


# -- the main process's side -------------------------------------------------------------------
class Fleet:
    """The HTTP fronts 1..N-1 (the main process is front 0), kept running until :meth:`stop`."""

    def __init__(self, sidecar: Sidecar, count: int):
        self.sidecar = sidecar
        self.count = count
        self.http = ""
        self.transparent: str | None = None
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._started_at: dict[int, float] = {}
        self._quick_deaths: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        # Metric values: the latest from each running front (by its metrics pipe), and the last ones
        # of fronts that have ended (a counter never goes down because a front was replaced).
        self._metrics_pipes: dict[int, bytearray] = {}
        self._latest: dict[int, dict[Any, float]] = {}
        self._retired: dict[Any, float] = {}

    def start(self, http: str, transparent: str | None) -> Fleet:
        self.http, self.transparent = http, transparent
        for index in range(1, self.count):
            self._start_one(index)
        self._watcher = threading.Thread(target=self._watch, name="enact-fleet", daemon=True)
        self._watcher.start()
        threading.Thread(target=self._read_metrics, name="enact-fleet-metrics", daemon=True).start()
        return self

    def _start_one(self, index: int) -> None:
        from enact_proxy.receipts import ReceiptError

        try:
            frames_out, answers_in = self.sidecar.store.add_front()
        except ReceiptError as exc:
            self._later(index, f"http worker {index} cannot start: {exc}")
            return
        metrics_in, metrics_out = os.pipe()
        config = self.sidecar.config
        command = [sys.executable, "-m", "enact_proxy.workers", "--config", str(config.path), "--index", str(index),
                   "--http", self.http, "--receipts", f"{frames_out},{answers_in}", "--metrics", str(metrics_out),
                   "--parent", str(os.getpid()), "--config-sha256", config.sha256]
        if self.transparent:
            command += ["--transparent", self.transparent]
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, pass_fds=(frames_out, answers_in, metrics_out), close_fds=True, start_new_session=True,
                env=_worker_environ(), cwd=str(config.base_dir), stdin=subprocess.PIPE)
            # The config the main process runs, not the file as it is now: an edit nobody reloaded yet
            # must not reach a share of the traffic because a front happened to be replaced.
            assert process.stdin is not None
            with contextlib.suppress(OSError):  # a front that died at once is seen by the watcher
                process.stdin.write(config.text)
                process.stdin.close()
        except OSError as exc:
            os.close(metrics_in)
            self._later(index, f"http worker {index} cannot start: {exc}")
            return
        finally:  # the writer and the new front hold the pipes now
            for fd in (frames_out, answers_in, metrics_out):
                os.close(fd)
        with self._lock:
            self._metrics_pipes[metrics_in] = bytearray()
            self.processes[index] = process
            self._started_at[index] = time.monotonic()
            self._retry_at.pop(index, None)

    def _later(self, index: int, why: str) -> None:
        pause = min(MAX_PAUSE_SECONDS, 2.0 ** self._quick_deaths.get(index, 0))
        self._quick_deaths[index] = self._quick_deaths.get(index, 0) + 1
        self._retry_at[index] = time.monotonic() + pause
        log(f"{why}; trying again in {pause:g}s")

    def _watch(self) -> None:
        """Replace a front that died: its port share would otherwise just vanish from the group."""
        while not self._stopping.wait(WATCH_SECONDS):
            for index in range(1, self.count):
                with self._lock:
                    process = self.processes.get(index)
                if process is not None:
                    code = process.poll()
                    if code is None:
                        continue
                    with self._lock:
                        del self.processes[index]
                    how = f"signal {-code}" if code < 0 else f"status {code}"
                    lived = time.monotonic() - self._started_at.get(index, 0.0)
                    if lived >= QUICK_DEATH_SECONDS:
                        self._quick_deaths[index] = 0
                        self._retry_at[index] = 0.0
                        log(f"http worker {index} (pid {process.pid}) exited ({how}); starting a replacement")
                    else:
                        self._later(index, f"http worker {index} (pid {process.pid}) exited ({how})")
                if self._stopping.is_set() or time.monotonic() < self._retry_at.get(index, 0.0):
                    continue
                self._start_one(index)
                with self._lock:
                    started = self.processes.get(index)
                if started is not None:
                    log(f"http worker {index} started again (pid {started.pid})")

    def _read_metrics(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                pipes = list(self._metrics_pipes)
            if not pipes:
                self._stopping.wait(METRICS_SECONDS)
                continue
            ready, _, _ = select.select(pipes, [], [], METRICS_SECONDS)
            for fd in ready:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    chunk = b""
                with self._lock:
                    buffer = self._metrics_pipes[fd]
                    buffer += chunk
                    while len(buffer) >= _LENGTH.size and len(buffer) >= _LENGTH.size + _LENGTH.unpack_from(buffer)[0]:
                        size = _LENGTH.unpack_from(buffer)[0]
                        with contextlib.suppress(Exception):  # our own child's pickle; garbage is dropped
                            self._latest[fd] = pickle.loads(buffer[_LENGTH.size:_LENGTH.size + size])
                        del buffer[:_LENGTH.size + size]
                    if not chunk:  # that front has ended: its last values stay counted
                        from enact_proxy.admin.metrics import add_samples

                        add_samples(self._retired, self._latest.pop(fd, {}))
                        del self._metrics_pipes[fd]
                        os.close(fd)

    def samples(self) -> dict[Any, float]:
        """The other fronts' metric values, summed (what the main process's ``/metrics`` adds in)."""
        from enact_proxy.admin.metrics import add_samples

        with self._lock:
            total = dict(self._retired)
            for values in self._latest.values():
                add_samples(total, values)
        return total

    def pids(self) -> dict[int, int]:
        with self._lock:
            return {index: process.pid for index, process in self.processes.items()}

    def reload(self) -> None:
        """Each front re-reads the same file (the main process has just accepted it)."""
        with self._lock:
            running = list(self.processes.values())
        for process in running:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGHUP)

    def problems(self) -> list[str]:
        """What ``/readyz`` reports: fronts that are not running (being restarted)."""
        with self._lock:
            missing = [index for index in range(1, self.count)
                       if index not in self.processes or self.processes[index].poll() is not None]
        return [f"http worker {index} is not running (being restarted)" for index in missing]

    def stop(self) -> None:
        """End every front (SIGTERM: each finishes and closes its pipes to the writer), then return."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            running = list(self.processes.values())
        for process in running:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _worker_environ() -> dict[str, str]:
    """A front imports the very package this process runs, wherever it was imported from."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env


# -- a front process ---------------------------------------------------------------------------
def _die_with(parent: int) -> None:
    """SIGTERM this process when the main process dies, however it dies: no front outlives it. (The
    kernel ties this to the thread that started the front: the main process's event loop thread, or its
    fleet watcher thread, both of which live as long as the fleet.)"""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request above took effect
        raise SystemExit(1)


def _send_metrics(sidecar: Sidecar, fd: int) -> None:
    """About once a second, this front's counter and histogram values to the main process."""
    sent: Any = None
    while True:
        values = sidecar.metrics.samples()
        if values != sent:
            body = pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                os.write(fd, _LENGTH.pack(len(body)) + body)  # small: one write
            except OSError:
                return  # the main process is gone; this front is about to be told too
            sent = values
        time.sleep(METRICS_SECONDS)


def worker_main(argv: list[str] | None = None) -> int:
    from enact_proxy.config import ConfigError, load_config
    from enact_proxy.sidecar import Sidecar, serve_proxy

    parser = argparse.ArgumentParser(prog="enact-proxy http worker", description="internal: one more HTTP front")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--transparent")
    parser.add_argument("--receipts", required=True)  # two fds: frames to the writer, its answers
    parser.add_argument("--metrics", type=int, required=True)  # fd: this front's metric values, to main
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--config-sha256", required=True)
    args = parser.parse_args(argv)
    # A reload signal that arrives while this front starts must not end it (SIGHUP's default): it reads
    # the file below anyway, and its event loop takes SIGHUP over once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _die_with(args.parent)
    frames_out, answers_in = (int(fd) for fd in args.receipts.split(","))
    who = f"http worker {args.index}"
    try:
        # The main process hands over the bytes of the config it runs (stdin): the same config on every
        # front, whatever happened to the file since the last (re)load.
        config = load_config(args.config, text=sys.stdin.buffer.read())
    except ConfigError as exc:
        log(f"{who} cannot start: {exc}")
        return 1
    if config.sha256 != args.config_sha256:  # cannot happen unless the hand-over itself broke
        log(f"{who} cannot start: the config it was given is not the main process's (sha256 {config.sha256})")
        return 1
    try:
        sidecar = Sidecar(config, attach_receipts=(frames_out, answers_in), worker=args.index)
    except (OSError, ValueError) as exc:
        log(f"{who} cannot start: {exc}")
        return 1
    threading.Thread(target=_send_metrics, args=(sidecar, args.metrics), name="enact-metrics", daemon=True).start()
    modes = [f"regular@{args.http}"]
    if args.transparent:
        modes.append(f"transparent@{args.transparent}")
    code = serve_proxy(sidecar, modes, reuse_port=True)
    if code == 0:
        log(f"{who} (pid {os.getpid()}) stopped")
    return code


if __name__ == "__main__":
    sys.exit(worker_main())
