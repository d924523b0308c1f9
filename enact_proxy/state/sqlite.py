"""The embedded store: one SQLite file, shared by every sidecar on the host that names it.

Atomicity: every transaction starts with ``BEGIN IMMEDIATE``, which takes SQLite's single write lock
before the first read. Every other claim — on this connection, another thread's or another process's —
waits for it (up to the busy timeout) and then reads what it committed, so check-and-claim is
serialisable. WAL mode keeps readers from blocking the writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from enact_proxy.state._base import Rollback, SqlStore, iter_migrations
from enact_proxy.state.claims import StateStoreError


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)


class SqliteStateStore(SqlStore):
    def __init__(self, path: Path | str = ":memory:", *, timeout: float = 2.0, url: str | None = None):
        super().__init__()
        self.path = str(path)
        self.url = url or f"sqlite:///{self.path}"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._connect()  # a file that cannot be opened at all is a start-up error

    @contextlib.contextmanager
    def _tx(self, lock_keys: Sequence[str] = ()) -> Iterator[_SqliteTx]:
        del lock_keys  # BEGIN IMMEDIATE already excludes every other writer
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield _SqliteTx(db)
                except Rollback:
                    db.execute("ROLLBACK")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                else:
                    db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._drop()
                raise StateStoreError(f"state store {self.url} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._connect()
        assert self._db is not None
        return self._db

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
            _migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _drop(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _migrate(db: sqlite3.Connection) -> None:
    """Create or upgrade the schema; ``PRAGMA user_version`` counts the steps applied, under the write lock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        applied = db.execute("PRAGMA user_version").fetchone()[0]
        for version, statements in iter_migrations(applied):
            for statement in statements:
                db.execute(statement)
            if version == 1 and db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
                                           ).fetchone():
                # The first release counted tasks in `events (key, at)`; carry those counts over.
                db.execute("INSERT INTO enact_claims (key, kind, at, expires, owner) "
                           "SELECT 'limit_tasks_per_contact:' || key, 'limit', at, at + 7 * 86400, 'migrated' "
                           "FROM events WHERE key LIKE 'tasks:%'")
                db.execute("DROP TABLE events")
            db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
