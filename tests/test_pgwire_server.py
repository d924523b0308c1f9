"""The Postgres listener in-process, in front of a real PostgreSQL; and its small pure helpers."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from enact_proxy.config import load_config
from enact_proxy.pgwire.auth import md5_response
from enact_proxy.pgwire.messages import (
    CancelRequest,
    ErrorResponse,
    Frame,
    Query,
    StartupMessage,
    decode_backend,
)
from enact_proxy.pgwire.server import PostgresListener, start_listener
from enact_proxy.pgwire.session import command_outcome
from enact_proxy.pgwire.startup import split_options, startup_refusal
from enact_proxy.pgwire.upstream import UpstreamError, UpstreamTarget
from enact_proxy.sidecar import Sidecar
from tests.e2e.harness import write_config
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the session fixture

# ---- pure helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "refused"), [
    ({"user": "a", "database": "d", "application_name": "x"}, None),
    ({"user": "a", "client_encoding": "UTF8"}, None),
    ({"user": "a", "client_encoding": "'utf-8'"}, None),  # asyncpg quotes it
    ({"user": "a", "client_encoding": "LATIN1"}, "client_encoding"),
    ({"user": "a", "DateStyle": "ISO", "TimeZone": "UTC", "extra_float_digits": "3"}, None),
    ({"user": "a", "search_path": "evil"}, "search_path"),
    ({"user": "a", "role": "admin"}, "role"),
    ({"user": "a", "session_authorization": "admin"}, "session_authorization"),
    ({"user": "a", "replication": "database"}, "replication"),
    ({"user": "a", "replication": "true"}, "replication"),
    ({"user": "a", "replication": "false"}, None),
    ({"user": "a", "options": "-c search_path=evil"}, "search_path"),
    ({"user": "a", "options": "-csearch_path=evil"}, "search_path"),
    ({"user": "a", "options": "--role=x"}, "role"),
    ({"user": "a", "options": "-c statement_timeout=5 -c application_name=a\\ b"}, None),
    ({"user": "a", "options": "-d 5"}, "-d"),
    ({"user": "a", "options": "-c"}, "-c"),
])
def test_startup_refusal(params: dict[str, str], refused: str | None) -> None:
    reason = startup_refusal(params)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_split_options_follows_backslash_escapes() -> None:
    assert split_options(r"-c a=b\ c  --x=y") == ["-c", "a=b c", "--x=y"]
    with pytest.raises(ValueError):
        split_options("-c a=b\\")


def test_md5_response_matches_postgres_definition() -> None:
    inner = hashlib.md5(b"secretalice").hexdigest()  # noqa: S324
    expected = "md5" + hashlib.md5(inner.encode() + b"salt").hexdigest()  # noqa: S324
    assert md5_response("alice", "secret", b"salt") == expected


@pytest.mark.parametrize(("tag", "outcome"), [
    ("INSERT 0 3", {"command_tag": "INSERT 0 3", "rows": 3}),
    ("UPDATE 0", {"command_tag": "UPDATE 0", "rows": 0}),
    ("SELECT 12", {"command_tag": "SELECT 12", "rows": 12}),
    ("BEGIN", {"command_tag": "BEGIN"}),
])
def test_command_outcome(tag: str, outcome: dict[str, Any]) -> None:
    assert command_outcome(tag) == outcome


class _Cfg:
    def __init__(self, upstream: str, password_env: str | None = None):
        self.upstream, self.password_env = upstream, password_env


def test_upstream_target_from_url_and_env() -> None:
    target = UpstreamTarget.from_config(_Cfg("postgresql://app:p%40ss@db:6543/crm?sslmode=verify-full"), {})
    assert (target.host, target.port, target.user, target.password, target.dbname, target.sslmode) == (
        "db", 6543, "app", "p@ss", "crm", "verify-full")
    assert target.isolated and "p@ss" not in repr(target)
    from_env = UpstreamTarget.from_config(_Cfg("postgresql://app@db/crm", "PW"), {"PW": "envpw"})
    assert from_env.password == "envpw" and from_env.sslmode == "prefer" and from_env.port == 5432
    assert not UpstreamTarget.from_config(_Cfg("postgresql://app@db/crm"), {}).isolated
    with pytest.raises(UpstreamError, match="PW"):
        UpstreamTarget.from_config(_Cfg("postgresql://app@db/crm", "PW"), {})
    with pytest.raises(UpstreamError, match="sslmode"):
        UpstreamTarget.from_config(_Cfg("postgresql://app@db/crm?sslmode=bogus"), {})


# ---- the listener in-process --------------------------------------------------------------------


class InProcess:
    """A Sidecar and its Postgres listener on an event loop in a background thread."""

    def __init__(self, directory: Path, systems: dict[str, Any], roles: list[str] | None = None):
        config = write_config(directory, systems=systems,
                              workflows={"crm_sync": ["postgres.select_rows", "postgres.insert_row"]},
                              policies=["no_unbounded_write"], roles=roles)
        self.sidecar = Sidecar(load_config(config)).start()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listener: PostgresListener = self._call(start_listener(self.sidecar))
        host, _, port = self.listener.address.rpartition(":")
        self.host, self.port = host, int(port)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def url(self) -> str:
        return f"postgresql://agent@{self.host}:{self.port}/app?sslmode=disable"

    def close(self) -> None:
        self._call(self.listener.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.sidecar.close()


@pytest.fixture
def listener(tmp_path: Path, pg_server: PgServer) -> Iterator[InProcess]:  # noqa: F811
    running = InProcess(tmp_path, {"postgres": {"upstream": pg_server.url()}})
    yield running
    running.close()


def _raw_session(running: InProcess) -> socket.socket:
    sock = socket.create_connection((running.host, running.port), timeout=10)
    sock.sendall(StartupMessage(3 << 16, (("user", "agent"), ("database", "app"))).encode())
    _read_until_ready(sock)
    return sock


def _read_until_ready(sock: socket.socket, count: int = 1) -> list[Any]:
    """Backend messages up to the ``count``-th ReadyForQuery (or until the server closes)."""
    data, ready = b"", 0
    messages: list[Any] = []
    while True:
        while len(data) < 5 or len(data) < 1 + int.from_bytes(data[1:5], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                return messages
            data += chunk
        length = int.from_bytes(data[1:5], "big")
        message = decode_backend(Frame(data[:1], data[5:1 + length]))
        data = data[1 + length:]
        messages.append(message)
        if type(message).__name__ == "ReadyForQuery":
            ready += 1
            if ready == count:
                assert not data, "unexpected bytes after ReadyForQuery"
                return messages


def test_malformed_stream_ends_only_that_session(listener: InProcess) -> None:
    bad = _raw_session(listener)
    bad.sendall(b"Q\xff\xff\xff\xff")  # a length no message may have
    answers = _read_until_ready(bad)
    assert any(isinstance(m, ErrorResponse) and m.sqlstate == "08P01" for m in answers)
    assert bad.recv(1) == b""  # closed
    bad.close()
    with psycopg.connect(listener.url(), autocommit=True) as conn:  # the listener carries on
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_chunks_split_anywhere(listener: InProcess) -> None:
    sock = _raw_session(listener)
    message = Query("SELECT 40 + 2").encode() * 3
    for i in range(len(message)):  # one byte at a time
        sock.sendall(message[i:i + 1])
    seen = _read_until_ready(sock, 3)
    rows = [m.values for m in seen if type(m).__name__ == "DataRow"]
    assert rows == [(b"42",)] * 3
    sock.close()


def test_unparseable_statement_refused_with_receipt(listener: InProcess) -> None:
    with psycopg.connect(listener.url(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="does not parse"):
            conn.execute("SELEC 1", prepare=False)
        assert conn.execute("SELECT 3").fetchone() == (3,)


def test_bind_of_unknown_statement_refused(listener: InProcess) -> None:
    sock = _raw_session(listener)
    from enact_proxy.pgwire.messages import Bind, Execute, Sync

    sock.sendall(Bind("", "never_parsed").encode() + Execute("").encode() + Sync().encode())
    answers = _read_until_ready(sock)
    errors = [m for m in answers if isinstance(m, ErrorResponse)]
    assert errors and errors[0].sqlstate == "42501" and "never_parsed" in (errors[0].message or "")
    assert type(answers[-1]).__name__ == "ReadyForQuery" and answers[-1].status == "I"
    sock.close()


def test_function_call_message_refused(listener: InProcess) -> None:
    sock = _raw_session(listener)
    from enact_proxy.pgwire.messages import FunctionCall

    sock.sendall(FunctionCall(1598).encode())  # pg_catalog.random, but any fast-path call is execute_sql
    answers = _read_until_ready(sock)
    assert any(isinstance(m, ErrorResponse) and m.sqlstate == "42501" for m in answers)
    sock.close()


def test_unknown_cancel_key_is_ignored(listener: InProcess) -> None:
    sock = socket.create_connection((listener.host, listener.port), timeout=10)
    sock.sendall(CancelRequest(12345, b"\x00\x01\x02\x03").encode())
    assert sock.recv(1) == b""
    sock.close()


def test_md5_role_logged_in_by_sidecar(tmp_path: Path, pg_server: PgServer) -> None:  # noqa: F811
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("SET password_encryption = 'md5'")
        conn.execute("DROP ROLE IF EXISTS md5_user")
        conn.execute("CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'")
    running = InProcess(tmp_path, {"postgres": {"upstream": pg_server.url(user="md5_user", password="md5-secret")}})
    try:
        with psycopg.connect(running.url(), autocommit=True) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
    finally:
        running.close()


def test_session_cap_refuses_the_excess_clearly(tmp_path: Path, pg_server: PgServer) -> None:  # noqa: F811
    running = InProcess(tmp_path, {"postgres": {"upstream": pg_server.url(), "max_sessions": 2}})
    try:
        first = psycopg.connect(running.url(), autocommit=True)
        second = psycopg.connect(running.url(), autocommit=True)
        with pytest.raises(psycopg.OperationalError, match="Blocked by Enact: too many sessions") as refused:
            psycopg.connect(running.url(), autocommit=True)
        assert "max_sessions is 2" in str(refused.value)
        raw = socket.create_connection((running.host, running.port), timeout=10)  # the SQLSTATE, on the wire
        raw.sendall(StartupMessage(3 << 16, (("user", "agent"), ("database", "app"))).encode())
        (error,) = _read_until_ready(raw)
        assert isinstance(error, ErrorResponse) and error.sqlstate == "53300" and error.get("S") == "FATAL"
        assert raw.recv(1) == b""
        raw.close()
        # at the cap, a cancel request is no session: never answered with the 53300 refusal
        cancel = socket.create_connection((running.host, running.port), timeout=10)
        cancel.sendall(CancelRequest(12345, b"\x00\x01\x02\x03").encode())
        assert cancel.recv(1) == b""
        cancel.close()
        assert first.execute("SELECT 1").fetchone() == (1,)
        assert second.execute("SELECT 2").fetchone() == (2,)
        second.close()  # a slot frees when its session ends
        with psycopg.connect(running.url(), autocommit=True) as third:
            assert third.execute("SELECT 3").fetchone() == (3,)
        first.close()
        assert running._call(_active(running.listener)) == 0
    finally:
        running.close()


async def _active(listener: PostgresListener) -> int:
    for _ in range(100):  # the listener notices closed sessions on its loop
        if listener.active_sessions == 0:
            break
        await asyncio.sleep(0.02)
    return listener.active_sessions


def test_session_cap_config_is_validated() -> None:
    from pydantic import ValidationError

    from connectors.postgres import Config

    assert Config(upstream="postgresql://a@db/x").max_sessions == 64
    for bad in (0, -1, "10", True, 1.5):
        with pytest.raises(ValidationError, match="max_sessions"):
            Config(upstream="postgresql://a@db/x", max_sessions=bad)
