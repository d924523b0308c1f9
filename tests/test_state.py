"""enact_proxy/state.py: the SQLite counter store behind limit_tasks_per_contact."""

from __future__ import annotations

import threading
from datetime import timedelta

from enact_proxy.state import SqliteStateStore
from tests.conftest import FIXED_NOW


def test_counts_only_events_after_since_for_that_key():
    store = SqliteStateStore()
    for minutes in (0, 10, 20):
        store.add("tasks:1", FIXED_NOW + timedelta(minutes=minutes))
    store.add("tasks:2", FIXED_NOW)
    assert store.count("tasks:1", FIXED_NOW - timedelta(minutes=1)) == 3
    assert store.count("tasks:1", FIXED_NOW) == 2  # strictly after: an event exactly at `since` has left
    assert store.count("tasks:1", FIXED_NOW + timedelta(minutes=20)) == 0
    assert store.count("tasks:2", FIXED_NOW - timedelta(minutes=1)) == 1
    assert store.count("tasks:3", FIXED_NOW - timedelta(days=1)) == 0
    store.close()


def test_file_store_survives_a_reopen(tmp_path):
    path = tmp_path / "deep" / "state.sqlite"
    first = SqliteStateStore(path)
    first.add("k", FIXED_NOW)
    first.close()
    second = SqliteStateStore(path)
    assert second.count("k", FIXED_NOW - timedelta(seconds=1)) == 1
    second.close()


def test_concurrent_adds_are_all_counted(tmp_path):
    store = SqliteStateStore(tmp_path / "s.sqlite")

    def add_many() -> None:
        for _ in range(50):
            store.add("k", FIXED_NOW)

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count("k", FIXED_NOW - timedelta(seconds=1)) == 200
    store.close()
