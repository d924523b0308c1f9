"""The Postgres listener: the agent's ``DATABASE_URL`` points here instead of at the database.

Per connection: the startup phase (SSLRequest / GSSENCRequest answered ``N``; CancelRequest relayed to
the upstream with the real key; replication and role / search_path settings refused), the login
(credential isolation: with an upstream password the sidecar logs in itself and checks the agent only
against ``agent_password_env`` when set; otherwise the agent's own exchange is relayed), then the judged
relay of :mod:`enact_proxy.pgwire.session`. At most ``systems.postgres.max_sessions`` agent sessions at
once (:meth:`PostgresListener.claim_session`). A broken session ends with a FATAL ErrorResponse; the
listener and the sidecar carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.postgres import DEFAULT_MAX_SESSIONS
from enact_proxy.models import RequestSummary
from enact_proxy.pgwire.auth import LoginError, UpstreamLogin
from enact_proxy.pgwire.framing import Framer
from enact_proxy.pgwire.messages import (
    PROTOCOL_VERSION_3_0,
    AuthenticationCleartextPassword,
    AuthenticationOk,
    BackendKeyData,
    CancelRequest,
    ErrorResponse,
    Frame,
    GSSENCRequest,
    ProtocolError,
    SSLRequest,
    StartupMessage,
    decode_authentication,
    decode_startup,
)
from enact_proxy.pgwire.session import READ_SIZE, Relay
from enact_proxy.pgwire.startup import startup_refusal
from enact_proxy.pgwire.upstream import UpstreamError, UpstreamTarget, open_upstream

log = logging.getLogger("enact.pgwire")

STARTUP_TIMEOUT_S = 60.0
_AUTH_REQUESTS = (3, 5, 10, 11)  # cleartext, md5, SASL, SASL continue: the client answers each


class SessionEnd(Exception):
    """The session ends; ``error`` (if any) has been or is to be sent to the agent."""

    def __init__(self, error: ErrorResponse | None = None):
        super().__init__(error.message if error else "session ended")
        self.error = error


def fatal(sqlstate: str, message: str) -> SessionEnd:
    return SessionEnd(ErrorResponse.build(sqlstate, message, severity="FATAL"))


@dataclass(frozen=True)
class CancelTarget:
    process_id: int
    secret_key: bytes


class PostgresListener:
    """The running listener; ``address`` is ``host:port`` as actually bound."""

    def __init__(self, sidecar: Any, environ: Mapping[str, str] = os.environ):
        self.sidecar = sidecar
        self.config = sidecar.config.systems["postgres"]
        self.environ = environ
        self.target: UpstreamTarget | None = None
        self.target_error: str | None = None
        try:
            self.target = UpstreamTarget.from_config(self.config, environ)
        except UpstreamError as exc:
            self.target_error = str(exc)
        self.cancel_keys: dict[tuple[int, bytes], CancelTarget] = {}
        self.sessions: set[asyncio.Task[Any]] = set()
        # Agent sessions past their StartupMessage (each holds, or is about to open, an upstream connection).
        self.max_sessions: int = getattr(self.config, "max_sessions", DEFAULT_MAX_SESSIONS)
        self.active_sessions = 0
        self.server: asyncio.Server | None = None
        self.address = ""

    async def start(self, listen: str) -> PostgresListener:
        host, _, port = listen.rpartition(":")
        self.server = await asyncio.start_server(self._accept, host or "127.0.0.1", int(port))
        bound = self.server.sockets[0].getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.sessions):
            task.cancel()
        for task in list(self.sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    # ---- one connection -----------------------------------------------------------------------

    def claim_session(self) -> None:
        """Count one agent session, or refuse it (FATAL 53300) when ``max_sessions`` are already open.

        Counted once the StartupMessage arrives, before the upstream connection is opened; released when
        the session ends. Refused before login, like PostgreSQL's own ``too many clients``, and so (as the
        other refusals before login) with no receipt: an agent retrying in a loop writes nothing.
        """
        if self.active_sessions >= self.max_sessions:
            log.warning("postgres session refused: %d sessions open (max_sessions %d)",
                        self.active_sessions, self.max_sessions)
            raise fatal(TOO_MANY_CONNECTIONS,
                        f"Blocked by Enact: too many sessions through the Postgres listener "
                        f"({self.active_sessions} open, systems.postgres.max_sessions is {self.max_sessions})")
        self.active_sessions += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        key: tuple[int, bytes] | None = None
        session = _Startup(self, reader, writer)
        try:
            await session.run()
            upstream, key = session.upstream, session.proxy_key
        except SessionEnd as end:
            await _send_error(writer, end.error)
        except ProtocolError as exc:
            await _send_error(writer, ErrorResponse.build("08P01", f"invalid message: {exc}", severity="FATAL"))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one session's bug must not stop the listener
            log.exception("postgres session failed")
            await _send_error(writer, ErrorResponse.build("XX000", "internal error in Enact", severity="FATAL"))
        finally:
            if session.counted:
                self.active_sessions -= 1
            if key is not None:
                self.cancel_keys.pop(key, None)
            for stream in (upstream[1] if upstream else None, writer):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
            self.sessions.discard(task)

    async def cancel(self, request: CancelRequest) -> None:
        target = self.cancel_keys.get((request.process_id, request.secret_key))
        if target is None or self.target is None:
            return  # as PostgreSQL: an unknown key is ignored silently
        reader, writer = await open_upstream(self.target)
        try:
            writer.write(CancelRequest(target.process_id, target.secret_key).encode())
            await writer.drain()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(1), 5)
        finally:
            writer.close()


async def _send_error(writer: asyncio.StreamWriter, error: ErrorResponse | None) -> None:
    if error is None:
        return
    with contextlib.suppress(Exception):
        writer.write(error.encode())
        await writer.drain()


class _Startup:
    """From the first byte to ReadyForQuery, then hands over to the relay."""

    def __init__(self, listener: PostgresListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.listener = listener
        self.reader, self.writer = reader, writer
        self.framer = Framer(startup=True)
        self.frames: list[Frame] = []
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.proxy_key: tuple[int, bytes] | None = None
        self.counted = False  # whether this connection holds one of the listener's max_sessions

    async def _next_frame(self) -> Frame:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), STARTUP_TIMEOUT_S)
            if not data:
                raise SessionEnd()
            self.frames.extend(self.framer.feed(data))
        return self.frames.pop(0)

    async def run(self) -> None:
        startup = await self._startup_message()
        if startup is None:
            return
        if startup.protocol >> 16 != 3:
            raise fatal("0A000", "unsupported frontend protocol")
        self.listener.claim_session()
        self.counted = True
        params = startup.params
        refusal = startup_refusal(params)
        if refusal:
            raise fatal(INSUFFICIENT_PRIVILEGE, "Blocked by Enact: " + refusal)
        listener = self.listener
        if listener.target is None:
            raise fatal("08006", f"Enact cannot reach the database: {listener.target_error}")
        target = listener.target
        if target.isolated:
            await self._check_agent(params)
        upstream_params = dict(params)
        upstream_params["user"] = target.user or params.get("user", "")
        if target.dbname:
            upstream_params["database"] = target.dbname
        try:
            self.upstream = await open_upstream(target)
        except UpstreamError as exc:
            raise fatal("08006", f"Enact cannot reach the database: {exc}") from None
        up_reader, up_writer = self.upstream
        protocol = startup.protocol if startup.protocol >> 16 == 3 else PROTOCOL_VERSION_3_0
        up_writer.write(StartupMessage(protocol, tuple(upstream_params.items())).encode())
        up_framer = Framer()
        backlog: list[Frame] = []
        if target.isolated:
            await self._login_upstream(target, upstream_params["user"], up_framer, backlog)
            self.writer.write(AuthenticationOk().encode())
        else:
            await self._relay_login(up_framer, backlog)
        await self._until_ready(up_framer, backlog)
        summary = RequestSummary(method="SQL", host=f"{target.host}:{target.port}",
                                 path="/" + upstream_params.get("database", upstream_params["user"]))
        relay = Relay(lambda: listener.sidecar.engine, (self.reader, self.writer), self.upstream, self.framer, summary,
                      backlog=self.frames,
                      upstream_bytes=b"".join(f.encode() for f in backlog) + bytes(up_framer._buffer))
        self.frames = []
        await relay.run()

    async def _startup_message(self) -> StartupMessage | None:
        while True:
            frame = await self._next_frame()
            message = decode_startup(frame.body)
            if isinstance(message, SSLRequest | GSSENCRequest):
                if self.framer.buffered or self.frames:
                    raise ProtocolError("data after an encryption request, before its answer")
                self.writer.write(b"N")
                await self.writer.drain()
                continue
            if isinstance(message, CancelRequest):
                with contextlib.suppress(UpstreamError, OSError):
                    await self.listener.cancel(message)
                return None
            return message

    async def _check_agent(self, params: dict[str, str]) -> None:
        env_name = self.listener.config.agent_password_env
        if not env_name:
            return
        expected = self.listener.environ.get(env_name)
        if not expected:
            raise fatal("28P01", f"agent_password_env names {env_name}, which is not set")
        self.writer.write(AuthenticationCleartextPassword().encode())
        await self.writer.drain()
        frame = await self._next_frame()
        if frame.type != b"p":
            raise ProtocolError("expected a password message")
        from enact_proxy.pgwire.messages import PasswordMessage

        given = PasswordMessage.decode(frame.body).password()
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            raise fatal("28P01", f'password authentication failed for user "{params.get("user", "")}"')

    async def _upstream_frame(self, framer: Framer, queue: list[Frame]) -> Frame:
        assert self.upstream is not None
        up_reader, up_writer = self.upstream
        await up_writer.drain()
        while not queue:
            data = await asyncio.wait_for(up_reader.read(READ_SIZE), STARTUP_TIMEOUT_S)
            if not data:
                raise fatal("08006", "the database closed the connection during login")
            queue.extend(framer.feed(data))
        return queue.pop(0)

    async def _login_upstream(self, target: UpstreamTarget, user: str, framer: Framer, queue: list[Frame]) -> None:
        assert self.upstream is not None and target.password is not None
        login = UpstreamLogin(user, target.password)
        while not login.done:
            frame = await self._upstream_frame(framer, queue)
            if frame.type == b"E":
                error = ErrorResponse.decode(frame.body)
                raise fatal(error.sqlstate or "28000", f"Enact could not log in to the database: {error.message}")
            if frame.type == b"v":
                continue  # the server speaks an older minor version: nothing to answer
            if frame.type != b"R":
                raise ProtocolError(f"unexpected message {frame.type!r} from the database during login")
            try:
                answer = login.answer(decode_authentication(frame.body))
            except LoginError as exc:
                raise fatal("28000", f"Enact could not log in to the database: {exc}") from None
            if answer:
                self.upstream[1].write(answer)

    async def _relay_login(self, framer: Framer, queue: list[Frame]) -> None:
        """The agent's own login, relayed message for message until the server accepts or refuses it."""
        assert self.upstream is not None
        while True:
            frame = await self._upstream_frame(framer, queue)
            self.writer.write(frame.encode())
            if frame.type == b"E":
                await self.writer.drain()
                raise SessionEnd()
            if frame.type == b"v":
                continue
            if frame.type != b"R":
                raise ProtocolError(f"unexpected message {frame.type!r} from the database during login")
            code = int.from_bytes(frame.body[:4], "big", signed=True)
            if code == 0:
                return
            if code in _AUTH_REQUESTS:
                await self.writer.drain()
                answer = await self._next_frame()
                if answer.type != b"p":
                    raise ProtocolError("expected an authentication answer from the client")
                self.upstream[1].write(answer.encode())
            elif code != 12:  # SASL final carries no answer
                raise fatal("28000", f"unsupported authentication method (code {code})")

    async def _until_ready(self, framer: Framer, queue: list[Frame]) -> None:
        """Relay ParameterStatus and notices; hand out a key of our own for the server's cancel key."""
        while True:
            frame = await self._upstream_frame(framer, queue)
            if frame.type == b"K":
                real = BackendKeyData.decode(frame.body)
                proxy = (secrets.randbelow(2**31 - 2) + 1, secrets.token_bytes(len(real.secret_key)))
                self.listener.cancel_keys[proxy] = CancelTarget(real.process_id, real.secret_key)
                self.proxy_key = proxy
                self.writer.write(BackendKeyData(*proxy).encode())
                continue
            self.writer.write(frame.encode())
            if frame.type == b"E":
                await self.writer.drain()
                raise SessionEnd()
            if frame.type == b"Z":
                await self.writer.drain()
                return


INSUFFICIENT_PRIVILEGE = "42501"
TOO_MANY_CONNECTIONS = "53300"


async def start_listener(sidecar: Any, environ: Mapping[str, str] = os.environ) -> PostgresListener:
    """Listen on ``listen.postgres`` (port 0: the OS picks) on the running event loop."""
    return await PostgresListener(sidecar, environ).start(sidecar.config.raw.listen.postgres)
