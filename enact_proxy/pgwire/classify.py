"""SQL text -> the actions it performs, with PostgreSQL's own grammar (pglast / libpg_query).

``classify(sql)`` parses with ``pglast.parser.parse_sql_json`` (about 20x faster than building node
objects) and walks the JSON tree. Results are cached by the exact text (LRU, :data:`CACHE_SIZE`
entries), so the hot path (``SELECT ... WHERE id = $1`` over and over) never reparses; every call
returns fresh :class:`ActionRequest` objects, so a caller may not corrupt the cache.

Clients that inline their values (pgbench, psql scripts, ORMs in "literal" mode) send a new text for
every row: ``... WHERE aid = 1``, ``... WHERE aid = 2``. Those share a second cache keyed by the
statement's *template*: PostgreSQL's own lexer (``pglast.parser.scan``) finds the numeric literal
tokens, the key is the text with each replaced by a marker plus the whole token stream's kinds. A
template is cached only when no literal's value can change the result: one DML statement, every
numeric constant either an operand of an operator whose other operand is a plain column
(``aid = 5``, ``x + -5``) or an item of a VALUES list, and no other constant anywhere (so
``WHERE id = 1 OR 1 = 1``, ``WHERE x = x OR false``, casts, ``SET``, ``EXPLAIN`` are never
templated: every such text is classified on its own). A hit only puts the statement's own text in.

Every action has ``system="postgres"`` and a payload with:

``kind``
    the node type of the top-level statement (``SelectStmt``, ``InsertStmt``, ``MergeStmt``, ...).
``statement``
    that statement's own text (one statement of a multi-statement Query), stripped.
``tables``
    every table the statement touches, sorted; CTE names are not tables.

and, for ``select_rows`` / ``insert_row`` / ``update_row`` / ``delete_row``:

``table``
    the target (for a SELECT the first table of its FROM, or None for ``SELECT 1``). Names are given as
    PostgreSQL resolves the spelling: unquoted identifiers folded to lower case, quoted ones kept as
    written, joined with ``.`` only as far as the statement qualified them (``users``,
    ``public.users``, ``Sales.Leads`` for ``"Sales"."Leads"``). Which schema an unqualified name lands
    in depends on ``search_path``, which the sidecar does not let the agent change.
``columns``
    the columns written (INSERT / UPDATE / MERGE / COPY FROM) or read by the select list. ``"*"`` means
    "every column" (``SELECT *``, ``INSERT INTO t SELECT ...`` without a column list).
``has_where``
    whether the rows are bounded. False when there is no WHERE, and also when the WHERE cannot restrict
    rows: it folds to constant true (``WHERE true``, ``1=1``, ``NOT false``, ``x = x``, ``'t'::bool``,
    ``... OR true``) or references no column at all (``WHERE $1``, ``WHERE now() > '2020-01-01'``:
    all rows or none). Then ``where_constant_true`` is True. ``WHERE CURRENT OF`` is bounded; an
    ``ON CONFLICT DO UPDATE`` is bounded by the conflict (``on_conflict`` True); a MERGE clause is bounded
    by its join condition and its ``WHEN ... AND`` condition.

Effects: a data-modifying CTE (anywhere in the tree) adds its own write action; ``INSERT ... ON CONFLICT
DO UPDATE`` is ``insert_row`` and ``update_row``; MERGE yields one action per WHEN clause that acts (a
MERGE whose branches all DO NOTHING is one ``select_rows`` of its target, with ``merge: "do nothing"``:
every statement is at least one action); a row-locking read (``FOR UPDATE / NO KEY UPDATE / SHARE / KEY
SHARE``, at any level: subquery, CTE, DECLARE CURSOR) is also one ``update_row`` per locked table, with
``locking`` naming the strongest clause on it and ``columns`` empty (see :func:`_locking_actions`);
``EXPLAIN ANALYZE x`` is classified as ``x`` (plain EXPLAIN does not execute: ``execute_sql``);
``COPY ... FROM`` is ``insert_row`` (plus ``execute_sql`` when it reads a server file or program);
``COPY ... TO`` is ``execute_sql``; ``SELECT INTO`` and ``CREATE TABLE AS`` are ``execute_sql``;
``DECLARE c CURSOR FOR <query>`` is classified as its query. ``FETCH`` / ``MOVE`` / ``CLOSE`` classify
to ``[]`` here: what a FETCH runs is the cursor's query, which only the session knows
(:mod:`enact_proxy.pgwire.session` judges it there; see :func:`cursor_statement`). Everything else is
``execute_sql``.

Functions: a statement that calls a function that could write or change the session is additionally
``execute_sql`` with ``reason="functions"`` and ``functions`` listing them. Safe means: unqualified or
``pg_catalog.``-qualified, and named in :data:`~enact_proxy.pgwire.catalog_functions.SAFE_CATALOG_FUNCTIONS`
(every overload immutable or stable in PostgreSQL 18, plus a few harmless volatile ones). So
``set_config``, ``nextval``/``setval``/``currval``, ``pg_advisory_lock`` and friends,
``pg_terminate_backend``, ``pg_cancel_backend``, ``pg_reload_conf``, ``pg_read_file``, ``lo_import``,
``lo_export``, ``query_to_xml``, ``table_to_xml``, ``dblink_exec`` and any function outside
``pg_catalog`` or not known are unsafe. An operator qualified with a schema other than ``pg_catalog``
(``OPERATOR(public.===)``) counts as an unsafe function too. Not seen: functions run implicitly by
triggers, defaults, casts to user types or unqualified user-defined operators.

Not actions (``[]``): BEGIN / START TRANSACTION / COMMIT / END / ROLLBACK / ABORT / SAVEPOINT / RELEASE /
ROLLBACK TO, ``SET TRANSACTION ...``, SHOW of anything, and SET / RESET (also ``SET LOCAL``) of
:data:`HARMLESS_SETTINGS`. ``client_encoding`` is harmless only as UTF8: other client encodings could
make the server read a statement's bytes differently from this parser. ``PREPARE TRANSACTION`` and
``COMMIT/ROLLBACK PREPARED``, ``RESET ALL``, ``DISCARD`` and every other SET are ``execute_sql``.

A statement that does not parse raises :class:`SqlParseError` (callers refuse). The empty string (or
only comments) classifies to ``[]``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast.parser import ParseError, parse_sql_json, scan

from enact_proxy.models import ActionRequest
from enact_proxy.pgwire.catalog_functions import SAFE_CATALOG_FUNCTIONS

SYSTEM = "postgres"
CACHE_SIZE = 4096

HARMLESS_SETTINGS = frozenset(
    {
        "client_encoding",
        "application_name",
        "datestyle",
        "timezone",
        "extra_float_digits",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "intervalstyle",
        "client_min_messages",
    }
)
_UTF8_NAMES = frozenset({"utf8", "utf-8", "unicode"})
_TRANSACTION_CONTROL = frozenset(
    {
        "TRANS_STMT_BEGIN",
        "TRANS_STMT_START",
        "TRANS_STMT_COMMIT",
        "TRANS_STMT_ROLLBACK",
        "TRANS_STMT_SAVEPOINT",
        "TRANS_STMT_RELEASE",
        "TRANS_STMT_ROLLBACK_TO",
    }
)
_DML = {"InsertStmt": "insert_row", "UpdateStmt": "update_row", "DeleteStmt": "delete_row"}
_MERGE_COMMANDS = {"CMD_UPDATE": "update_row", "CMD_DELETE": "delete_row", "CMD_INSERT": "insert_row"}
_FALSE_WORDS = frozenset({"false", "off", "0", "no", "f", "n"})
_TRUE_WORDS = frozenset({"true", "on", "1", "yes", "t", "y"})

Node = dict[str, Any]


class SqlParseError(ValueError):
    """The text is not SQL PostgreSQL would accept; ``reason`` says where."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def classify(sql: str) -> list[ActionRequest]:
    """Every action the statements in ``sql`` perform, in statement order.

    Raises :class:`SqlParseError` when the text does not parse.
    """
    return to_requests(_classify_text(sql)[0])


