"""SQL -> actions, table-driven: action, table, columns, has_where for each statement."""

from __future__ import annotations

import importlib

import pytest

from enact_proxy.pgwire.classify import CursorOp, SqlParseError, cache_info, classify, classify_statements

# (sql, [(action, table, columns, has_where), ...]) ; None for fields not checked (execute_sql)
ROW_CASES = [
    ("SELECT * FROM users WHERE id = $1", [("select_rows", "users", ["*"], True)]),
    ("select id, Email from Public.Users", [("select_rows", "public.users", ["id", "email"], False)]),
    ('SELECT "Email" FROM "Sales"."Leads" WHERE "Id" = 1', [("select_rows", "Sales.Leads", ["Email"], True)]),
    ("SELECT lower(email) FROM u JOIN v ON u.id = v.uid", [("select_rows", "u", ["email"], False)]),
    ("SELECT 1", [("select_rows", None, [], False)]),
    ("SELECT a FROM t UNION SELECT b FROM s", [("select_rows", "t", ["a", "b"], False)]),
    ("SELECT * FROM t WHERE true", [("select_rows", "t", ["*"], False)]),
    ("INSERT INTO contacts (email, phone) VALUES ($1, $2)",
     [("insert_row", "contacts", ["email", "phone"], False)]),
    ("INSERT INTO crm.contacts SELECT * FROM staging", [("insert_row", "crm.contacts", ["*"], False)]),
    ("INSERT INTO t DEFAULT VALUES", [("insert_row", "t", [], False)]),
    ("INSERT INTO t (id, email) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET email = excluded.email",
     [("insert_row", "t", ["id", "email"], False), ("update_row", "t", ["email"], True)]),
    ("INSERT INTO t (id) VALUES (1) ON CONFLICT DO NOTHING", [("insert_row", "t", ["id"], False)]),
    ("UPDATE users SET email = $1 WHERE id = $2", [("update_row", "users", ["email"], True)]),
    ("UPDATE users SET email = 'x'", [("update_row", "users", ["email"], False)]),
    ("UPDATE users SET (a, b) = (1, 2) WHERE 1 = 1", [("update_row", "users", ["a", "b"], False)]),
    ("UPDATE users SET a = 1 WHERE id = id", [("update_row", "users", ["a"], False)]),
    ("UPDATE users SET a = 1 WHERE NOT false", [("update_row", "users", ["a"], False)]),
    ("UPDATE users SET a = 1 WHERE id = 5 OR true", [("update_row", "users", ["a"], False)]),
    ("UPDATE users SET a = 1 WHERE 't'::boolean", [("update_row", "users", ["a"], False)]),
    ("UPDATE users SET a = 1 WHERE $1", [("update_row", "users", ["a"], False)]),
    ("UPDATE users SET a = 1 WHERE id = 5 AND true", [("update_row", "users", ["a"], True)]),
    ("UPDATE users SET a = 1 WHERE false", [("update_row", "users", ["a"], True)]),
    ("DELETE FROM users WHERE id = 3", [("delete_row", "users", [], True)]),
    ("DELETE FROM users", [("delete_row", "users", [], False)]),
    ("DELETE FROM users WHERE 1=1", [("delete_row", "users", [], False)]),
    ("DELETE FROM users WHERE null IS NULL", [("delete_row", "users", [], False)]),
    ("DELETE FROM users WHERE CURRENT OF c", [("delete_row", "users", [], True)]),
    ("DELETE FROM users USING banned WHERE users.id = banned.id", [("delete_row", "users", [], True)]),
    ("WITH gone AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM gone",
     [("select_rows", None, ["*"], False), ("delete_row", "users", [], True)]),
    ("WITH n AS (INSERT INTO log (m) VALUES ('x') RETURNING id) UPDATE t SET log_id = n.id FROM n",
     [("update_row", "t", ["log_id"], False), ("insert_row", "log", ["m"], False)]),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a "
     "WHEN MATCHED AND s.gone THEN DELETE WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)",
     [("update_row", "t", ["a"], True), ("delete_row", "t", [], True), ("insert_row", "t", ["id", "a"], False)]),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", [("delete_row", "t", [], False)]),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", [("select_rows", "t", [], True)]),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING WHEN NOT MATCHED THEN DO NOTHING",
     [("select_rows", "t", [], False)]),
    ("EXPLAIN ANALYZE DELETE FROM t", [("delete_row", "t", [], False)]),
    ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 WHERE id = 2", [("update_row", "t", ["a"], True)]),
    ("EXPLAIN ANALYZE SELECT * FROM t", [("select_rows", "t", ["*"], False)]),
    ("COPY t (a, b) FROM STDIN", [("insert_row", "t", ["a", "b"], False)]),
    ("COPY s.t FROM STDIN WITH (FORMAT csv)", [("insert_row", "s.t", ["*"], False)]),
    ("DECLARE c CURSOR FOR SELECT id FROM t", [("select_rows", "t", ["id"], False)]),
    # row-locking reads: also update_row of each locked table (bounded by WHERE or LIMIT)
    ("SELECT * FROM t WHERE id = 1 FOR UPDATE", [("select_rows", "t", ["*"], True), ("update_row", "t", [], True)]),
    ("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
     [("select_rows", "jobs", ["id"], False), ("update_row", "jobs", [], True)]),
    ("SELECT * FROM t FOR KEY SHARE", [("select_rows", "t", ["*"], False), ("update_row", "t", [], False)]),
    ("SELECT * FROM a JOIN b ON a.id = b.id FOR NO KEY UPDATE",
     [("select_rows", "a", ["*"], False), ("update_row", "a", [], False), ("update_row", "b", [], False)]),
    ("SELECT * FROM a x JOIN b ON x.id = b.id WHERE b.k = 1 FOR SHARE OF x",
     [("select_rows", "a", ["*"], True), ("update_row", "a", [], True)]),
    ("SELECT * FROM a, (SELECT * FROM s.c) sub FOR UPDATE OF sub",
     [("select_rows", "a", ["*"], False), ("update_row", "s.c", [], False)]),
    ("SELECT * FROM m WHERE id IN (SELECT id FROM s WHERE s.k = 2 FOR UPDATE)",
     [("select_rows", "m", ["*"], True), ("update_row", "s", [], True)]),
    ("WITH w AS (SELECT * FROM t FOR SHARE) SELECT * FROM w",
     [("select_rows", None, ["*"], False), ("update_row", "t", [], False)]),
    ("WITH w AS (SELECT * FROM t) SELECT * FROM w, u FOR UPDATE",  # a lock never reaches into a CTE
     [("select_rows", "u", ["*"], False), ("update_row", "u", [], False)]),
    ("DECLARE c CURSOR FOR SELECT id FROM t WHERE id = $1 FOR UPDATE",
     [("select_rows", "t", ["id"], True), ("update_row", "t", [], True)]),
    ("EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE",
     [("select_rows", "t", ["*"], False), ("update_row", "t", [], False)]),
    ("SELECT * FROM v FOR UPDATE OF nowhere",  # PostgreSQL refuses it; never dropped here
     [("select_rows", "v", ["*"], False), ("update_row", "nowhere", [], False)]),
    ("SELECT * FROM users; DELETE FROM users",
     [("select_rows", "users", ["*"], False), ("delete_row", "users", [], False)]),
]


