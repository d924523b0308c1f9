"""One agent session after login: every statement judged, refused ones never reach the database.

Agent -> upstream: each frontend message is handled by type. ``Query`` and ``Parse`` are classified and
judged; a PASS is made durable (``engine.open``) before the message is forwarded; ``Bind`` / ``Execute``
of a statement or portal the sidecar did not judge, or judged and refused, are refused. ``FunctionCall``
is ``execute_sql``. ``FETCH`` / ``MOVE`` (in a Query or through Parse/Execute) are judged, each time, as
what the cursor they name runs: an SQL-declared cursor's query, or the statement of a portal the agent
bound; a name the session did not see created is refused (see "cursors" below).

A refusal is never answered by the sidecar on its own: it sends the upstream a statement that fails
(a syntax error carrying a one-time token) in place of the refused one. So the upstream really is in
the state PostgreSQL's own error handling leaves it in (a transaction block is failed and cannot
commit; the rest of an extended-protocol batch is skipped until Sync, and its implicit transaction
rolled back), and the answers reach the agent in order. The upstream's error for that statement is
replaced by ``Blocked by Enact: ...`` (SQLSTATE 42501) whose detail names the receipt.

Upstream -> agent: bytes are forwarded as they come, in whole messages; only CommandComplete,
EmptyQueryResponse, PortalSuspended, FunctionCallResponse, ErrorResponse and ReadyForQuery are looked
at, to close each opened receipt with its outcome (command tag and rows, or the server's error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from enact_proxy import pipeline
from enact_proxy.engine import COLLATERAL_PREFIX, Engine, Judgement, Verdict, block_message
from enact_proxy.models import ActionRequest, ActionResult, Decision, RequestSummary
from enact_proxy.pgwire import cache
from enact_proxy.pgwire.classify import SYSTEM, CursorOp, SqlParseError, to_requests
from enact_proxy.pgwire.framing import DEFAULT_MAX_MESSAGE_SIZE, Framer
from enact_proxy.pgwire.messages import (
    ErrorResponse,
    Flush,
    Frame,
    Parse,
    ProtocolError,
    Query,
)
from enact_proxy.pipeline import NotDurable
from enact_proxy.receipts.waiting import durable

log = logging.getLogger("enact.pgwire")

READ_SIZE = 256 * 1024
INSUFFICIENT_PRIVILEGE = "42501"
_HEADER = struct.Struct("!ci")
_I32 = struct.Struct("!i")
_TRACKED = frozenset(b"CEIsVZ")
NOT_FORWARDED = {"outcome": "not forwarded"}
NOT_EXECUTED = {"outcome": "not executed: an earlier message of its batch failed"}
UNKNOWN = {"outcome": "unknown"}


@dataclass(slots=True)
class Prepared:
    """A statement the agent parsed: its actions, and either its refusal or verdicts not yet used.

    ``cursor_ops``: its DECLARE / FETCH / MOVE / CLOSE statements, applied when an Execute of it is
    forwarded (a FETCH or MOVE is judged then, as what the cursor it names runs).
    """

    actions: list[ActionRequest]
    refusal: ErrorResponse | None = None
    fresh: Judgement | None = None  # judged at Parse, used by the first Execute
    cursor_ops: tuple[CursorOp, ...] = ()


@dataclass(slots=True)
class Portal:
    statement: Prepared
    suspended: bool = False


@dataclass(slots=True)
class Declaration:
    """One forwarded ``DECLARE``: what a FETCH / MOVE of the cursor runs, until its transaction ends."""

    actions: list[ActionRequest]
    hold: bool
    batch: int  # the ReadyForQuery that ends the batch it was sent in
    unknowable: bool = False  # stands for too many declarations: a FETCH is refused until CLOSE


MAX_CURSORS = 1024  # cursor names tracked per session; beyond, the oldest is forgotten (its FETCH refused)
MAX_DECLARATIONS = 16  # declarations kept per cursor name; beyond, a FETCH of it is refused until CLOSE
MAX_FETCH_DEPTH = 8  # a portal running FETCH of a portal running FETCH of ...: deeper is refused


@dataclass(slots=True)
class Pending:
    """One forwarded execution (Query, Execute or FunctionCall) whose answer closes its receipts.

    ``batch`` is the number of the ReadyForQuery that ends it; a Query collects every result until
    then, an Execute ends at its first result.
    """

    batch: int
    simple: bool
    verdicts: list[Verdict]
    tickets: list[Any]
    portal: Portal | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    judgement: Judgement | None = None  # its state claims: released when the server refuses it


@dataclass(slots=True)
class Refusal:
    """A refusal on its way: the upstream's error for the failing stand-in is replaced by ``error``."""

    token: str
    error: bytes
    batch: int
    simple: bool
    verdicts: list[Verdict]  # their BLOCK receipts are written once the refusal's turn comes


