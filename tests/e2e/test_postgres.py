"""A real ``enact-proxy run`` in front of a real PostgreSQL, driven by psql, psycopg, asyncpg and SQLAlchemy.

Ground truth is the database itself, read directly (not through the sidecar): a refused write is not there.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.harness import RunningSidecar, start_sidecar, wait_until, write_config
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the session fixture

WORKFLOWS = {"crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row"]}
POLICIES: list[Any] = [
    {"contractor_cannot_write_pii": {"pii_fields": ["email", "phone", "ssn", "date_of_birth"]}},
    "no_unbounded_write",
]


def _sidecar(directory: Path, pg: PgServer, *, roles: list[str] | None = None,
             systems: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> RunningSidecar:
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory, systems=systems or {"postgres": {"upstream": pg.url()}}, workflows=WORKFLOWS,
                 policies=POLICIES, roles=roles)
    sidecar = start_sidecar(directory, env=env)
    assert sidecar.postgres, "the sidecar did not report a postgres listener"
    return sidecar


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[RunningSidecar]:  # noqa: F811
    running = _sidecar(tmp_path_factory.mktemp("pg-sidecar"), pg_server)
    yield running
    assert running.stop() == 0


@pytest.fixture
def table(pg_server: PgServer) -> Iterator[str]:  # noqa: F811
    name = f"leads_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text, email text)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 'seed', 'seed@acme.com')")
    yield name
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def agent_url(sidecar: RunningSidecar) -> str:
    """The agent's DATABASE_URL: no password (credential isolation)."""
    return f"postgresql://agent@{sidecar.postgres}/app?sslmode=disable"


