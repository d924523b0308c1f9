"""The exact-text classification cache in front of the classifier (enact_proxy/pgwire/cache.py)."""

from __future__ import annotations

import pytest

from enact_proxy.models import RequestSummary
from enact_proxy.pgwire.cache import ClassifyCache, fresh
from enact_proxy.pgwire.classify import SqlParseError, classify_statements

SUMMARY = RequestSummary(method="SQL", host="db:5432", path="/app")


def test_a_repeated_text_is_a_hit_with_the_classifiers_answer() -> None:
    cache = ClassifyCache()
    sql = "UPDATE users SET name = $1 WHERE id = $2"
    first, _ = cache.classify(sql, SUMMARY)
    second, _ = cache.classify(sql, SUMMARY)  # kept from its second sighting ...
    third, _ = cache.classify(sql, SUMMARY)  # ... answered from the cache from then on
    assert (cache.misses, cache.hits) == (2, 1)
    expected, _ = classify_statements(sql)
    for got in (first, second, third):
        assert [(a.system, a.action, a.payload) for a in got] == [(a.system, a.action, a.payload) for a in expected]
        assert all(a.request == SUMMARY for a in got)


def test_every_use_gets_its_own_requests_and_payloads() -> None:
    cache = ClassifyCache()
    sql = "SELECT id, email FROM users WHERE id = $1"
    cache.classify(sql, SUMMARY)
    first, _ = cache.classify(sql, SUMMARY)
    # whatever a caller, the engine or a policy does to what it was handed ...
    first[0].payload["columns"].append("ssn")
    first[0].payload["tables"].clear()
    first[0].payload["table"] = "other"
    first[0].action = "delete_row"
    other = RequestSummary(method="SQL", host="db:5432", path="/other")
    first[0].request = other
    # ... the next use of the same text sees the classifier's answer
    second, _ = cache.classify(sql, SUMMARY)
    assert second[0] is not first[0]
    assert second[0].action == "select_rows"
    assert second[0].payload["columns"] == ["id", "email"]
    assert second[0].payload["tables"] == ["users"]
    assert second[0].payload["table"] == "users"
    assert second[0].request == SUMMARY


def test_a_text_that_does_not_parse_is_refused_every_time_and_never_kept() -> None:
    cache = ClassifyCache()
    for _ in range(2):
        with pytest.raises(SqlParseError):
            cache.classify("SELEC * FROM users", SUMMARY)
    assert len(cache) == 0


def test_the_cache_is_bounded_in_entries_and_text_length() -> None:
    cache = ClassifyCache(size=2, max_text=100)
    for sql in ("SELECT 1", "SELECT 2", "SELECT 3") * 2:
        cache.classify(sql, SUMMARY)
    assert len(cache) == 2
    cache.classify("SELECT 1", SUMMARY)  # evicted (least recently used): classified again
    assert cache.misses == 7
    long_text = "SELECT " + " + ".join(["1"] * 60)
    for _ in range(3):
        actions, _ = cache.classify(long_text, SUMMARY)
        assert actions[0].action == "select_rows"
    assert long_text not in [*cache._entries]
    assert cache.hits == 0


def test_one_off_texts_are_not_kept() -> None:
    cache = ClassifyCache(size=8)
    for aid in range(100):
        actions, _ = cache.classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}", SUMMARY)
        assert actions[0].payload["statement"].endswith(f"= {aid}")
    assert len(cache) == 0
    assert len(cache._seen) <= 32  # remembered hashes are bounded too


def test_cursor_operations_come_back_for_cached_texts() -> None:
    cache = ClassifyCache()
    sql = "DECLARE c CURSOR FOR SELECT * FROM users FOR UPDATE"
    for _ in range(3):
        actions, ops = cache.classify(sql, SUMMARY)
        assert [op.op for op in ops] == ["declare"]
        assert ops[0].name == "c"
        assert sorted(a.action for a in actions) == ["select_rows", "update_row"]
    assert cache.hits == 1


def test_fresh_copies_share_nothing_mutable_with_what_they_copy() -> None:
    kept, _ = ClassifyCache().classify("UPDATE users SET name = $1, email = $2 WHERE id = $3", SUMMARY)
    copies = fresh(kept)
    assert [(a.system, a.action, a.payload, a.request) for a in copies] == \
        [(a.system, a.action, a.payload, a.request) for a in kept]
    copies[0].payload["columns"].append("ssn")
    copies[0].payload["kind"] = "DeleteStmt"
    assert kept[0].payload["columns"] == ["name", "email"]
    assert kept[0].payload["kind"] == "UpdateStmt"