@pytest.mark.parametrize(("sql", "expected"), ROW_CASES, ids=[c[0][:60] for c in ROW_CASES])
def test_row_actions(sql, expected):
    actions = classify(sql)
    got = [(a.action, a.payload["table"], a.payload["columns"], a.payload["has_where"]) for a in actions]
    assert got == expected
    assert all(a.system == "postgres" for a in actions)


EXECUTE_SQL_CASES = [
    ("CREATE TABLE t (id int)", "CreateStmt"),
    ("DROP TABLE users", "DropStmt"),
    ("TRUNCATE users", "TruncateStmt"),
    ("ALTER TABLE users ADD COLUMN x int", "AlterTableStmt"),
    ("COPY users TO STDOUT", "CopyStmt"),
    ("COPY (SELECT * FROM users) TO STDOUT", "CopyStmt"),
    ("DO $$ BEGIN DELETE FROM users; END $$", "DoStmt"),
    ("CALL purge()", "CallStmt"),
    ("GRANT ALL ON users TO agent", "GrantStmt"),
    ("PREPARE p AS SELECT 1", "PrepareStmt"),
    ("EXECUTE p", "ExecuteStmt"),
    ("SET ROLE admin", "VariableSetStmt"),
    ("SET search_path = evil, public", "VariableSetStmt"),
    ("SET standard_conforming_strings = off", "VariableSetStmt"),
    ("SET client_encoding = 'SJIS'", "VariableSetStmt"),
    ("SET SESSION AUTHORIZATION admin", "VariableSetStmt"),
    ("RESET ALL", "VariableSetStmt"),
    ("DISCARD ALL", "DiscardStmt"),
    ("LISTEN chan", "ListenStmt"),
    ("NOTIFY chan", "NotifyStmt"),
    ("VACUUM users", "VacuumStmt"),
    ("LOCK TABLE users", "LockStmt"),
    ("SELECT * INTO copy_of_users FROM users", "SelectStmt"),
    ("CREATE TABLE c AS SELECT * FROM users", "CreateTableAsStmt"),
    ("EXPLAIN DELETE FROM users", "ExplainStmt"),
    ("EXPLAIN (ANALYZE false) DELETE FROM users", "ExplainStmt"),
    ("PREPARE TRANSACTION 'x'", "TransactionStmt"),
    ("COMMIT PREPARED 'x'", "TransactionStmt"),
]