def rows(pg: PgServer, table: str) -> list[tuple[Any, ...]]:
    """What is really in the database, read directly."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        return conn.execute(f"SELECT id, name, email FROM {table} ORDER BY id").fetchall()


def psql(sidecar: RunningSidecar, sql: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(["psql", agent_url(sidecar), "-X", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, env=env, timeout=30, check=False)


# ---- psql (simple protocol) -----------------------------------------------------------------


def test_psql_allowed_insert_lands(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    done = psql(sidecar, f"INSERT INTO {table} (id, name) VALUES (2, 'ok')")
    assert done.returncode == 0, done.stderr
    assert "INSERT 0 1" in done.stdout
    assert (2, "ok", None) in rows(pg_server, table)


def test_psql_unbounded_delete_refused(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    done = psql(sidecar, f"DELETE FROM {table}")
    assert done.returncode != 0
    assert "Blocked by Enact: " in done.stderr
    assert rows(pg_server, table) == [(1, "seed", "seed@acme.com")]


def test_psql_multi_statement_query_refused_whole(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                  table: str) -> None:
    done = psql(sidecar, f"INSERT INTO {table} (id, name) VALUES (5, 'first'); UPDATE {table} SET name = 'x'")
    assert done.returncode != 0
    assert "no_unbounded_write" in done.stderr
    assert rows(pg_server, table) == [(1, "seed", "seed@acme.com")]


# ---- psycopg ----------------------------------------------------------------------------------


def test_psycopg_refusal_names_receipt_and_session_stays_usable(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                                table: str) -> None:
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(f"DELETE FROM {table} WHERE true", prepare=False)
        message = str(refused.value.diag.message_primary)
        assert message.startswith("Blocked by Enact: no registered workflow allows postgres.delete_row")
        detail = refused.value.diag.message_detail or ""
        assert detail.startswith("receipt ")
        run_id = detail.removeprefix("receipt ").strip()
        # The refusal reaches the agent only once its receipt is on disk: no waiting here.
        assert [r for r in sidecar.receipts() if r["run_id"] == run_id], "BLOCK receipt not written before the answer"
        receipt = sidecar.receipt(run_id)
        assert receipt["decision"] == "BLOCK" and receipt["action"] == "postgres.delete_row"
        # the same session goes on: simple and extended protocol
        assert conn.execute(f"SELECT count(*) FROM {table}", prepare=False).fetchone() == (1,)
        conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (3, "after"))
    assert [r[0] for r in rows(pg_server, table)] == [1, 3]


def test_psycopg_pass_receipt_has_outcome_and_no_parameters(sidecar: RunningSidecar, table: str) -> None:
    secret_value = f"param-{uuid.uuid4().hex}"
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (7, secret_value))

    def inserts() -> list[dict[str, Any]]:
        return [r for r in sidecar.receipts()
                if (r["payload"].get("statement") or "").startswith(f"INSERT INTO {table}")]

    # A PASS's intent is durable before forwarding; its receipt follows the outcome.
    wait_until(inserts, what="the insert's receipt")
    receipt = inserts()[-1]
    assert receipt["decision"] == "PASS"
    taken = receipt["actions_taken"][0]
    assert taken["success"] is True and taken["output"]["command_tag"] == "INSERT 0 1"
    assert secret_value.encode() not in sidecar.log_text()


def test_refused_write_inside_transaction_fails_it(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                   table: str) -> None:
    with psycopg.connect(agent_url(sidecar)) as conn:
        conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (4, "in-tx"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table}")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.commit()  # PostgreSQL answers a COMMIT of a failed transaction with ROLLBACK
    assert [r[0] for r in rows(pg_server, table)] == [1]


def test_psql_refused_write_inside_begin_commit_commits_nothing(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                                table: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    script = (f"BEGIN;\nINSERT INTO {table} (id, name) VALUES (8, 'half');\nDELETE FROM {table};\n"
              "COMMIT;\n")
    done = subprocess.run(["psql", agent_url(sidecar), "-X"], input=script, capture_output=True, text=True,
                          env=env, timeout=30, check=False)
    assert "Blocked by Enact" in done.stderr
    assert "ROLLBACK" in done.stdout  # what PostgreSQL says to COMMIT of a failed transaction
    assert [r[0] for r in rows(pg_server, table)] == [1]


def test_psycopg_pipeline_refusal_runs_nothing_of_its_batch(sidecar: RunningSidecar, pg_server: PgServer,  # noqa: F811
                                                             table: str) -> None:
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (10, "batch"))
            conn.execute(f"DELETE FROM {table} WHERE id > %s", (0,))
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
        with conn.pipeline():
            conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (11, "ok"))
            conn.execute(f"UPDATE {table} SET name = %s WHERE id = %s", ("seed2", 1))
    assert rows(pg_server, table) == [(1, "seed2", "seed@acme.com"), (11, "ok", None)]


def test_psycopg_client_cursor_and_prepared(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    with psycopg.connect(agent_url(sidecar), autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (20, "client-side"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table} WHERE 1 = %s", (1,))
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        for i in range(8):  # psycopg prepares server-side after 5 runs
            assert conn.execute(f"SELECT name FROM {table} WHERE id = %s", (20,), prepare=i > 2).fetchone() \
                == ("client-side",)
    assert [r[0] for r in rows(pg_server, table)] == [1, 20]


def test_cancel_reaches_the_database(sidecar: RunningSidecar) -> None:
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT count(*) FROM generate_series(1, 100000000000) AS g")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


# ---- asyncpg and SQLAlchemy -------------------------------------------------------------------


def test_asyncpg_prepared_statements(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    import asyncpg

    async def agent() -> None:
        conn = await asyncpg.connect(agent_url(sidecar))
        try:
            insert = await conn.prepare(f"INSERT INTO {table} (id, name) VALUES ($1, $2)")
            await insert.fetch(30, "asyncpg")
            await conn.execute(f"INSERT INTO {table} (id, name) VALUES ($1, $2)", 31, "again")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {table}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.prepare(f"TRUNCATE {table}")
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id >= $1", 30) == 2
        finally:
            await conn.close()

    asyncio.run(agent())
    assert [r[0] for r in rows(pg_server, table)] == [1, 30, 31]


def test_sqlalchemy_on_psycopg(sidecar: RunningSidecar, pg_server: PgServer, table: str) -> None:  # noqa: F811
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg://agent@{sidecar.postgres}/app?sslmode=disable")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (:id, :name)"), {"id": 40, "name": "sa"})
        with pytest.raises(sa.exc.ProgrammingError, match="Blocked by Enact"), engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (41, 'lost')"))
            conn.execute(sa.text(f"DELETE FROM {table}"))
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 2
    finally:
        engine.dispose()
    assert [r[0] for r in rows(pg_server, table)] == [1, 40]


# ---- roles, receipts, isolation -------------------------------------------------------------------


def test_contractor_pii_column_write_refused(tmp_path: Path, pg_server: PgServer, table: str) -> None:  # noqa: F811
    running = _sidecar(tmp_path / "contractor", pg_server, roles=["contractor"])
    try:
        with psycopg.connect(agent_url(running), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="contractor_cannot_write_pii"):
                conn.execute(f"UPDATE {table} SET email = %s WHERE id = %s", ("x@evil.com", 1))
            conn.execute(f"UPDATE {table} SET name = %s WHERE id = %s", ("renamed", 1))
    finally:
        assert running.stop() == 0
    assert rows(pg_server, table) == [(1, "renamed", "seed@acme.com")]


def test_agent_password_checked_when_configured(tmp_path: Path, pg_server: PgServer) -> None:  # noqa: F811
    systems = {"postgres": {"upstream": pg_server.url(), "agent_password_env": "AGENT_DB_TOKEN"}}
    running = _sidecar(tmp_path / "agentpw", pg_server, systems=systems, env={"AGENT_DB_TOKEN": "local-token"})
    try:
        url = f"postgresql://agent:wrong@{running.postgres}/app?sslmode=disable"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url)
        url = f"postgresql://agent:local-token@{running.postgres}/app?sslmode=disable"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert running.stop() == 0
    assert pg_server.password not in "".join(running.output)


def test_agent_login_relayed_without_upstream_password(tmp_path: Path, pg_server: PgServer) -> None:  # noqa: F811
    systems = {"postgres": {"upstream": pg_server.url(password="")}}
    running = _sidecar(tmp_path / "relay", pg_server, systems=systems)
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"postgresql://{pg_server.user}@{running.postgres}/app?sslmode=disable")
        url = f"postgresql://{pg_server.user}:{pg_server.password}@{running.postgres}/app?sslmode=disable"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
    finally:
        assert running.stop() == 0


def test_startup_settings_that_change_role_or_search_path_refused(sidecar: RunningSidecar) -> None:
    for options in ("-c search_path=evil", "-c role=postgres", "--search_path=x"):
        with pytest.raises(psycopg.OperationalError, match="Blocked by Enact"):
            psycopg.connect(agent_url(sidecar), options=options)
    with pytest.raises(psycopg.OperationalError, match="replication"):
        psycopg.connect(agent_url(sidecar), replication="database")
    with psycopg.connect(agent_url(sidecar), options="-c statement_timeout=5000") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)


def test_receipts_verify(sidecar: RunningSidecar, table: str) -> None:
    with psycopg.connect(agent_url(sidecar), autocommit=True) as conn:
        conn.execute(f"SELECT * FROM {table}")
    done = subprocess.run(["enact-proxy", "receipts", "verify", "--dir", str(sidecar.receipts_dir)],
                          capture_output=True, text=True, cwd=sidecar.directory, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