@dataclass(frozen=True, slots=True)
class CursorOp:
    """A statement that creates, runs or drops a cursor (a named portal), for the session to track.

    ``op``: ``"declare"`` (``DECLARE name ... CURSOR FOR q``: ``actions`` are q's, ``hold`` for WITH
    HOLD), ``"fetch"`` (``FETCH`` or ``MOVE``: it runs the named cursor's query further) or ``"close"``
    (``name`` None for ``CLOSE ALL``). ``name`` is as PostgreSQL resolves the identifier; ``text`` is the
    statement's own text.
    """

    op: str
    name: str | None
    text: str
    hold: bool = False
    actions: Found = ()


def classify_statements(sql: str) -> tuple[list[ActionRequest], tuple[CursorOp, ...]]:
    """:func:`classify`, plus the cursor operations of the text, in statement order (one parse)."""
    found, ops = _classify_text(sql)
    return to_requests(found), ops


def to_requests(found: Found) -> list[ActionRequest]:
    """Fresh :class:`ActionRequest` objects (callers may change them) for cached ``(action, payload)``s."""
    return [
        ActionRequest.model_construct(system=SYSTEM, action=action, payload=_fresh(payload), request=None)
        for action, payload in found
    ]


def cache_info() -> Any:
    """The LRU cache's hit/miss counters (``functools`` ``CacheInfo``)."""
    return _analyse.cache_info()