def refusal_error(verdicts: Sequence[Verdict], run_ids: Sequence[str] | None = None) -> ErrorResponse:
    ids = list(run_ids if run_ids is not None else [v.run_id for v in verdicts])
    detail = ("receipt " if len(ids) == 1 else "receipts ") + ", ".join(ids)
    return ErrorResponse.build(INSUFFICIENT_PRIVILEGE, block_message(verdicts), detail=detail)


def command_outcome(tag: str) -> dict[str, Any]:
    """``INSERT 0 3`` -> {"command_tag": "INSERT 0 3", "rows": 3}."""
    outcome: dict[str, Any] = {"command_tag": tag}
    last = tag.rsplit(" ", 1)[-1]
    if last.isdigit() and " " in tag:
        outcome["rows"] = int(last)
    return outcome


def _cstrings(body: bytes, count: int) -> tuple[list[bytes], int]:
    """The first ``count`` NUL-terminated fields of ``body`` and where the rest starts."""
    fields, pos = [], 0
    for _ in range(count):
        end = body.find(b"\x00", pos)
        if end < 0:
            raise ProtocolError("string field without its terminating NUL")
        fields.append(body[pos:end])
        pos = end + 1
    return fields, pos


class Relay:
    """The judged relay between one agent and its upstream connection."""

    def __init__(self, engine: Engine | Callable[[], Engine], agent: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter], framer: Framer,
                 summary: RequestSummary, backlog: Sequence[Frame] = (), upstream_bytes: bytes = b"",
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE):
        # The sidecar's engine of the moment: a reload decides this session's next statement too.
        self._engine_now: Callable[[], Engine] = engine if callable(engine) else (lambda: engine)
        self.agent_reader, self.agent_writer = agent
        self.up_reader, self.up_writer = upstream
        self.framer = framer
        self.summary = summary
        self.backlog = list(backlog)
        self.up_buffer = bytearray(upstream_bytes)
        self.max_message_size = max_message_size
        self.statements: dict[bytes, Prepared] = {}
        self.portals: dict[bytes, Portal] = {}
        self.cursors: dict[bytes, list[Declaration]] = {}  # SQL-declared cursors, by name
        self.pending: deque[Pending] = deque()
        self.refusals: deque[Refusal] = deque()
        self.unwritten: list[Any] = []  # BLOCK receipts on their way to disk, awaited before the agent hears
        # receipts to close with their outcome once the answers are on their way to the agent:
        # (ticket, verdict, success, output)
        self.closing: list[tuple[Any, Verdict, bool | None, dict[str, Any]]] = []
        self.skipping = False  # after a refusal in an extended-protocol batch, until its Sync
        self.sent_batches = 0  # Syncs, Queries and FunctionCalls forwarded (each ends in ReadyForQuery)
        self.seen_ready = 0
        self._token_prefix = "enact_refused_" + secrets.token_hex(8) + "_"
        self._token_count = 0

    # ---- running ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine_now()

    async def run(self) -> None:
        agent = asyncio.ensure_future(self._agent_to_upstream())
        upstream = asyncio.ensure_future(self._upstream_to_agent())
        try:
            done, _ = await asyncio.wait({agent, upstream}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
        finally:
            for task in (agent, upstream):
                task.cancel()
            for task in (agent, upstream):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._finish_all(UNKNOWN, None)
            while self.refusals:
                self._record(self.refusals.popleft())

    async def _agent_to_upstream(self) -> None:
        frames = self.backlog
        self.backlog = []
        while True:
            out: list[bytes] = []
            for frame in frames:
                if not await self._frontend(frame, out):
                    if out:
                        self.up_writer.write(b"".join(out))
                    return
            if out:
                self.up_writer.write(b"".join(out))
                await self.up_writer.drain()
            data = await self.agent_reader.read(READ_SIZE)
            if not data:
                return
            frames = self.framer.feed(data)

    async def _upstream_to_agent(self) -> None:
        buffer = self.up_buffer
        while True:
            if buffer:
                chunk = self._scan(buffer)
                if self.unwritten:
                    await self._receipts_written()
                if chunk:
                    self.agent_writer.write(chunk)
                # The answers' receipts are closed once the agent has them: closing (drafting the
                # receipt, handing it to the writer) is not on the agent's path. Same loop step, same order.
                self._flush_closes()
                if chunk:
                    await self.agent_writer.drain()
            data = await self.up_reader.read(READ_SIZE)
            if not data:
                return
            buffer += data

    async def _receipts_written(self) -> None:
        waiting, self.unwritten = self.unwritten, []
        for future in waiting:
            try:
                await durable(future)
            except Exception:  # noqa: BLE001 - the statement is refused either way
                log.exception("could not write the receipt of a refused statement")

    # ---- upstream answers ---------------------------------------------------------------------

    def _scan(self, buffer: bytearray) -> bytes:
        """The whole messages at the front of ``buffer`` (removed from it), with refusals replaced."""
        size, pos, last = len(buffer), 0, 0
        parts: list[bytes] | None = None
        while size - pos >= 5:
            type_byte, length = _HEADER.unpack_from(buffer, pos)
            if length < 4 or length > self.max_message_size:
                raise ProtocolError(f"invalid message length {length} from the upstream")
            end = pos + 1 + length
            if end > size:
                break
            if type_byte[0] in _TRACKED:
                replacement = self._backend(type_byte, bytes(buffer[pos + 5:end]))
                if replacement is not None:
                    parts = parts if parts is not None else []
                    parts.append(bytes(buffer[last:pos]))
                    parts.append(replacement)
                    last = end
            pos = end
        if parts is None:
            chunk = bytes(buffer[:pos])
        else:
            parts.append(bytes(buffer[last:pos]))
            chunk = b"".join(parts)
        del buffer[:pos]
        return chunk

    def _backend(self, type_byte: bytes, body: bytes) -> bytes | None:
        if type_byte == b"Z":
            self._transaction_status(body)
            self._ready()
            return None
        current = self.pending[0] if self.pending and self.pending[0].batch == self.seen_ready else None
        if type_byte == b"E":
            error = ErrorResponse.decode(body)
            replacement = self._refusal_for(error)
            if replacement is not None:
                return replacement
            if current is not None:
                result = {"error": {"sqlstate": error.sqlstate, "message": error.message}}
                self._result(current, result)
            return None
        if current is None:
            return None
        if type_byte == b"C":
            self._result(current, command_outcome(body[:-1].decode("utf-8", "replace")))
        elif type_byte == b"I":
            self._result(current, {"command_tag": None, "empty_query": True})
        elif type_byte == b"s":
            if current.portal is not None:
                current.portal.suspended = True
            self._result(current, {"suspended": True})
        elif type_byte == b"V":
            self._result(current, {"function_result": True})
        return None

    def _refusal_for(self, error: ErrorResponse) -> bytes | None:
        for refusal in self.refusals:
            if refusal.batch != self.seen_ready:
                continue
            if refusal.simple or refusal.token in (error.message or ""):
                self.refusals.remove(refusal)
                self._record(refusal)
                return refusal.error
        return None

    def _result(self, pending: Pending, result: dict[str, Any]) -> None:
        pending.results.append(result)
        if not pending.simple:
            self.pending.popleft()
            self._close(pending)

    def _ready(self) -> None:
        ended = self.seen_ready
        self.seen_ready += 1
        while self.pending and self.pending[0].batch <= ended:
            pending = self.pending.popleft()
            if not pending.simple and not pending.results:
                self._close_tickets(pending, False, NOT_EXECUTED)
            else:
                self._close(pending)
        while self.refusals and self.refusals[0].batch <= ended:
            self._record(self.refusals.popleft())  # an earlier error in its batch answered for it

    def _close(self, pending: Pending) -> None:
        if not pending.tickets:
            return
        results = pending.results
        errors = [r["error"] for r in results if "error" in r]
        output = results[0] if len(results) == 1 else {"results": results}
        self._close_tickets(pending, not errors, output)
        if errors and pending.judgement is not None:
            self.engine.unclaim(pending.judgement)  # the server refused it: nothing was done

    def _close_tickets(self, pending: Pending, success: bool | None, output: dict[str, Any]) -> None:
        """Queue the receipts of ``pending`` to be closed with this outcome (see :meth:`_flush_closes`)."""
        for ticket, verdict in zip(pending.tickets, pending.verdicts, strict=False):
            self.closing.append((ticket, verdict, success, output))
        pending.tickets = []

    def _flush_closes(self) -> None:
        """Close the queued receipts, in order. Runs right after the answers they record were written to
        the agent, before any BLOCK receipt is recorded (answer order), and when the session ends."""
        closing, self.closing = self.closing, []
        for ticket, verdict, success, output in closing:
            action = verdict.action
            try:
                self.engine.close(ticket, [ActionResult(action=action.full_name if action else "execute",
                                                        system=SYSTEM, success=success, output=output)])
            except Exception:  # noqa: BLE001 - the intent stays in the journal: "outcome unknown"
                log.exception("could not close receipt %s", ticket.run_id)

    def _finish_all(self, output: dict[str, Any], success: bool | None) -> None:
        while self.pending:
            self._close_tickets(self.pending.popleft(), success, output)
        self._flush_closes()

    # ---- agent messages -----------------------------------------------------------------------

    async def _frontend(self, frame: Frame, out: list[bytes]) -> bool:
        """Handle one agent message, appending what goes upstream to ``out``; False ends the session."""
        kind = frame.type
        if self.skipping:
            if kind == b"S":
                self.skipping = False
                self._forward_batch_end(frame, out)
            elif kind == b"X":
                out.append(frame.encode())
                return False
            return True
        if kind == b"Q":
            await self._query(frame, out)
        elif kind == b"P":
            await self._parse(frame, out)
        elif kind == b"B":
            await self._bind(frame, out)
        elif kind == b"E":
            await self._execute(frame, out)
        elif kind == b"S":
            self._forward_batch_end(frame, out)
        elif kind == b"C":
            self._close_message(frame)
            out.append(frame.encode())
        elif kind in (b"D", b"H", b"d", b"c", b"f"):
            out.append(frame.encode())
        elif kind == b"F":
            await self._function_call(frame, out)
        elif kind == b"X":
            out.append(frame.encode())
            return False
        else:
            raise ProtocolError(f"unexpected frontend message type {kind!r}")
        return True

    def _forward_batch_end(self, frame: Frame, out: list[bytes]) -> None:
        out.append(frame.encode())
        self.sent_batches += 1

    async def _query(self, frame: Frame, out: list[bytes]) -> None:
        sql = Query.decode(frame.body).sql
        try:
            actions, ops = self._classify_statements(sql)
        except SqlParseError as exc:
            await self._decide_simple(frame, Judgement([self._unparsed(sql, exc)]), out)
            return
        if not actions and not ops:
            # No action (BEGIN, COMMIT, SHOW, a harmless SET, an empty query): nothing to judge or record,
            # so it is forwarded as a judgement of no verdicts would forward it, without the round.
            self.pending.append(Pending(self.sent_batches, True, [], []))
            self._forward_batch_end(frame, out)
            return
        if not ops:
            await self._decide_simple(frame, await self._judge(actions), out)
            return
        judgement, changes = await self._judge_cursor_ops(actions, ops)
        await self._decide_simple(frame, judgement, out)
        if judgement.forwards:
            self._apply_cursor_changes(changes, self.sent_batches - 1)

    async def _decide_simple(self, frame: Frame, judgement: Judgement, out: list[bytes]) -> None:
        """Forward a whole-batch message (Query, FunctionCall) once its passes are durable, or refuse it."""
        verdicts = judgement.verdicts
        if not judgement.forwards:
            await self._refuse(verdicts, out, simple=True)
            return
        try:
            tickets = await pipeline.open_intents(self.engine, judgement)
        except NotDurable as exc:
            await self._refuse(verdicts, out, simple=True, recorded=exc.opened)
            return
        self.pending.append(Pending(self.sent_batches, True, verdicts, tickets, judgement=judgement))
        self._forward_batch_end(frame, out)

    async def _parse(self, frame: Frame, out: list[bytes]) -> None:
        parsed = Parse.decode(frame.body)
        name = parsed.name.encode("utf-8")  # the exact bytes: the decoder accepts strict UTF-8 only
        actions: list[ActionRequest] = []
        ops: tuple[CursorOp, ...] = ()
        try:
            actions, ops = self._classify_statements(parsed.query)
        except SqlParseError as exc:
            judgement = Judgement([self._unparsed(parsed.query, exc)])
        else:
            judgement = await self._judge(actions)
        if judgement.forwards:
            # kept: copies of what was judged, so nothing done to the judged requests reaches later Executes
            self.statements[name] = Prepared(cache.fresh(actions), fresh=judgement if judgement.verdicts else None,
                                             cursor_ops=ops)
            out.append(frame.encode())
            return
        error = await self._refuse(judgement.verdicts, out, simple=False)
        self.statements[name] = Prepared(actions, refusal=error)

    async def _bind(self, frame: Frame, out: list[bytes]) -> None:
        (portal_name, statement_name), _ = _cstrings(frame.body, 2)
        statement = self.statements.get(statement_name)
        if statement is None:
            reason = f"prepared statement {statement_name.decode('utf-8', 'replace')!r} was not judged by Enact"
            await self._refuse([self._refusal_verdict("Bind", reason)], out, simple=False)
            return
        if statement.refusal is not None:
            self._inject(statement.refusal.encode(), out, simple=False)
            return
        self.portals[portal_name] = Portal(statement)
        out.append(frame.encode())

    async def _execute(self, frame: Frame, out: list[bytes]) -> None:
        (portal_name,), rest = _cstrings(frame.body, 1)
        if len(frame.body) - rest != 4:
            raise ProtocolError("Execute has a bad length")
        portal = self.portals.get(portal_name)
        if portal is None:
            reason = f"portal {portal_name.decode('utf-8', 'replace')!r} was not judged by Enact"
            await self._refuse([self._refusal_verdict("Execute", reason)], out, simple=False)
            return
        statement = portal.statement
        if portal.suspended:
            # More rows of a run already judged (a FETCH portal's rows were all made by its first run).
            self.pending.append(Pending(self.sent_batches, False, [], [], portal))
            out.append(frame.encode())
            return
        changes: dict[bytes, Declaration | None] = {}
        if statement.cursor_ops:
            # DECLARE / FETCH / MOVE / CLOSE: judged afresh each time, as what the named cursor runs now.
            if statement.fresh is not None:
                self.engine.unclaim(statement.fresh)
            statement.fresh = None
            judgement, changes = await self._judge_cursor_ops(statement.actions, statement.cursor_ops)
        elif not statement.actions:
            # A statement that is no action (transaction control, SHOW, a harmless SET).
            self.pending.append(Pending(self.sent_batches, False, [], [], portal))
            out.append(frame.encode())
            return
        else:
            judgement = (statement.fresh if statement.fresh is not None
                         else await self._judge(cache.fresh(statement.actions)))  # kept ones stay untouched
            statement.fresh = None
        verdicts = judgement.verdicts
        if not judgement.forwards:
            await self._refuse(verdicts, out, simple=False)
            return
        try:
            tickets = await pipeline.open_intents(self.engine, judgement)
        except NotDurable as exc:
            await self._refuse(verdicts, out, simple=False, recorded=exc.opened)
            return
        self.pending.append(Pending(self.sent_batches, False, verdicts, tickets, portal, judgement=judgement))
        out.append(frame.encode())
        self._apply_cursor_changes(changes, self.sent_batches)

    def _close_message(self, frame: Frame) -> None:
        body = frame.body
        if len(body) < 2 or body[-1] != 0:
            raise ProtocolError("Close has a bad body")
        name = body[1:-1]
        if body[:1] == b"S":
            closed = self.statements.pop(name, None)
            if closed is not None and closed.fresh is not None:
                self.engine.unclaim(closed.fresh)  # judged, never executed
        elif body[:1] == b"P":
            self.portals.pop(name, None)
            self.cursors.pop(name, None)  # one namespace: Close 'P' also drops an SQL-declared cursor
        else:
            raise ProtocolError("Close target must be 'S' or 'P'")

    async def _function_call(self, frame: Frame, out: list[bytes]) -> None:
        oid = _I32.unpack_from(frame.body)[0] if len(frame.body) >= 4 else None
        if oid is None:
            raise ProtocolError("FunctionCall without a function oid")
        action = ActionRequest.model_construct(
            system=SYSTEM, action="execute_sql", request=self.summary,
            payload={"kind": "FunctionCall", "function_oid": oid & 0xFFFFFFFF, "statement": None, "tables": []})
        await self._decide_simple(frame, await self._judge([action]), out)

    # ---- cursors --------------------------------------------------------------------------------
    #
    # The rule (fail closed): a FETCH or MOVE runs its cursor's query further (more rows, more calls of
    # the functions in it, more row locks), so each one, simple Query or extended Execute, is judged and
    # recorded as the actions of what the cursor it names runs: a cursor declared in SQL (DECLARE ...
    # CURSOR FOR q: q's actions, also judged when declared), or a portal the agent created through Bind
    # (its prepared statement's actions, followed through a portal that itself runs FETCH). Both live in
    # one namespace in PostgreSQL, so both are looked up. A name the session never saw created (a
    # refcursor opened inside a function, a cursor of another front door) is refused. A name declared
    # more than once before its transaction ended is judged as every declaration still possibly alive.

    def _classify_statements(self, sql: str) -> tuple[list[ActionRequest], tuple[CursorOp, ...]]:
        # Fresh requests per use, built with this session's summary (the cache keeps no request objects).
        return cache.shared.classify(sql, self.summary)

    async def _judge_cursor_ops(self, actions: list[ActionRequest], ops: tuple[CursorOp, ...]
                                ) -> tuple[Judgement, dict[bytes, Declaration | None]]:
        """Verdicts for ``actions`` plus what each FETCH / MOVE in ``ops`` runs; the cursor changes to
        apply once forwarded (name -> a new declaration, or None: closed). Statements of one text see the
        DECLAREs and CLOSEs before them."""
        changes: dict[bytes, Declaration | None] = {}
        runs: list[ActionRequest] = []
        unknown: list[str] = []
        for op in ops:
            key = op.name.encode("utf-8") if op.name is not None else None
            if op.op == "declare" and key is not None:
                changes[key] = Declaration(self._requests(op.actions), op.hold, -1)
            elif op.op == "close":
                if key is None:  # CLOSE ALL: every cursor and portal
                    changes.update(dict.fromkeys([*self.cursors, *self.portals, *changes]))
                else:
                    changes[key] = None
            elif op.op == "fetch" and key is not None:
                found = self._cursor_runs(key, changes, 0)
                if found is None:
                    unknown.append(op.name or "")
                    continue
                for action in found:
                    payload = {**action.payload, "cursor": op.name, "fetch": op.text}
                    runs.append(ActionRequest.model_construct(system=SYSTEM, action=action.action,
                                                              payload=payload, request=self.summary))
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            refusal = self._refusal_verdict(
                "FetchStmt", f"FETCH / MOVE of cursor {names}, which was not declared or bound through Enact "
                             f"in this session (or is no longer tracked)")
            # Refused before judging the rest: nothing of the statement may claim state or run.
            rest = self.engine.refuse_request(
                [*actions, *runs], f"{COLLATERAL_PREFIX} ({refusal.reason})") if self.engine.mode == "enforce" \
                else await self._judge([*actions, *runs])
            return Judgement([*rest.verdicts, refusal]), changes
        judgement = await self._judge([*actions, *runs]) if actions or runs else Judgement([])
        return judgement, changes

    def _cursor_runs(self, key: bytes, changes: dict[bytes, Declaration | None],
                     depth: int) -> list[ActionRequest] | None:
        """What a FETCH of ``key`` runs, or None when it cannot be told (unknown name, too deep, too many)."""
        if depth > MAX_FETCH_DEPTH:
            return None
        closed = key in changes and changes[key] is None  # by an earlier CLOSE of the same text
        declarations = [] if closed else list(self.cursors.get(key, []))
        if any(d.unknowable for d in declarations):
            return None
        change = changes.get(key)
        if change is not None:  # declared earlier in the same text (joins any still alive)
            declarations.append(change)
        portal = None if closed else self.portals.get(key)
        known = bool(declarations) or portal is not None
        found: list[ActionRequest] = [action for declaration in declarations for action in declaration.actions]
        if portal is not None:
            known = True
            found.extend(portal.statement.actions)
            for op in portal.statement.cursor_ops:
                if op.op != "fetch" or op.name is None:
                    continue
                inner = self._cursor_runs(op.name.encode("utf-8"), {}, depth + 1)
                if inner is None:
                    return None
                found.extend(inner)
        if not known:
            return None
        unique: list[ActionRequest] = []
        for action in found:
            if not any(u.action == action.action and u.payload == action.payload for u in unique):
                unique.append(action)
        return unique

    def _apply_cursor_changes(self, changes: dict[bytes, Declaration | None], batch: int) -> None:
        """Record forwarded DECLAREs and CLOSEs; ``batch`` is the ReadyForQuery that ends their batch."""
        for key, change in changes.items():
            if change is None:
                self.cursors.pop(key, None)
                self.portals.pop(key, None)
                continue
            change.batch = batch
            declarations = self.cursors.pop(key, [])  # re-inserted last: the oldest name goes first
            declarations.append(change)
            if len(declarations) > MAX_DECLARATIONS:  # bounded memory; fail closed until CLOSE
                declarations = [Declaration([], True, batch, unknowable=True)]
            self.cursors[key] = declarations
            while len(self.cursors) > MAX_CURSORS:
                del self.cursors[next(iter(self.cursors))]

    def _transaction_status(self, body: bytes) -> None:
        """At ReadyForQuery idle, cursors declared without HOLD in the batches now ended are gone."""
        if body != b"I" or not self.cursors:
            return
        ended = self.seen_ready
        for key in list(self.cursors):
            alive = [d for d in self.cursors[key] if d.hold or d.batch > ended]
            if alive:
                self.cursors[key] = alive
            else:
                del self.cursors[key]

    def _requests(self, found: Any) -> list[ActionRequest]:
        actions = to_requests(found)
        for action in actions:
            action.request = self.summary
        return actions

    # ---- judging ------------------------------------------------------------------------------

    def _classify(self, sql: str) -> list[ActionRequest]:
        return self._classify_statements(sql)[0]

    def _unparsed(self, sql: str, exc: SqlParseError) -> Verdict:
        action = ActionRequest.model_construct(
            system=SYSTEM, action="execute_sql", request=self.summary,
            payload={"kind": "unparsed", "statement": sql, "tables": [], "reason": "parse_error"})
        return self.engine.refuse(action, f"statement does not parse: {exc.reason}")

    def _refusal_verdict(self, kind: str, reason: str) -> Verdict:
        action = ActionRequest.model_construct(
            system=SYSTEM, action="execute_sql", request=self.summary,
            payload={"kind": kind, "statement": None, "tables": [], "reason": "unjudged"})
        return self.engine.refuse(action, reason)

    async def _judge(self, actions: list[ActionRequest]) -> Judgement:
        """The engine's pipeline: the statement's (or Query's) actions judged together, off the event
        loop when a policy may wait on a lookup or the state store."""
        return await pipeline.judge(self.engine, actions)

    async def _refuse(self, verdicts: list[Verdict], out: list[bytes], *, simple: bool,
                      recorded: frozenset[str] | set[str] = frozenset()) -> ErrorResponse:
        """Stand a failing statement in for the refused one; its BLOCK receipts follow in answer order."""
        blocked = [v for v in verdicts if v.decision is Decision.BLOCK]
        error = refusal_error(blocked or verdicts)
        self._inject(error.encode(), out, simple=simple,
                     verdicts=[v for v in blocked if v.run_id not in recorded])
        return error

    def _record(self, refusal: Refusal) -> None:
        # Written when the upstream answers the stand-in, so receipts keep the order of the answers
        # (an earlier statement of the same pipeline closes its receipt first); the agent hears the
        # refusal once they are on disk.
        self._flush_closes()
        for verdict in refusal.verdicts:
            try:
                self.unwritten.append(self.engine.record(verdict))
            except Exception:  # noqa: BLE001 - refused either way
                log.exception("could not write the receipt of refused %s", verdict.run_id)
        refusal.verdicts = []

    def _inject(self, error: bytes, out: list[bytes], *, simple: bool, verdicts: list[Verdict] | None = None) -> None:
        self._token_count += 1
        token = f"{self._token_prefix}{self._token_count}"
        self.refusals.append(Refusal(token, error, self.sent_batches, simple, verdicts or []))
        if simple:
            out.append(Query(token).encode())
            self.sent_batches += 1
        else:
            # Flush: the client may be waiting for this answer before it sends its Sync (asyncpg).
            out.append(Parse("", token).encode())
            out.append(Flush().encode())
            self.skipping = True
