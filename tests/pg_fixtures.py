"""The session fixture ``pg_server``: a real PostgreSQL (see :mod:`enact_proxy.sandbox.postgres`).

It skips with the reason when the server cannot start, except when the environment says ``CI=true``:
there it fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest

from enact_proxy.sandbox.postgres import SUPERUSER, PgServer, PostgresUnavailable, running_postgres

__all__ = ["SUPERUSER", "PgServer", "PostgresUnavailable", "pg_server", "running_postgres", "own_postgres"]


@contextlib.contextmanager
def own_postgres() -> Iterator[PgServer]:
    """A PostgreSQL of its own, or the test is skipped with the reason (failed when ``CI=true``)."""
    try:
        context = running_postgres()
        server = context.__enter__()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"embedded PostgreSQL is required in CI but did not start: {exc}")
        pytest.skip(f"embedded PostgreSQL did not start: {exc}")
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL shared by the whole test session (tests use their own tables or schemas)."""
    with own_postgres() as server:
        yield server