def template_cache_size() -> int:
    """How many statement templates are cached (bounded by :data:`CACHE_SIZE`)."""
    return len(_templates)


Found = tuple[tuple[str, dict[str, Any]], ...]
# template key -> (where the statement starts, chars after it or None for "to the end", its actions)
_templates: dict[tuple[str, tuple[str, ...]], tuple[int, int | None, Found]] = {}
_LITERAL_TOKENS = frozenset({"ICONST", "FCONST"})


def _classify_text(sql: str) -> tuple[Found, tuple[CursorOp, ...]]:
    key = _template_key(sql)
    if key is None:
        found, _, ops = _analyse(sql)
        return found, ops
    entry = _templates.get(key)
    if entry is None:
        found, span, ops = _analyse(sql)
        if span is not None:
            if len(_templates) >= CACHE_SIZE:
                with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                    del _templates[next(iter(_templates))]
            _templates[key] = (span[0], span[1], found)
        return found, ops
    # Only single SELECT / INSERT / UPDATE / DELETE statements are templated: never a cursor operation.
    start, tail, found = entry
    text = sql[start : len(sql) - tail if tail is not None else len(sql)].strip()
    return tuple((action, {**payload, "statement": text}) for action, payload in found), ()


def _template_key(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """The text with its numeric literals replaced, and its token kinds; None when it has none."""
    if not sql.isascii():  # the scanner's offsets are then characters, not bytes: keep it simple
        return None
    try:
        tokens = scan(sql)
    except Exception:  # noqa: BLE001 - anything the lexer rejects goes the exact way (and fails there)
        return None
    parts: list[str] = []
    last = 0
    for token in tokens:
        if token.name in _LITERAL_TOKENS:
            parts.append(sql[last : token.start])
            parts.append("\x00" + token.name)
            last = token.end + 1
    if not parts:
        return None
    parts.append(sql[last:])
    return "".join(parts), tuple(token.name for token in tokens)


def _fresh(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, list) else value for key, value in payload.items()}


@lru_cache(maxsize=CACHE_SIZE)
def _analyse(sql: str) -> tuple[Found, tuple[int, int | None] | None, tuple[CursorOp, ...]]:
    """The actions, (start, chars after) of the statement when its literals cannot matter, cursor ops."""
    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError as exc:
        raise SqlParseError(str(exc)) from exc
    encoded = sql.encode("utf-8")
    found: list[tuple[str, dict[str, Any]]] = []
    ops: list[CursorOp] = []
    stmts = tree.get("stmts", [])
    span: tuple[int, int | None] | None = None
    for raw in stmts:
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0)
        chunk = encoded[start : start + length] if length else encoded[start:]
        text = chunk.decode("utf-8", errors="replace").strip()
        node_type, fields = _unwrap(raw["stmt"])
        actions = _statement_actions(node_type, fields, text)
        found.extend(actions)
        op = _cursor_op(node_type, fields, text, actions)
        if op is not None:
            ops.append(op)
        if len(stmts) == 1 and _literals_cannot_matter(node_type, fields):
            span = (start, len(encoded) - start - length if length else None)
    return tuple(found), span, tuple(ops)


_CURSOR_OPT_HOLD = 0x0020  # PostgreSQL's parsenodes.h


