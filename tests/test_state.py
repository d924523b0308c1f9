"""enact_proxy/state: the store contract, run against the embedded SQLite file and a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from enact_proxy.state import Limit, SqliteStateStore, StateStore, StateStoreError, Unique, open_store
from enact_proxy.state.postgres import PostgresStateStore, display_url
from tests.conftest import FIXED_NOW
from tests.pg_fixtures import PgServer, pg_server  # noqa: F401 - the fixture

HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """``make()`` opens a store; every store made opens the same database (as sidecars sharing one would)."""
    made: list[StateStore] = []
    if request.param == "sqlite":
        def make() -> StateStore:
            made.append(SqliteStateStore(tmp_path / "state.sqlite"))
            return made[-1]
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        dbname = f"state_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")

        def make() -> StateStore:
            made.append(PostgresStateStore(server.url(dbname=dbname, password=""), password=server.password))
            return made[-1]
    yield make
    for store in made:
        store.close()


def test_a_limit_admits_max_claims_in_its_window_then_refuses(make_store):
    store = make_store()
    limit = Limit("tasks:1", max=2, window=HOUR, message="{count} of {max}")
    assert store.claim([limit], owner="a", now=FIXED_NOW) is None
    assert store.claim([limit], owner="b", now=FIXED_NOW + timedelta(minutes=1)) is None
    conflict = store.claim([limit], owner="c", now=FIXED_NOW + timedelta(minutes=2))
    assert conflict is not None and (conflict.index, conflict.count, conflict.in_request) == (0, 2, False)
    assert conflict.explain(limit) == "2 of 2"
    # The window slides: the first claim leaves it an hour later.
    assert store.claim([limit], owner="d", now=FIXED_NOW + HOUR + timedelta(seconds=1)) is None


def test_a_batch_is_all_or_nothing_and_counts_its_own_claims(make_store):
    store = make_store()
    limit = Limit("tasks:1", max=3, window=HOUR)
    conflict = store.claim([limit] * 4, owner="batch", now=FIXED_NOW)
    assert conflict is not None and (conflict.index, conflict.count, conflict.in_request) == (3, 3, True)
    # Nothing of the refused batch was recorded: three fit afterwards.
    assert store.claim([limit] * 3, owner="ok", now=FIXED_NOW) is None
    assert store.claim([limit], owner="more", now=FIXED_NOW) is not None


def test_unique_is_held_until_released_and_twice_in_one_request_conflicts(make_store):
    store = make_store()
    jane = Unique("contact:jane@acme.com")
    twice = store.claim([jane, jane], owner="a", now=FIXED_NOW)
    assert twice is not None and (twice.index, twice.in_request) == (1, True)
    assert store.claim([jane], owner="a", now=FIXED_NOW) is None
    later = store.claim([jane], owner="b", now=FIXED_NOW + timedelta(days=400))  # remembered, no window
    assert later is not None and not later.in_request
    store.release("a")
    assert store.claim([jane], owner="c", now=FIXED_NOW) is None


def test_shadow_records_even_what_does_not_fit(make_store):
    store = make_store()
    one = Limit("k", max=1, window=HOUR)
    assert store.claim([one], owner="a", now=FIXED_NOW) is None
    conflict = store.claim([one], owner="b", now=FIXED_NOW, enforce=False)
    assert conflict is not None and conflict.count == 1
    assert store.claim([Limit("k", max=2, window=HOUR)], owner="c", now=FIXED_NOW) is not None  # both counted


def test_a_second_store_on_the_same_database_sees_the_claims(make_store):
    first, second = make_store(), make_store()
    assert first.claim([Unique("x")], owner="a", now=FIXED_NOW) is None
    assert second.claim([Unique("x")], owner="b", now=FIXED_NOW) is not None
    second.release("a")
    assert first.claim([Unique("x")], owner="c", now=FIXED_NOW) is None


def race(stores: list, claims_of) -> list[str]:
    """12 threads released together, 5 claims each, spread over ``stores``; the owners admitted."""
    admitted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def run(i: int) -> None:
        store = stores[i % len(stores)]
        barrier.wait()
        for n in range(5):
            if store.claim(claims_of(n), owner=f"{i}-{n}", now=FIXED_NOW) is None:
                with lock:
                    admitted.append(f"{i}-{n}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return admitted


def test_concurrent_claims_across_stores_never_exceed_the_limit(make_store):
    admitted = race([make_store() for _ in range(3)],
                    lambda n: [Limit("hot", max=7, window=HOUR), Unique(f"u:{n}")])
    # Each Unique u:n is taken once, and the Limit caps the total at 5 (one per unique) <= 7.
    assert len(admitted) == 5
    assert len({owner.split("-")[1] for owner in admitted}) == 5


def test_concurrent_limit_claims_across_stores_admit_exactly_the_limit(make_store):
    assert len(race([make_store() for _ in range(3)], lambda n: [Limit("hot", max=7, window=HOUR)])) == 7


def test_sqlite_store_migrates_the_first_versions_task_counts(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE events (key TEXT NOT NULL, at REAL NOT NULL)")
    old.executemany("INSERT INTO events VALUES (?, ?)", [("tasks:101", FIXED_NOW.timestamp())] * 3)
    old.commit()
    old.close()
    store = SqliteStateStore(path)
    limit = Limit("limit_tasks_per_contact:tasks:101", max=3, window=HOUR)
    assert store.claim([limit], owner="new", now=FIXED_NOW + timedelta(minutes=1)) is not None
    store.close()


def test_an_unreachable_postgres_store_fails_naming_the_store_without_its_password():
    store = PostgresStateStore("postgresql://enact:s3cret-pw@127.0.0.1:1/enact", timeout=1)
    with pytest.raises(StateStoreError) as raised:
        store.claim([Unique("x")], owner="a", now=FIXED_NOW)
    message = str(raised.value)
    assert message.startswith("state store postgresql://enact@127.0.0.1:1/enact unavailable")
    assert "s3cret-pw" not in message
    store.close()


def test_an_unwritable_sqlite_store_fails_naming_the_store(tmp_path):
    store = SqliteStateStore(tmp_path / "s.sqlite", timeout=0.2)
    blocker = SqliteStateStore(tmp_path / "s.sqlite")
    blocker._db.execute("BEGIN IMMEDIATE")  # another process holding the write lock past the timeout
    with pytest.raises(StateStoreError, match=r"state store sqlite:///.*s\.sqlite failed: database is locked"):
        store.claim([Unique("x")], owner="a", now=FIXED_NOW)
    blocker._db.execute("ROLLBACK")
    assert store.claim([Unique("x")], owner="a", now=FIXED_NOW) is None  # recovers by itself
    store.close()
    blocker.close()


def test_display_url_hides_the_password():
    assert display_url("postgresql://u:p%40ss@db:5432/x?sslmode=require") == "postgresql://u@db:5432/x?sslmode=require"
    assert display_url("postgresql://u@db/x") == "postgresql://u@db/x"


def test_open_store_resolves_sqlite_paths_against_the_config_folder(tmp_path):
    relative = open_store("sqlite:///state/s.sqlite", base_dir=tmp_path)
    absolute = open_store(f"sqlite:///{tmp_path}/abs.sqlite", base_dir="/nonexistent")
    assert isinstance(relative, SqliteStateStore) and relative.path == str(tmp_path / "state" / "s.sqlite")
    assert isinstance(absolute, SqliteStateStore) and absolute.path == str(tmp_path / "abs.sqlite")
    relative.close()
    absolute.close()
    with pytest.raises(ValueError, match="state.url"):
        open_store("redis://x")


# -- approvals ---------------------------------------------------------------------------------

def _pending(store, digest="d1", now=FIXED_NOW):
    return store.request_approval(digest=digest, actor="agent@company.com", action="github.merge_pr",
                                  payload={"number": 7}, now=now, expires=HOUR)


def test_one_pending_approval_per_digest(make_store):
    store = make_store()
    first = _pending(store)
    again = _pending(make_store(), now=FIXED_NOW + timedelta(minutes=1))  # another sidecar, same action
    assert again.id == first.id and first.status == "pending"
    assert _pending(store, digest="d2").id != first.id
    assert [a.id for a in store.list_approvals("pending", now=FIXED_NOW)] == [_pending(store, "d2").id, first.id]


def test_an_approved_grant_is_spent_once_in_the_claim_step(make_store):
    from enact_proxy.state import UseGrant

    store, other = make_store(), make_store()
    approval = _pending(store)
    decided = store.decide_approval(approval.id, approve=True, by="alice@company.com", reason="ok",
                                    now=FIXED_NOW, grant_for=HOUR)
    assert (decided.status, decided.decided_by) == ("approved", "alice@company.com")
    grant = UseGrant(approval.id)
    assert store.claim([grant], owner="r1", now=FIXED_NOW) is None
    assert other.claim([grant], owner="r2", now=FIXED_NOW) is not None  # single use, on every sidecar
    assert store.get_approval(approval.id).status == "used"
    store.release("r1")  # a 4xx later does not give the grant back
    assert store.claim([grant], owner="r3", now=FIXED_NOW) is not None


def test_a_grant_is_not_spent_when_another_claim_of_the_request_does_not_fit(make_store):
    from enact_proxy.state import UseGrant

    store = make_store()
    approval = _pending(store)
    store.decide_approval(approval.id, approve=True, by="alice", reason="", now=FIXED_NOW, grant_for=HOUR)
    assert store.claim([Unique("taken")], owner="x", now=FIXED_NOW) is None
    assert store.claim([UseGrant(approval.id), Unique("taken")], owner="y", now=FIXED_NOW) is not None
    assert store.get_approval(approval.id).status == "approved"
    assert store.claim([UseGrant(approval.id)], owner="z", now=FIXED_NOW + HOUR) is not None  # expired


def test_deciding_twice_or_after_expiry_is_refused(make_store):
    from enact_proxy.state import ApprovalNotPending

    store = make_store()
    approval = _pending(store)
    denied = store.decide_approval(approval.id, approve=False, by="bob", reason="not today", now=FIXED_NOW,
                                   grant_for=HOUR)
    assert (denied.status, denied.reason) == ("denied", "not today")
    with pytest.raises(ApprovalNotPending):
        store.decide_approval(approval.id, approve=True, by="bob", reason="", now=FIXED_NOW, grant_for=HOUR)
    late = _pending(store, digest="d3")
    with pytest.raises(ApprovalNotPending, match="expired"):
        store.decide_approval(late.id, approve=True, by="bob", reason="", now=FIXED_NOW + HOUR, grant_for=HOUR)
    assert store.latest_approval("d3").as_of(FIXED_NOW + HOUR).status == "expired"
    with pytest.raises(ApprovalNotPending):
        store.decide_approval("no-such-id", approve=True, by="bob", reason="", now=FIXED_NOW, grant_for=HOUR)
