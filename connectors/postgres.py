"""PostgreSQL: its actions, its ``systems.postgres`` config, library-mode row operations, recognition.

Library mode (``EnactClient`` workflows) performs actions with :class:`PostgresConnector` over psycopg 3:
identifiers are quoted with ``psycopg.sql.Identifier`` and values are always bound parameters, never
text. On the wire the Postgres listener recognises statements with :func:`recognise_sql` (see
:mod:`enact_proxy.pgwire.classify` for the payloads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, field_validator

from enact_proxy.models import ActionRequest
from enact_proxy.pgwire.classify import SqlParseError, classify

SYSTEM = "postgres"
ACTIONS = ("select_rows", "insert_row", "update_row", "delete_row", "execute_sql")
DEFAULT_MAX_SESSIONS = 64

__all__ = ["ACTIONS", "SYSTEM", "Config", "PostgresConnector", "SqlParseError", "recognise_sql"]


class Config(BaseModel):
    """``systems.postgres`` in ``enact.yaml``.

    ``upstream``: where statements really go (``postgresql://user[:password]@host:port/db?sslmode=...``).
    ``password_env``: the variable holding the upstream password (the sidecar logs in itself).
    ``agent_password_env``: when set, the password the agent must present to the sidecar.
    ``max_sessions``: how many agent sessions the listener serves at once (default 64, below PostgreSQL's
    default ``max_connections`` of 100, so an agent cannot exhaust the database's connection slots).
    Each holds one upstream connection; one more is refused at startup with FATAL SQLSTATE 53300
    (too_many_connections), ``Blocked by Enact: ...``. Cancel requests are never counted or refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str
    password_env: str | None = None
    agent_password_env: str | None = None
    max_sessions: Annotated[int, Field(strict=True, ge=1, le=100_000)] = DEFAULT_MAX_SESSIONS

    @field_validator("upstream")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        if not parts.hostname:
            raise ValueError("must name a host")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        return value


def recognise_sql(sql_text: str) -> list[ActionRequest]:
    """Every action the statements in ``sql_text`` perform; :class:`SqlParseError` when it does not parse."""
    return classify(sql_text)


def _table(name: str) -> sql.Identifier:
    """``schema.table`` or ``table``; each part is quoted exactly as given (no case folding)."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"table must be 'name' or 'schema.name', got {name!r}")
    return sql.Identifier(*parts)


def _where(conditions: Mapping[str, Any]) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in conditions.items():
        if value is None:
            clauses.append(sql.SQL("{} IS NULL").format(sql.Identifier(column)))
        else:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    return sql.SQL(" AND ").join(clauses), params


class PostgresConnector:
    """Row operations for library-mode workflows.

    Give a connection string (``PostgresConnector("postgresql://...")``) or an open psycopg
    ``Connection``. Every call runs in its own transaction, committed when it returns. ``where`` is a
    mapping of column to value, AND-ed together (``None`` means IS NULL); update and delete refuse an
    empty ``where`` (an unbounded write).
    """

    system = SYSTEM

    def __init__(self, dsn: str | None = None, *, connection: psycopg.Connection[Any] | None = None):
        if (dsn is None) == (connection is None):
            raise ValueError("give exactly one of dsn or connection")
        self._owns_connection = connection is None
        self._conn: psycopg.Connection[Any] = (
            connection if connection is not None else psycopg.connect(dsn or "", autocommit=True)
        )

    def close(self) -> None:
        if self._owns_connection:
            self._conn.close()

    def __enter__(self) -> PostgresConnector:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self, query: sql.Composed, params: Sequence[Any]) -> tuple[list[dict[str, Any]], int]:
        with self._conn.transaction(), self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            rows = cur.fetchall() if cur.description is not None else []
            return rows, cur.rowcount

    def insert_row(self, table: str, values: Mapping[str, Any],
                   returning: Sequence[str] = ()) -> dict[str, Any] | None:
        """Insert one row; returns the ``returning`` columns of it (None when none are asked for)."""
        if not values:
            raise ValueError("insert_row needs at least one column")
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _table(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in values),
            sql.SQL(", ").join(sql.Placeholder() for _ in values),
        )
        if returning:
            query += sql.SQL(" RETURNING {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in returning))
        rows, _ = self._run(query, list(values.values()))
        return rows[0] if returning and rows else None

    def update_row(self, table: str, values: Mapping[str, Any], where: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows matching ``where``; returns how many rows changed."""
        if not values:
            raise ValueError("update_row needs at least one column to set")
        if not where:
            raise ValueError("update_row refuses an empty where (it would change every row)")
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in values
        )
        condition, params = _where(where)
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(_table(table), assignments, condition)
        _, count = self._run(query, [*values.values(), *params])
        return count

    def select_rows(self, table: str, where: Mapping[str, Any] | None = None,
                    columns: Sequence[str] = (), limit: int | None = None) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``where`` (all rows when None), as dicts."""
        selected = sql.SQL(", ").join(sql.Identifier(c) for c in columns) if columns else sql.SQL("*")
        query = sql.SQL("SELECT {} FROM {}").format(selected, _table(table))
        params: list[Any] = []
        if where:
            condition, params = _where(where)
            query += sql.SQL(" WHERE {}").format(condition)
        if limit is not None:
            query += sql.SQL(" LIMIT %s")
            params.append(int(limit))
        rows, _ = self._run(query, params)
        return rows

    def delete_row(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where``; returns how many."""
        if not where:
            raise ValueError("delete_row refuses an empty where (it would delete every row)")
        condition, params = _where(where)
        query = sql.SQL("DELETE FROM {} WHERE {}").format(_table(table), condition)
        _, count = self._run(query, params)
        return count
