"""PostgreSQL's own regression SQL through the classifier, checked against PostgreSQL itself.

A selection of ``src/test/regress/sql/*.sql`` (``tests/testdata/pg_regress``, PostgreSQL licence in
``COPYRIGHT`` beside it) is split into statements as psql would send them and run, file by file, on a
throwaway PostgreSQL cluster of its own (statements there create roles, change session authorization and
so on). Every statement the classifier calls read-only (only ``select_rows``, or no action) is first run
inside a read-only transaction (``BEGIN READ ONLY``, or ``SAVEPOINT`` + ``SET TRANSACTION READ ONLY``
inside a transaction block): PostgreSQL refusing it there (SQLSTATE 25006, read_only_sql_transaction)
means it writes, so the classifier was wrong. A read-only transaction is a lower bound (PostgreSQL
allows temp tables, advisory locks, NOTIFY there), so this catches misses, never proves safety. Then the
statement runs for real, so later statements of the file see the objects it made.

Also checked: no statement the classifier cannot parse is one PostgreSQL ran without error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import pq

from enact_proxy.pgwire.classify import CursorOp, SqlParseError, classify_statements
from tests.pg_fixtures import PgServer, own_postgres
from tests.pg_regress_corpus import files, statements

READ_ONLY = "25006"
STATEMENT_TIMEOUT = "3s"
MIN_STATEMENTS = 10_000  # the selection holds ~15.6k; fewer means the splitter broke


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgServer]:
    """A PostgreSQL of this module's own: the corpus changes roles and cluster-wide state."""
    with own_postgres() as server:
        yield server


@dataclass
class Figures:
    statements: int = 0
    psql_variables: int = 0  # set aside: psql would have substituted text we do not have
    parsed: int = 0
    unparsed_postgres_ran: list[str] = field(default_factory=list)
    read_only: int = 0  # classified read-only
    probed: int = 0  # of those, run inside a read-only transaction
    violations: list[str] = field(default_factory=list)
    lexed_otherwise: int = 0  # unparsed, run by PostgreSQL with standard_conforming_strings off


def _cursor_runs(cursors: dict[str, list[str]], ops: tuple[CursorOp, ...]) -> list[str]:
    """The session's rule (enact_proxy.pgwire.session): a FETCH / MOVE is what its cursor runs; a cursor
    never declared is refused (here: "refused", never read-only). Declarations are kept until CLOSE."""
    runs: list[str] = []
    for op in ops:
        if op.op == "declare" and op.name is not None:
            cursors.setdefault(op.name, []).extend(action for action, _ in op.actions)
        elif op.op == "close":
            if op.name is None:
                cursors.clear()
            else:
                cursors.pop(op.name, None)
        elif op.op == "fetch":
            runs.extend(cursors.get(op.name or "", ["refused"]))
    return runs


class Session:
    """One connection in autocommit; statements go as simple Queries (psql's way)."""

    def __init__(self, url: str):
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)

    def run(self, sql: str) -> str | None:
        """The SQLSTATE of the error, or None; reconnects when a statement ended the session."""
        if self.conn.closed or self.conn.pgconn.status != pq.ConnStatus.OK:
            self.conn = psycopg.connect(self.url, autocommit=True)
        result = self.conn.pgconn.exec_(sql.encode("utf-8"))
        if result.status in (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH):
            self.conn.close()  # never reached: COPY is not run; but never hang on one
            return "COPY"
        if result.status == pq.ExecStatus.FATAL_ERROR:
            state = result.error_field(pq.DiagnosticField.SQLSTATE)
            return state.decode() if state else "?????"
        return None

    @property
    def status(self) -> pq.TransactionStatus:
        return self.conn.pgconn.transaction_status

    def probe_read_only(self, sql: str) -> str | None:
        """Run ``sql`` in a read-only transaction and roll it back; the SQLSTATE of its error, or None."""
        if self.status == pq.TransactionStatus.IDLE:
            self.run("BEGIN READ ONLY")
            outcome = self.run(sql)
            self.run("ROLLBACK")
            return outcome
        self.run("SAVEPOINT enact_probe")
        self.run("SET TRANSACTION READ ONLY")
        outcome = self.run(sql)
        self.run("ROLLBACK TO SAVEPOINT enact_probe")
        self.run("RELEASE SAVEPOINT enact_probe")
        return outcome

    def close(self) -> None:
        self.conn.close()


def _check_corpus(server: PgServer) -> Figures:
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS regression")
        admin.execute("CREATE DATABASE regression")
        admin.execute(f"ALTER DATABASE regression SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        admin.execute("ALTER DATABASE regression SET lock_timeout = '1s'")
    url = server.url(dbname="regression")
    figures = Figures()
    for path in files():
        session = Session(url)
        cursors: dict[str, list[str]] = {}
        try:
            for statement in statements(path):
                figures.statements += 1
                if statement.psql_variable:
                    figures.psql_variables += 1
                    continue
                where = f"{statement.file}:{statement.line}: {statement.text[:200]!r}"
                try:
                    actions, ops = classify_statements(statement.text)
                except SqlParseError:
                    if session.run(statement.text) is None:
                        if session.conn.pgconn.parameter_status(b"standard_conforming_strings") == b"off":
                            figures.lexed_otherwise += 1  # after SET standard_conforming_strings (execute_sql)
                        else:
                            figures.unparsed_postgres_ran.append(where)
                    continue
                figures.parsed += 1
                kinds = {a.payload.get("kind") for a in actions}
                if "CopyStmt" in kinds or statement.text.lstrip()[:4].lower() == "copy":
                    continue  # its data came from psql, which is not here
                names = [a.action for a in actions] + _cursor_runs(cursors, ops)
                if all(name == "select_rows" for name in names):
                    figures.read_only += 1
                    transaction_control = not actions and statement.text.split(None, 1)[0].upper() in (
                        "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
                        "PREPARE")
                    if not transaction_control and session.status != pq.TransactionStatus.INERROR:
                        figures.probed += 1
                        if session.probe_read_only(statement.text) == READ_ONLY:
                            figures.violations.append(where)
                session.run(statement.text)
        finally:
            session.close()
    return figures


def test_no_statement_postgres_refuses_read_only_is_classified_read_only(cluster: PgServer) -> None:
    figures = _check_corpus(cluster)
    print(f"\nregression corpus: {figures.statements} statements in {len(files())} files; "
          f"{figures.psql_variables} with psql variables set aside; parsed {figures.parsed} "
          f"({figures.parsed / (figures.statements - figures.psql_variables):.2%}); classified read-only "
          f"{figures.read_only}, checked in a read-only transaction {figures.probed}; "
          f"violations {len(figures.violations)}; unparsed but run by PostgreSQL with "
          f"standard_conforming_strings off {figures.lexed_otherwise}")
    assert figures.statements >= MIN_STATEMENTS
    assert figures.probed >= MIN_STATEMENTS // 4
    assert not figures.violations, "classified read-only, refused by PostgreSQL in a read-only transaction:\n" \
        + "\n".join(figures.violations)
    assert not figures.unparsed_postgres_ran, "the classifier cannot parse what PostgreSQL ran:\n" \
        + "\n".join(figures.unparsed_postgres_ran)