def _cursor_op(node_type: str, fields: Node, text: str, actions: list[tuple[str, dict[str, Any]]]) -> CursorOp | None:
    if node_type == "DeclareCursorStmt":
        return CursorOp("declare", fields.get("portalname", ""), text,
                        hold=bool(int(fields.get("options", 0)) & _CURSOR_OPT_HOLD), actions=tuple(actions))
    if node_type == "FetchStmt":
        return CursorOp("fetch", fields.get("portalname", ""), text)
    if node_type == "ClosePortalStmt":
        return CursorOp("close", fields.get("portalname"), text)
    return None


_TEMPLATED = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"})


def _literals_cannot_matter(node_type: str, fields: Node) -> bool:
    """Whether every constant sits where classification never reads its value (see the module doc)."""
    if node_type not in _TEMPLATED:
        return False
    stack: list[Any] = [fields]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        kind, sub = _unwrap(item)
        if kind in ("A_Const", "Integer", "Float", "Boolean", "TypeCast", "NullTest", "BooleanTest"):
            return False
        if kind == "A_Expr" and sub.get("kind") == "AEXPR_OP":
            left, right = sub.get("lexpr"), sub.get("rexpr")
            for mine, other in ((left, right), (right, left)):
                if _unwrap(mine)[0] == "A_Const" and _unwrap(other)[0] == "ColumnRef":
                    continue
                stack.append(mine)
            stack.extend(v for k, v in sub.items() if k not in ("lexpr", "rexpr") and isinstance(v, dict | list))
            continue
        for key, value in sub.items():
            if key == "valuesLists" and isinstance(value, list):
                for row in value:
                    items = _unwrap(row)[1].get("items", [])
                    stack.extend(i for i in items if _unwrap(i)[0] != "A_Const")
            elif isinstance(value, dict | list):
                stack.append(value)
    return True


# ---- statements -------------------------------------------------------------------------------


def _statement_actions(node_type: str, fields: Node, text: str) -> list[tuple[str, dict[str, Any]]]:
    if _passes_without_action(node_type, fields):
        return []
    context = _Statement(node_type, fields, text)
    actions = _effects(node_type, fields, context)
    if not actions:  # every statement is at least one action (fail closed should a rule above miss one)
        actions.append(context.execute_sql(reason="no_effect_found"))
    unsafe = _unsafe_functions(fields)
    if unsafe:
        actions.append(context.execute_sql(reason="functions", functions=unsafe))
    return _dedupe(actions)


class _Statement:
    """What every action of one statement shares."""

    def __init__(self, node_type: str, fields: Node, text: str):
        self.kind = node_type
        self.text = text
        self.ctes = {
            sub["ctename"] for kind, sub in _walk(fields) if kind == "CommonTableExpr" and "ctename" in sub
        }
        self.tables = sorted({_qualified(rv) for rv in _range_vars(fields) if not self.is_cte(rv)})

    def is_cte(self, range_var: Node) -> bool:
        return "schemaname" not in range_var and range_var.get("relname") in self.ctes

    def row_action(self, action: str, table: str | None, columns: list[str], has_where: bool,
                   constant_true: bool, **extra: Any) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "table": table,
            "tables": list(self.tables),
            "columns": columns,
            "has_where": has_where,
            "where_constant_true": constant_true,
            "statement": self.text,
            "kind": self.kind,
        }
        payload.update(extra)
        return action, payload

    def execute_sql(self, reason: str = "statement", **extra: Any) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"kind": self.kind, "statement": self.text, "tables": list(self.tables),
                                   "reason": reason}
        payload.update(extra)
        return "execute_sql", payload


