"""FETCH / MOVE and cursors through a real ``enact-proxy run`` and a real PostgreSQL, on a raw socket.

A write prepared and bound through the extended protocol but never Executed used to be runnable by
``FETCH`` / ``MOVE`` of its portal without judgement (no intent, no receipt). Each FETCH / MOVE is now
judged as what the cursor it names runs; ground truth is the database, read directly.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from enact_proxy.pgwire.messages import (
    Bind,
    DataRow,
    ErrorResponse,
    Execute,
    Frame,
    Parse,
    Query,
    ReadyForQuery,
    StartupMessage,
    Sync,
    decode_backend,
)
from tests.e2e.harness import RunningSidecar, start_sidecar, wait_until, write_config
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the session fixture

WORKFLOWS = {"crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row"]}
POLICIES: list[Any] = ["no_unbounded_write", "tests.e2e.pg_cursor_policies:no_runs_through_forbidden_cursor"]


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[RunningSidecar]:  # noqa: F811
    directory = tmp_path_factory.mktemp("pg-cursors")
    write_config(directory, systems={"postgres": {"upstream": pg_server.url()}}, workflows=WORKFLOWS,
                 policies=POLICIES)
    # The custom policy lives in this repository's tests package: let the sidecar import it.
    running = start_sidecar(directory, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    yield running
    assert running.stop() == 0


@pytest.fixture
def table(pg_server: PgServer) -> Iterator[str]:  # noqa: F811
    name = f"cur_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 'seed')")
    yield name
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def ids(pg: PgServer, table: str) -> list[int]:
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]


class Wire:
    """One agent session on a raw socket: send any bytes, read answers up to ReadyForQuery."""

    def __init__(self, sidecar: RunningSidecar):
        host, _, port = (sidecar.postgres or "").rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.data = b""
        self.sock.sendall(StartupMessage(3 << 16, (("user", "agent"), ("database", "app"))).encode())
        self.until_ready()

    def send(self, *messages: Any) -> None:
        self.sock.sendall(b"".join(m.encode() for m in messages))  # pipelined: one write

    def until_ready(self, count: int = 1) -> list[Any]:
        messages: list[Any] = []
        while count:
            while len(self.data) < 5 or len(self.data) < 1 + int.from_bytes(self.data[1:5], "big"):
                chunk = self.sock.recv(65536)
                assert chunk, "the sidecar closed the session"
                self.data += chunk
            length = int.from_bytes(self.data[1:5], "big")
            message = decode_backend(Frame(self.data[:1], self.data[5:1 + length]))
            self.data = self.data[1 + length:]
            messages.append(message)
            if isinstance(message, ReadyForQuery):
                count -= 1
        return messages

    def close(self) -> None:
        self.sock.close()


def errors(messages: list[Any]) -> list[ErrorResponse]:
    return [m for m in messages if isinstance(m, ErrorResponse)]


def receipts_for(sidecar: RunningSidecar, needle: str) -> list[dict[str, Any]]:
    return [r for r in sidecar.receipts() if needle in (r["payload"].get("statement") or "")]


def test_bound_write_run_by_simple_fetch_is_judged_and_recorded(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                                 table: str) -> None:
    wire = Wire(sidecar)
    insert = f"INSERT INTO {table} (id, name) VALUES (50, 'via-fetch') RETURNING id"
    wire.send(Query("BEGIN"))
    wire.until_ready()
    wire.send(Parse("ins", insert), Bind("p", "ins"), Sync())  # prepared and bound, never Executed
    assert not errors(wire.until_ready())
    wire.send(Query("FETCH ALL FROM p"))
    answer = wire.until_ready()
    assert not errors(answer) and [m.values for m in answer if isinstance(m, DataRow)] == [(b"50",)]
    wire.send(Query("MOVE ALL IN p"))  # the portal is done: runs nothing more, but is judged too
    assert not errors(wire.until_ready())
    wire.send(Query("COMMIT"))
    wire.until_ready()
    wire.close()
    assert ids(pg_server, table) == [1, 50]
    wait_until(lambda: len(receipts_for(sidecar, insert)) == 2, what="the FETCH and MOVE receipts")
    fetch, move = receipts_for(sidecar, insert)  # none for Parse / Bind: they run nothing
    assert [fetch["action"], move["action"]] == ["postgres.insert_row", "postgres.insert_row"]
    assert fetch["payload"]["cursor"] == "p" and fetch["payload"]["fetch"] == "FETCH ALL FROM p"
    assert move["payload"]["fetch"] == "MOVE ALL IN p"
    assert fetch["decision"] == "PASS" and fetch["actions_taken"][0]["output"]["command_tag"] == "FETCH 1"


def test_bound_write_run_by_pipelined_extended_move_is_judged(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                               table: str) -> None:
    wire = Wire(sidecar)
    insert = f"INSERT INTO {table} (id, name) VALUES (60, 'via-move') RETURNING id"
    # One implicit transaction, one write: Parse/Bind a write, then MOVE it through the extended protocol.
    wire.send(Parse("w", insert), Bind("q", "w"), Parse("", "MOVE ALL IN q"), Bind("", ""), Execute(""), Sync())
    answer = wire.until_ready()
    wire.close()
    assert not errors(answer)
    assert ids(pg_server, table) == [1, 60]
    wait_until(lambda: receipts_for(sidecar, insert), what="the MOVE receipt")
    (move,) = receipts_for(sidecar, insert)
    assert move["payload"]["fetch"] == "MOVE ALL IN q" and move["actions_taken"][0]["success"] is True


def test_fetch_refused_by_policy_runs_nothing(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    wire = Wire(sidecar)
    insert = f"INSERT INTO {table} (id, name) VALUES (70, 'never') RETURNING id"
    for n, fetch in enumerate(("FETCH ALL FROM forbidden", "MOVE 1 IN forbidden")):
        # Parse and Bind pass (nothing runs yet); the FETCH / MOVE is judged by itself
        wire.send(Query("BEGIN"), Parse(f"x{n}", insert), Bind("forbidden", f"x{n}"), Sync(), Query(fetch))
        answer = wire.until_ready(3)
        (refused,) = errors(answer)
        assert refused.sqlstate == "42501"
        assert (refused.message or "").startswith("Blocked by Enact: no_runs_through_forbidden_cursor")
        assert (refused.get("D") or "").startswith("receipt ")
        assert answer[-1].status == "E"  # the transaction is failed: nothing of it can commit
        wire.send(Query("COMMIT"))
        wire.until_ready()
    # the session goes on, and the same statement through another portal passes
    wire.send(Query("BEGIN"), Parse("y", insert), Bind("fine", "y"), Sync(), Query("FETCH ALL FROM fine"),
              Query("COMMIT"))
    assert not errors(wire.until_ready(4))
    wire.close()
    assert ids(pg_server, table) == [1, 70]
    blocked = [r for r in receipts_for(sidecar, insert) if r["decision"] == "BLOCK"]
    assert {r["payload"]["fetch"] for r in blocked} == {"FETCH ALL FROM forbidden", "MOVE 1 IN forbidden"}


def test_fetch_of_a_cursor_enact_never_saw_is_refused(sidecar: RunningSidecar) -> None:
    wire = Wire(sidecar)
    wire.send(Query("BEGIN"), Query("FETCH ALL FROM nowhere"), Query("ROLLBACK"))
    answer = wire.until_ready(3)
    (refused,) = errors(answer)
    assert refused.sqlstate == "42501" and "not declared or bound through Enact" in (refused.message or "")
    # a cursor declared without HOLD is gone once its transaction ends: FETCH of it is refused by Enact
    wire.send(Query("BEGIN; DECLARE gone CURSOR FOR SELECT 1; COMMIT"))
    assert not errors(wire.until_ready())
    wire.send(Query("FETCH ALL FROM gone"))
    answer = wire.until_ready()
    (refused,) = errors(answer)
    assert refused.sqlstate == "42501" and "'gone'" in (refused.message or "")
    wire.close()


def test_declared_cursors_are_judged_when_declared_and_each_fetch(sidecar: RunningSidecar, table: str) -> None:
    wire = Wire(sidecar)
    # one Query: the FETCH sees the DECLARE before it
    text = f"DECLARE c1 CURSOR FOR SELECT id FROM {table} WHERE id = 1"
    wire.send(Query(f"BEGIN; {text}; FETCH 1 FROM c1; MOVE ALL IN c1; CLOSE c1; COMMIT"))
    answer = wire.until_ready()
    assert not errors(answer) and [m.values for m in answer if isinstance(m, DataRow)] == [(b"1",)]
    # WITH HOLD outlives its transaction
    hold = f"DECLARE h CURSOR WITH HOLD FOR SELECT name FROM {table}"
    wire.send(Query(hold), Query("FETCH ALL FROM h"), Query("CLOSE h"), Query("FETCH ALL FROM h"))
    answer = wire.until_ready(4)
    assert [m.values for m in answer if isinstance(m, DataRow)] == [(b"seed",)]
    (refused,) = errors(answer)  # after CLOSE: unknown again
    assert refused.sqlstate == "42501"
    wire.close()
    wait_until(lambda: len(receipts_for(sidecar, text)) == 3, what="DECLARE, FETCH and MOVE receipts")
    runs = [r["payload"].get("fetch") for r in receipts_for(sidecar, text)]
    assert runs == [None, "FETCH 1 FROM c1", "MOVE ALL IN c1"]
    assert [r["payload"].get("fetch") for r in receipts_for(sidecar, hold)] == [None, "FETCH ALL FROM h"]


def test_row_locking_cursor_is_an_update_of_the_locked_table(sidecar: RunningSidecar, table: str) -> None:
    wire = Wire(sidecar)
    bounded = f"DECLARE l CURSOR FOR SELECT * FROM {table} WHERE id = 1 FOR UPDATE"
    wire.send(Query("BEGIN"), Query(bounded), Query("FETCH ALL FROM l"), Query("COMMIT"))
    assert not errors(wire.until_ready(4))
    # an unbounded lock is an unbounded update: refused at DECLARE, so there is nothing to FETCH
    wire.send(Query("BEGIN"), Query(f"DECLARE u CURSOR FOR SELECT * FROM {table} FOR UPDATE"), Query("ROLLBACK"))
    (refused,) = errors(wire.until_ready(3))
    assert f"no_unbounded_write: SELECT ... FOR UPDATE of {table} has no WHERE clause" in (refused.message or "")
    wire.close()
    wait_until(lambda: len(receipts_for(sidecar, bounded)) == 4, what="the locking cursor's receipts")
    locks = [r for r in receipts_for(sidecar, bounded) if r["action"] == "postgres.update_row"]
    assert [r["payload"].get("fetch") for r in locks] == [None, "FETCH ALL FROM l"]
    assert all(r["payload"]["locking"] == "FOR UPDATE" and r["payload"]["table"] == table for r in locks)


def test_psycopg_server_side_cursor(sidecar: RunningSidecar, table: str) -> None:
    url = f"postgresql://agent@{sidecar.postgres}/app?sslmode=disable"
    with psycopg.connect(url) as conn:
        with conn.cursor("named_cur") as cur:
            cur.execute(f"SELECT id, name FROM {table} WHERE id >= %s", (1,))
            assert cur.fetchmany(5) == [(1, "seed")]
        conn.commit()

    def runs() -> list[dict[str, Any]]:
        return [r for r in receipts_for(sidecar, f"FROM {table} WHERE id >=") if r["payload"].get("cursor")]

    wait_until(runs, what="the FETCH receipt")
    assert all(r["decision"] == "PASS" and r["action"] == "postgres.select_rows" for r in runs())


def test_a_name_declared_too_often_is_refused_until_closed(sidecar: RunningSidecar) -> None:
    from enact_proxy.pgwire.session import MAX_DECLARATIONS

    wire = Wire(sidecar)
    wire.send(Query("DECLARE dup CURSOR WITH HOLD FOR SELECT 1"))
    assert not errors(wire.until_ready())
    for _ in range(MAX_DECLARATIONS):  # each fails upstream (the cursor exists), each is remembered
        wire.send(Query("DECLARE dup CURSOR WITH HOLD FOR SELECT 2"))
        (exists,) = errors(wire.until_ready())
        assert exists.sqlstate == "42P03"  # duplicate_cursor
    wire.send(Query("FETCH ALL FROM dup"))
    (refused,) = errors(wire.until_ready())
    assert refused.sqlstate == "42501"
    wire.send(Query("CLOSE dup"), Query("DECLARE dup CURSOR WITH HOLD FOR SELECT 3"), Query("FETCH ALL FROM dup"))
    answer = wire.until_ready(3)
    assert not errors(answer) and [m.values for m in answer if isinstance(m, DataRow)] == [(b"3",)]
    wire.close()