@pytest.mark.parametrize(("sql", "kind"), EXECUTE_SQL_CASES, ids=[c[0][:60] for c in EXECUTE_SQL_CASES])
def test_execute_sql(sql, kind):
    (action,) = classify(sql)
    assert action.action == "execute_sql"
    assert action.payload["kind"] == kind
    assert action.payload["statement"] == sql


def test_select_into_and_ctas_name_their_tables():
    (action,) = classify("SELECT * INTO copy_of_users FROM users")
    assert action.payload["tables"] == ["copy_of_users", "users"]


def test_copy_from_a_server_file_is_also_execute_sql():
    assert [a.action for a in classify("COPY t FROM '/etc/passwd'")] == ["insert_row", "execute_sql"]
    assert [a.action for a in classify("COPY t FROM PROGRAM 'id'")] == ["insert_row", "execute_sql"]


FUNCTION_CASES = [
    ("SELECT set_config('role', 'admin', false)", ["set_config"]),
    ("SELECT pg_catalog.set_config('a', 'b', true)", ["pg_catalog.set_config"]),
    ("SELECT pg_terminate_backend(123)", ["pg_terminate_backend"]),
    ("SELECT pg_cancel_backend(1)", ["pg_cancel_backend"]),
    ("SELECT pg_advisory_lock(1)", ["pg_advisory_lock"]),
    ("SELECT nextval('s')", ["nextval"]),
    ("SELECT setval('s', 1)", ["setval"]),
    ("SELECT pg_reload_conf()", ["pg_reload_conf"]),
    ("SELECT pg_read_file('/etc/passwd')", ["pg_read_file"]),
    ("SELECT lo_import('/etc/passwd')", ["lo_import"]),
    ("SELECT lo_export(1, '/tmp/x')", ["lo_export"]),
    ("SELECT dblink_exec('dbname=x', 'DELETE FROM t')", ["dblink_exec"]),
    ("SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", ["query_to_xml"]),
    ("SELECT table_to_xml('secrets', true, true, '')", ["table_to_xml"]),
    ("SELECT public.lower(email) FROM users", ["public.lower"]),
    ("SELECT my_audit(id) FROM users WHERE id = 1", ["my_audit"]),
    ("SELECT * FROM users WHERE id = 1 AND do_things()", ["do_things"]),
]


@pytest.mark.parametrize(("sql", "functions"), FUNCTION_CASES, ids=[c[0][:60] for c in FUNCTION_CASES])
def test_unsafe_functions_add_execute_sql(sql, functions):
    actions = classify(sql)
    assert actions[0].action == "select_rows"
    extra = [a for a in actions if a.action == "execute_sql"]
    assert len(extra) == 1
    assert extra[0].payload["reason"] == "functions"
    assert extra[0].payload["functions"] == functions