def _effects(node_type: str, fields: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    """The statement's own action(s) plus those of every data-modifying statement nested in it."""
    if node_type == "ExplainStmt":
        if not _explain_executes(fields):
            return [st.execute_sql()]
        inner_type, inner = _unwrap(fields["query"])
        return _effects(inner_type, inner, st)
    if node_type == "DeclareCursorStmt":
        inner_type, inner = _unwrap(fields["query"])
        return _effects(inner_type, inner, st)
    actions = _own_actions(node_type, fields, st)
    if node_type == "SelectStmt":
        actions.extend(_locking_actions(fields, st))
    for kind, sub in _walk(fields):
        if kind in _DML or kind == "MergeStmt":
            actions.extend(_own_actions(kind, sub, st))
        elif kind == "SelectStmt":
            actions.extend(_locking_actions(sub, st))
    return actions


def _own_actions(node_type: str, fields: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    if node_type == "SelectStmt":
        if "intoClause" in fields:
            return [st.execute_sql()]
        return [_select(fields, st)]
    if node_type == "InsertStmt":
        return _insert(fields, st)
    if node_type == "UpdateStmt":
        has_where, constant = _bounded(fields.get("whereClause"))
        return [st.row_action("update_row", _qualified(fields["relation"]), _target_names(fields),
                              has_where, constant)]
    if node_type == "DeleteStmt":
        has_where, constant = _bounded(fields.get("whereClause"))
        return [st.row_action("delete_row", _qualified(fields["relation"]), [], has_where, constant)]
    if node_type == "MergeStmt":
        return _merge(fields, st)
    if node_type == "CopyStmt":
        return _copy(fields, st)
    return [st.execute_sql()]


def _select(fields: Node, st: _Statement) -> tuple[str, dict[str, Any]]:
    table = next((_qualified(rv) for rv in _from_range_vars(fields) if not st.is_cte(rv)), None)
    columns = _dedupe_names(_column_names(_select_lists(fields)))
    has_where, constant = _bounded(fields.get("whereClause"))
    return st.row_action("select_rows", table, columns, has_where, constant)


def _insert(fields: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    table = _qualified(fields["relation"])
    if "cols" in fields:
        columns = [_unwrap(col)[1]["name"] for col in fields["cols"]]
    else:
        columns = ["*"] if "selectStmt" in fields else []
    actions = [st.row_action("insert_row", table, columns, False, False)]
    conflict = fields.get("onConflictClause")
    if conflict and conflict.get("action") == "ONCONFLICT_UPDATE":
        actions.append(st.row_action("update_row", table, _target_names(conflict), True, False,
                                     on_conflict=True))
    return actions


def _merge(fields: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    table = _qualified(fields["relation"])
    join_bounded, join_constant = _bounded(fields.get("joinCondition"))
    actions = []
    for clause in fields.get("mergeWhenClauses", []):
        _, when = _unwrap(clause)
        command = when.get("commandType", "")
        action = _MERGE_COMMANDS.get(command)
        if action is None:
            if command != "CMD_NOTHING":  # a command this code does not know: fail closed
                actions.append(st.execute_sql(reason="merge_command", command=command))
            continue
        if action == "insert_row":
            written = _target_names(when) if "targetList" in when else None
            columns = written if written is not None else (["*"] if "values" in when else [])
            actions.append(st.row_action(action, table, columns, False, False))
            continue
        has_where, constant = join_bounded, join_constant
        if not has_where and "condition" in when:
            has_where, constant = _bounded(when["condition"])
        columns = _target_names(when) if action == "update_row" else []
        actions.append(st.row_action(action, table, columns, has_where, constant))
    if not actions:
        # Every branch DO NOTHING: it only reads (PostgreSQL needs just SELECT on the target and runs it
        # in a read-only transaction), but every statement is at least one action.
        actions.append(st.row_action("select_rows", table, [], join_bounded, join_constant, merge="do nothing"))
    return actions


_LOCK_STRENGTHS = {
    "LCS_FORUPDATE": "FOR UPDATE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
}
_LOCK_ORDER = ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE")  # strongest first


def _locking_actions(select: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    """``update_row`` of each table a row-locking clause of this SELECT level locks.

    PostgreSQL requires UPDATE privilege for ``FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE`` and
    refuses them in a read-only transaction: a row lock is a write. Without ``OF``, a clause locks every
    table of this level's FROM (into sub-selects and joins, not into CTEs it references, as PostgreSQL
    does); ``OF name`` locks the FROM item so named (a sub-select's alias: every table in it). A name that
    matches no FROM item is kept as written (PostgreSQL would refuse the statement; we never drop it).
    Bounded (``has_where``) when the WHERE bounds rows or a LIMIT / FETCH FIRST caps them.
    """
    clauses = select.get("lockingClause")
    if not clauses:
        return []
    items = _from_items(select.get("fromClause", []), st)
    has_where, constant = _bounded(select.get("whereClause"))
    if not has_where and select.get("limitCount") is not None and not _is_null(select["limitCount"]):
        has_where = True
    strongest: dict[str, int] = {}  # table -> index into _LOCK_ORDER; one action per locked table
    for raw in clauses:
        _, clause = _unwrap(raw)
        strength = _LOCK_ORDER.index(_LOCK_STRENGTHS.get(clause.get("strength", ""), "FOR UPDATE"))
        named = clause.get("lockedRels")
        if not named:
            locked = [table for tables in items.values() for table in tables]
        else:
            locked = []
            for rel in named:
                _, range_var = _unwrap(rel)
                name = range_var.get("relname", "")
                if "schemaname" not in range_var and name in items:
                    locked.extend(items[name])
                else:
                    locked.append(_qualified(range_var))
        for table in locked:
            strongest[table] = min(strongest.get(table, strength), strength)
    return [st.row_action("update_row", table, [], has_where, constant, locking=_LOCK_ORDER[rank])
            for table, rank in strongest.items()]


def _from_items(from_clause: list[Any], st: _Statement) -> dict[str, list[str]]:
    """FROM item reference name (alias, else table name) -> the tables a lock on it reaches."""
    items: dict[str, list[str]] = {}
    for item in from_clause:
        kind, fields = _unwrap(item)
        if kind == "RangeVar":
            if not st.is_cte(fields):
                name = fields.get("alias", {}).get("aliasname") or fields.get("relname", "")
                items.setdefault(name, []).append(_qualified(fields))
        elif kind == "JoinExpr":
            for side in ("larg", "rarg"):
                if side in fields:
                    for name, tables in _from_items([fields[side]], st).items():
                        items.setdefault(name, []).extend(tables)
        elif kind == "RangeSubselect":
            name = fields.get("alias", {}).get("aliasname", "")
            _, sub = _unwrap(fields.get("subquery"))
            items.setdefault(name, []).extend(_subquery_tables(sub, st))
    return items


def _subquery_tables(select: Node, st: _Statement) -> list[str]:
    """The tables a lock applied to a sub-select reaches: every table of its FROM, each arm of a set op."""
    if select.get("op", "SETOP_NONE") != "SETOP_NONE":
        return [*_subquery_tables(select.get("larg", {}), st), *_subquery_tables(select.get("rarg", {}), st)]
    items = _from_items(select.get("fromClause", []), st)
    return [table for tables in items.values() for table in tables]


def _is_null(expr: Any) -> bool:
    kind, fields = _unwrap(expr)
    return kind == "A_Const" and bool(fields.get("isnull"))


def _copy(fields: Node, st: _Statement) -> list[tuple[str, dict[str, Any]]]:
    if not fields.get("is_from"):
        return [st.execute_sql()]
    names = [_unwrap(item)[1].get("sval", "") for item in fields.get("attlist", [])]
    actions = [st.row_action("insert_row", _qualified(fields["relation"]), names or ["*"], False, False)]
    if fields.get("filename") or fields.get("is_program"):
        actions.append(st.execute_sql(reason="server_file"))
    return actions


def _passes_without_action(node_type: str, fields: Node) -> bool:
    if node_type == "TransactionStmt":
        return fields.get("kind") in _TRANSACTION_CONTROL
    if node_type in ("VariableShowStmt", "FetchStmt", "ClosePortalStmt"):
        return True
    if node_type == "VariableSetStmt":
        return _harmless_setting(fields)
    return False


def _harmless_setting(fields: Node) -> bool:
    kind, name = fields.get("kind"), fields.get("name", "")
    if kind == "VAR_SET_MULTI":
        return name == "TRANSACTION"
    if kind not in ("VAR_SET_VALUE", "VAR_SET_DEFAULT", "VAR_SET_CURRENT", "VAR_RESET"):
        return False
    if name not in HARMLESS_SETTINGS:
        return False
    if name == "client_encoding" and kind == "VAR_SET_VALUE":
        values = [_unwrap(arg)[1].get("sval", {}).get("sval") for arg in fields.get("args", [])]
        return len(values) == 1 and isinstance(values[0], str) and values[0].lower() in _UTF8_NAMES
    return True


def _explain_executes(fields: Node) -> bool:
    for option in fields.get("options", []):
        _, elem = _unwrap(option)
        if elem.get("defname") != "analyze":
            continue
        if "arg" not in elem:
            return True
        arg_type, arg = _unwrap(elem["arg"])
        if arg_type == "Boolean":
            return bool(arg.get("boolval", False))
        if arg_type == "Integer":
            return arg.get("ival", 0) != 0
        if arg_type == "String":
            return str(arg.get("sval", "")).lower() not in _FALSE_WORDS
        return True  # an argument we do not understand: assume it runs
    return False


# ---- functions --------------------------------------------------------------------------------


def _unsafe_functions(fields: Node) -> list[str]:
    unsafe: list[str] = []
    for kind, sub in _walk(fields):
        if kind == "FuncCall":
            parts = [_unwrap(part)[1].get("sval", "") for part in sub.get("funcname", [])]
            if not _safe_function(parts):
                unsafe.append(".".join(parts))
        elif kind == "A_Expr":
            parts = [_unwrap(part)[1].get("sval", "") for part in sub.get("name", [])]
            if len(parts) > 1 and parts[0] != "pg_catalog":
                unsafe.append(f"OPERATOR({'.'.join(parts)})")
    return _dedupe_names(unsafe)


def _safe_function(parts: list[str]) -> bool:
    if len(parts) == 1:
        return parts[0] in SAFE_CATALOG_FUNCTIONS
    return len(parts) == 2 and parts[0] == "pg_catalog" and parts[1] in SAFE_CATALOG_FUNCTIONS


# ---- WHERE ------------------------------------------------------------------------------------


def _bounded(expr: Any) -> tuple[bool, bool]:
    """(has_where, where_constant_true) for a WHERE / join condition (None when absent)."""
    if expr is None:
        return False, False
    kind, _ = _unwrap(expr)
    if kind == "CurrentOfExpr":
        return True, False
    truth = _truth(expr)
    if truth is True:
        return False, True
    if truth is False:
        return True, False  # matches no row: bounded
    if not any(sub_kind == "ColumnRef" for sub_kind, _ in _walk(expr)) and kind != "ColumnRef":
        return False, True
    return True, False


_UNKNOWN = object()


def _truth(expr: Any) -> bool | None:
    """The expression's value when it is the same for every row, else None."""
    value = _constant(expr)
    if isinstance(value, bool):
        return value
    kind, fields = _unwrap(expr)
    if kind == "BoolExpr":
        values = [_truth(arg) for arg in fields.get("args", [])]
        op = fields.get("boolop")
        if op == "NOT_EXPR":
            return None if values[0] is None else not values[0]
        if op == "AND_EXPR":
            return False if False in values else (True if all(v is True for v in values) else None)
        if op == "OR_EXPR":
            return True if True in values else (False if all(v is False for v in values) else None)
        return None
    if kind == "A_Expr" and fields.get("kind") == "AEXPR_OP":
        names = [_unwrap(part)[1].get("sval") for part in fields.get("name", [])]
        op = names[-1] if names and (len(names) == 1 or names[0] == "pg_catalog") else None
        left, right = fields.get("lexpr"), fields.get("rexpr")
        if op in ("=", "<=", ">=") and left is not None and _same(left, right):
            return True
        a, b = _constant(left), _constant(right)
        if a is _UNKNOWN or b is _UNKNOWN or a is None or b is None or type(a) is not type(b):
            return None
        comparisons = {"=": a == b, "<>": a != b, "!=": a != b}
        if isinstance(a, int | float) and not isinstance(a, bool):
            comparisons.update({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b})  # type: ignore[operator]
        return comparisons.get(op or "")
    if kind == "NullTest":
        value = _constant(fields.get("arg"))
        if value is _UNKNOWN:
            return None
        is_null = value is None
        return is_null if fields.get("nulltesttype") == "IS_NULL" else not is_null
    if kind == "BooleanTest":
        inner = _truth(fields.get("arg"))
        if inner is None:
            return None
        test = fields.get("booltesttype", "")
        return {"IS_TRUE": inner, "IS_NOT_FALSE": inner, "IS_FALSE": not inner,
                "IS_NOT_TRUE": not inner}.get(test)
    return None


def _constant(expr: Any) -> Any:
    """A literal's Python value (None for NULL), or _UNKNOWN."""
    if expr is None:
        return _UNKNOWN
    kind, fields = _unwrap(expr)
    if kind == "A_Const":
        if fields.get("isnull"):
            return None
        if "boolval" in fields:
            return bool(fields["boolval"].get("boolval", False))
        if "ival" in fields:
            return int(fields["ival"].get("ival", 0))
        if "fval" in fields:
            try:
                return float(fields["fval"].get("fval", "0"))
            except ValueError:
                return _UNKNOWN
        if "sval" in fields:
            return str(fields["sval"].get("sval", ""))
        return _UNKNOWN
    if kind == "TypeCast":
        names = [_unwrap(n)[1].get("sval") for n in fields.get("typeName", {}).get("names", [])]
        value = _constant(fields.get("arg"))
        if names and names[-1] in ("bool", "boolean") and (len(names) == 1 or names[0] == "pg_catalog"):
            if isinstance(value, bool) or value is None:
                return value
            if isinstance(value, int):
                return value != 0
            if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
                return value.strip().lower() in _TRUE_WORDS
        return _UNKNOWN
    return _UNKNOWN


def _same(left: Any, right: Any) -> bool:
    return _without_locations(left) == _without_locations(right)


def _without_locations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_locations(v) for k, v in value.items() if k != "location"}
    if isinstance(value, list):
        return [_without_locations(v) for v in value]
    return value


# ---- tree helpers -----------------------------------------------------------------------------


def _unwrap(node: Any) -> tuple[str, Node]:
    """``{"SelectStmt": {...}}`` -> ("SelectStmt", {...}); an unwrapped struct -> ("", itself)."""
    if isinstance(node, dict) and len(node) == 1:
        ((key, value),) = node.items()
        if key[:1].isupper() and isinstance(value, dict):
            return key, value
    return "", node if isinstance(node, dict) else {}


def _nodes(root: Any) -> Iterator[tuple[str, Node, Any]]:
    """Every mapping at or below ``root``, depth first in written order: (kind, fields, the mapping)."""
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if not isinstance(item, dict):
            continue
        kind, fields = _unwrap(item)
        yield kind, fields, item
        stack.extend(reversed([v for v in fields.values() if isinstance(v, dict | list)]))


def _walk(root: Any) -> Iterator[tuple[str, Node]]:
    """Every typed node below ``root`` (not ``root`` itself), depth first in written order."""
    return ((kind, fields) for kind, fields, item in _nodes(root) if kind and item is not root)


def _range_vars(root: Any) -> Iterator[Node]:
    """Every RangeVar (wrapped in a list or a bare ``relation`` field) at or below ``root``."""
    return (fields for _, fields, _ in _nodes(root) if "relname" in fields)


def _from_range_vars(select: Node) -> Iterator[Node]:
    """Tables of a SELECT's FROM (and of each arm of a UNION), in the order written."""
    if select.get("op", "SETOP_NONE") != "SETOP_NONE":
        for arm in ("larg", "rarg"):
            if arm in select:
                yield from _from_range_vars(select[arm])
        return
    for item in select.get("fromClause", []):
        kind, fields = _unwrap(item)
        if kind == "RangeVar":
            yield fields
        else:
            yield from _range_vars(fields)


def _select_lists(select: Node) -> list[Any]:
    if select.get("op", "SETOP_NONE") != "SETOP_NONE":
        return [*_select_lists(select.get("larg", {})), *_select_lists(select.get("rarg", {}))]
    return list(select.get("targetList", []))


def _column_names(target_list: list[Any]) -> list[str]:
    names: list[str] = []
    for kind, fields in _walk(target_list):
        if kind == "ColumnRef":
            last_kind, last = _unwrap(fields.get("fields", [{}])[-1])
            names.append("*" if last_kind == "A_Star" else str(last.get("sval", "")))
    return names


def _target_names(fields: Node) -> list[str]:
    return _dedupe_names([_unwrap(t)[1].get("name", "") for t in fields.get("targetList", [])])


def _qualified(range_var: Node) -> str:
    return ".".join(range_var[key] for key in ("catalogname", "schemaname", "relname") if range_var.get(key))


def _dedupe_names(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _dedupe(actions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    unique: list[tuple[str, dict[str, Any]]] = []
    for action in actions:
        if action not in unique:
            unique.append(action)
    return unique
