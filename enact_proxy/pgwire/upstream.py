"""Where statements really go: the upstream URL, its ``sslmode``, and opening a connection to it.

mitmproxy cannot do PostgreSQL's in-band TLS upgrade (SSLRequest, then ``S``, then the handshake), so
the sidecar does it here, as libpq would for the URL's ``sslmode``: ``disable`` (and ``allow``) plain,
``prefer`` TLS when offered, ``require`` TLS without verifying the certificate (verifying the chain
when ``sslrootcert`` is given, as libpq does), ``verify-ca`` the chain, ``verify-full`` chain and host
name. ``sslrootcert`` (a file, or ``system``) names the trusted roots; the system's roots otherwise.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from enact_proxy.pgwire.messages import SSLRequest

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CONNECT_TIMEOUT_S = 10.0


class UpstreamError(Exception):
    """The upstream cannot be reached or refused TLS as required; the text holds no secret."""


@dataclass(frozen=True)
class UpstreamTarget:
    host: str
    port: int
    user: str | None
    password: str | None  # the sidecar's own upstream password (credential isolation) or None
    dbname: str | None
    sslmode: str = "prefer"
    sslrootcert: str | None = None

    @classmethod
    def from_config(cls, config: Any, environ: Mapping[str, str] = os.environ) -> UpstreamTarget:
        """From ``systems.postgres`` (``upstream``, ``password_env``)."""
        parts = urlsplit(config.upstream)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        sslmode = query.get("sslmode", "prefer")
        if sslmode not in SSL_MODES:
            raise UpstreamError(f"unknown sslmode {sslmode!r} in systems.postgres.upstream")
        password = unquote(parts.password) if parts.password else None
        if config.password_env:
            from_env = environ.get(config.password_env)
            if from_env:
                password = from_env
            elif password is None:
                raise UpstreamError(f"systems.postgres.password_env names {config.password_env}, which is not set")
        dbname = unquote(parts.path.lstrip("/")) or None
        return cls(host=parts.hostname or "localhost", port=parts.port or 5432,
                   user=unquote(parts.username) if parts.username else None, password=password,
                   dbname=dbname, sslmode=sslmode, sslrootcert=query.get("sslrootcert"))

    @property
    def isolated(self) -> bool:
        """Whether the sidecar logs in upstream itself (the agent never holds the password)."""
        return self.password is not None

    def __repr__(self) -> str:  # never the password
        return (f"UpstreamTarget(host={self.host!r}, port={self.port}, user={self.user!r}, "
                f"dbname={self.dbname!r}, sslmode={self.sslmode!r})")

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.sslmode in ("disable", "allow"):
            return None
        verify = self.sslmode in ("verify-ca", "verify-full") or (
            self.sslmode == "require" and self.sslrootcert is not None)
        if not verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.sslrootcert in (None, "system"):
            context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=self.sslrootcert)
        context.check_hostname = self.sslmode == "verify-full"
        return context


async def open_upstream(target: UpstreamTarget) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the upstream, TLS negotiated as ``sslmode`` asks."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port),
                                                CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise UpstreamError(f"cannot connect to the upstream {target.host}:{target.port}: "
                            f"{type(exc).__name__}") from None
    context = target.ssl_context()
    if context is None:
        return reader, writer
    try:
        writer.write(SSLRequest().encode())
        answer = await asyncio.wait_for(reader.readexactly(1), CONNECT_TIMEOUT_S)
        if answer == b"S":
            # Bytes already buffered after 'S' would be read as if they came through TLS.
            if len(getattr(reader, "_buffer", b"")):
                raise UpstreamError("the upstream sent data after accepting TLS")
            await asyncio.wait_for(writer.start_tls(context, server_hostname=target.host), CONNECT_TIMEOUT_S)
            return reader, writer
        if answer == b"N" and target.sslmode == "prefer":
            return reader, writer
        if answer == b"N":
            raise UpstreamError(f"the upstream does not offer TLS, which sslmode={target.sslmode} requires")
        raise UpstreamError("the upstream answered the TLS request with an error")
    except UpstreamError:
        writer.close()
        raise
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
        writer.close()
        raise UpstreamError(f"TLS with the upstream failed: {type(exc).__name__}: {exc}") from None