def test_unsafe_function_inside_a_write():
    actions = classify("INSERT INTO t (id) VALUES (nextval('seq'))")
    assert [a.action for a in actions] == ["insert_row", "execute_sql"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*), max(id), lower(email), now(), coalesce(a, b) FROM users",
        "SELECT pg_catalog.version()",
        "SELECT current_setting('server_version_num')",
        "SELECT jsonb_build_object('a', 1), to_char(now(), 'YYYY'), date_trunc('day', now())",
        "SELECT gen_random_uuid(), random()",
        "SELECT * FROM generate_series(1, 3)",
    ],
)
def test_safe_catalog_functions_are_only_select_rows(sql):
    assert [a.action for a in classify(sql)] == ["select_rows"]


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN", "BEGIN ISOLATION LEVEL SERIALIZABLE", "START TRANSACTION READ ONLY", "COMMIT", "END",
        "ROLLBACK", "ABORT", "SAVEPOINT a", "RELEASE SAVEPOINT a", "ROLLBACK TO SAVEPOINT a",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET client_encoding TO 'UTF8'", "SET NAMES 'utf8'", "SET application_name = 'agent'",
        "SET DateStyle = ISO, MDY", "SET TIME ZONE 'UTC'", "SET TimeZone = 'Europe/Berlin'",
        "SET extra_float_digits = 3", "SET statement_timeout = 5000", "SET LOCAL statement_timeout = 0",
        "RESET statement_timeout", "SET application_name TO DEFAULT",
        "SHOW transaction_isolation", "SHOW ALL", "SHOW search_path",
        "FETCH 10 FROM c", "CLOSE c", "", "-- only a comment",
    ],
)
def test_not_actions(sql):
    assert classify(sql) == []


def test_locking_names_the_strongest_clause_per_table():
    actions = classify("SELECT * FROM a JOIN b ON a.id = b.id FOR KEY SHARE FOR UPDATE OF a")
    locks = {a.payload["table"]: a.payload["locking"] for a in actions if a.action == "update_row"}
    assert locks == {"a": "FOR UPDATE", "b": "FOR KEY SHARE"}
    (lock,) = [a for a in classify("SELECT 1 FROM t FOR NO KEY UPDATE") if a.action == "update_row"]
    assert lock.payload["columns"] == [] and lock.payload["kind"] == "SelectStmt"


def test_plain_explain_of_a_locking_read_does_not_lock():
    assert [a.action for a in classify("EXPLAIN SELECT * FROM t FOR UPDATE")] == ["execute_sql"]


def test_every_merge_is_at_least_one_action():
    (merge,) = classify("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING")
    assert merge.payload["merge"] == "do nothing" and merge.payload["kind"] == "MergeStmt"


def test_cursor_operations_come_with_the_classification():
    actions, ops = classify_statements(
        'DECLARE c CURSOR WITH HOLD FOR SELECT id FROM t FOR UPDATE; FETCH 2 FROM c; MOVE ALL IN "C"; '
        "CLOSE c; CLOSE ALL; SELECT 1")
    assert [a.action for a in actions] == ["select_rows", "update_row", "select_rows"]
    assert [(op.op, op.name, op.hold) for op in ops] == [
        ("declare", "c", True), ("fetch", "c", False), ("fetch", "C", False), ("close", "c", False),
        ("close", None, False)]
    assert [action for action, _ in ops[0].actions] == ["select_rows", "update_row"]
    assert ops[1] == CursorOp("fetch", "c", "FETCH 2 FROM c")
    assert classify_statements("SELECT * FROM t WHERE id = 1")[1] == ()


def test_payload_shape():
    (action,) = classify("  UPDATE Users SET email = $1 WHERE true ;  ")
    assert action.payload == {
        "table": "users",
        "tables": ["users"],
        "columns": ["email"],
        "has_where": False,
        "where_constant_true": True,
        "statement": "UPDATE Users SET email = $1 WHERE true",
        "kind": "UpdateStmt",
    }
    (upsert_update,) = [a for a in classify("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2")
                        if a.action == "update_row"]
    assert upsert_update.payload["on_conflict"] is True


