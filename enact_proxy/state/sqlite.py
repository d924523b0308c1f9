"""The embedded store: one SQLite file, shared by every sidecar on the host that names it.

Atomicity: a claim runs in ``BEGIN IMMEDIATE``, which takes SQLite's single write lock before the
first read. Every other claim — on this connection, another thread's or another process's — waits for
it (up to the busy timeout) and then reads what it committed, so check-and-claim is serialisable.
WAL mode keeps readers from blocking the writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from enact_proxy.state import _base
from enact_proxy.state.claims import Claim, Conflict, StateStoreError

SCHEMA_VERSION = 1
_INSERT = "INSERT INTO enact_claims (key, kind, at, expires, owner) VALUES (?, ?, ?, ?, ?)"


class SqliteStateStore:
    def __init__(self, path: Path | str = ":memory:", *, timeout: float = 2.0, url: str | None = None):
        self.path = str(path)
        self.url = url or f"sqlite:///{self.path}"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._claims_since_prune = 0
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._connect()  # a file that cannot be opened at all is a start-up error

    # -- the StateStore API --------------------------------------------------------------------
    def claim(self, claims: Sequence[Claim], *, owner: str, now: datetime, enforce: bool = True) -> Conflict | None:
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    conflict = _base.check(claims, now, lambda k, s: _count(db, k, s), lambda k: _held(db, k))
                    if conflict is None or not enforce:
                        db.executemany(_INSERT, [(r.key, r.kind, r.at, r.expires, r.owner)
                                                 for r in _base.rows(claims, owner, now)])
                        self._maybe_prune(db, now)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._drop()
                raise StateStoreError(f"state store {self.url} failed: {exc}") from exc
        return conflict

    def release(self, owner: str) -> None:
        with self._lock:
            try:
                self._connection().execute("DELETE FROM enact_claims WHERE owner = ?", (owner,))
            except sqlite3.Error as exc:
                self._drop()
                raise StateStoreError(f"state store {self.url} failed: {exc}") from exc

    def ping(self) -> None:
        with self._lock:
            try:
                self._connection().execute("SELECT 1 FROM enact_claims LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                self._drop()
                raise StateStoreError(f"state store {self.url} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- internals ----------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._connect()
            except sqlite3.Error as exc:
                raise StateStoreError(f"state store {self.url} cannot be opened: {exc}") from exc
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

    def _maybe_prune(self, db: sqlite3.Connection, now: datetime) -> None:
        self._claims_since_prune += 1
        if self._claims_since_prune >= _base.PRUNE_EVERY:
            self._claims_since_prune = 0
            db.execute("DELETE FROM enact_claims WHERE expires IS NOT NULL AND expires < ?", (now.timestamp(),))


def _count(db: sqlite3.Connection, key: str, since: float) -> int:
    row = db.execute("SELECT count(*) FROM enact_claims WHERE key = ? AND kind = 'limit' AND at > ?",
                     (key, since)).fetchone()
    return int(row[0])


def _held(db: sqlite3.Connection, key: str) -> bool:
    found = db.execute("SELECT 1 FROM enact_claims WHERE key = ? AND kind = 'unique' LIMIT 1", (key,)).fetchone()
    return found is not None


def _migrate(db: sqlite3.Connection) -> None:
    """Create or upgrade the schema; ``PRAGMA user_version`` holds the version, under the write lock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            db.execute("CREATE TABLE IF NOT EXISTS enact_claims (key TEXT NOT NULL, kind TEXT NOT NULL, "
                       "at REAL NOT NULL, expires REAL, owner TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS enact_claims_key ON enact_claims (key, kind, at)")
            db.execute("CREATE INDEX IF NOT EXISTS enact_claims_owner ON enact_claims (owner)")
            # The first version counted tasks in `events (key, at)`; carry those counts over.
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone():
                db.execute("INSERT INTO enact_claims (key, kind, at, expires, owner) "
                           "SELECT 'limit_tasks_per_contact:' || key, 'limit', at, at + 7 * 86400, 'migrated' "
                           "FROM events WHERE key LIKE 'tasks:%'")
                db.execute("DROP TABLE events")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