def test_statements_of_a_list_each_carry_their_own_text():
    actions = classify("SELECT 'é' FROM t; DELETE FROM t WHERE id = 1; BEGIN")
    assert [a.payload["statement"] for a in actions] == ["SELECT 'é' FROM t", "DELETE FROM t WHERE id = 1"]


def test_tables_lists_every_table_but_not_ctes():
    (select,) = classify(
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN customers c ON true "
        "WHERE c.id IN (SELECT cid FROM vip)"
    )
    assert select.payload["tables"] == ["customers", "orders", "vip"]
    assert select.payload["table"] == "customers"


@pytest.mark.parametrize("sql", ["SELEC 1", "DELETE users", "SELECT 'unterminated", "UPDATE t SET"])
def test_parse_errors_raise(sql):
    with pytest.raises(SqlParseError) as caught:
        classify(sql)
    assert caught.value.reason


def test_results_are_cached_and_callers_cannot_corrupt_the_cache():
    sql = "SELECT id FROM cached_table WHERE id = $1"
    first = classify(sql)
    hits = cache_info().hits
    first[0].payload["columns"].append("tampered")
    first[0].payload["table"] = "tampered"
    second = classify(sql)
    assert cache_info().hits == hits + 1
    assert second[0].payload["columns"] == ["id"]
    assert second[0].payload["table"] == "cached_table"


# ---- the template cache (texts that differ only in numeric literals) ------------------------

TEMPLATE_PAIRS = [
    # (first text, second text with other literals): the second's classification must be its own
    ("SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
     "SELECT abalance FROM pgbench_accounts WHERE aid = 987654;"),
    ("UPDATE acc SET bal = bal + -5 WHERE aid = 3", "UPDATE acc SET bal = bal + 77 WHERE aid = 12"),
    ("INSERT INTO hist (tid, aid, delta) VALUES (1, 2, -3)", "INSERT INTO hist (tid, aid, delta) VALUES (4, 5, 6)"),
    ("  /* c */ DELETE FROM t WHERE id = 5 ;  ", "  /* c */ DELETE FROM t WHERE id = 123456 ;  "),
    # constants whose value matters: never shared, each classified on its own
    ("DELETE FROM t WHERE id = 5 OR 1 = 2", "DELETE FROM t WHERE id = 5 OR 1 = 1"),
    ("UPDATE t SET x = 1 WHERE (id = 5) = (1 = 2)", "UPDATE t SET x = 1 WHERE (id = 5) = (1 = 1)"),
    ("DELETE FROM t WHERE id = 1 OR 0::bool", "DELETE FROM t WHERE id = 1 OR 1::bool"),
    ("DELETE FROM t WHERE 2 < 1", "DELETE FROM t WHERE 1 < 2"),
    ("EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t"),
]


@pytest.mark.parametrize(("first", "second"), TEMPLATE_PAIRS)
def test_a_template_hit_classifies_as_the_text_itself(first: str, second: str) -> None:
    module = importlib.import_module("enact_proxy.pgwire.classify")

    classify(first)  # may seed the template cache
    via_cache = [(a.action, a.payload) for a in classify(second)]
    module._templates.clear()
    module._analyse.cache_clear()
    fresh = [(a.action, a.payload) for a in classify(second)]
    assert via_cache == fresh


def test_literal_only_differences_share_one_template() -> None:
    module = importlib.import_module("enact_proxy.pgwire.classify")

    module._templates.clear()
    for aid in range(50):
        actions = classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
        assert actions[0].payload["statement"] == f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"
        assert actions[0].payload["has_where"] is True
    assert module.template_cache_size() == 1


def test_value_dependent_where_is_never_templated() -> None:
    module = importlib.import_module("enact_proxy.pgwire.classify")

    module._templates.clear()
    bounded = classify("DELETE FROM t WHERE id = 5 OR 1 = 2")
    unbounded = classify("DELETE FROM t WHERE id = 5 OR 1 = 1")
    assert bounded[0].payload["has_where"] is True
    assert unbounded[0].payload["has_where"] is False
    assert module.template_cache_size() == 0
