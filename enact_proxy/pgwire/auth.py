"""The sidecar's own upstream login (credential isolation), free of I/O.

:class:`UpstreamLogin` answers the server's authentication requests with the password the sidecar
holds: SCRAM-SHA-256 (via ``scramp``), md5 and cleartext. Feed it each ``Authentication*`` message;
it returns the bytes to send back, or raises :class:`LoginError` (no password ever in its text).
"""

from __future__ import annotations

import hashlib

import scramp

from enact_proxy.pgwire.messages import (
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationOther,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    PasswordMessage,
    SASLInitialResponse,
    SASLResponse,
)

SCRAM = "SCRAM-SHA-256"


class LoginError(Exception):
    """The upstream asked for something the sidecar cannot (or will not) answer."""


def md5_response(user: str, password: str, salt: bytes) -> str:
    """PostgreSQL's md5 answer: ``"md5" + md5(md5(password + user) + salt)``."""
    inner = hashlib.md5((password + user).encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's own
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()  # noqa: S324


class UpstreamLogin:
    """One login attempt; ``answer(message)`` is called for every Authentication message."""

    def __init__(self, user: str, password: str):
        self._user = user
        self._password = password
        self._scram: scramp.ScramClient | None = None
        self.done = False

    def answer(self, message: object) -> bytes | None:
        """The bytes to send for ``message`` (None when nothing is to be sent)."""
        if isinstance(message, AuthenticationOk):
            if self._scram is not None and not self._scram_finished:
                raise LoginError("server accepted the login before proving it knows the password")
            self.done = True
            return None
        if isinstance(message, AuthenticationCleartextPassword):
            return PasswordMessage.for_password(self._password).encode()
        if isinstance(message, AuthenticationMD5Password):
            return PasswordMessage.for_password(md5_response(self._user, self._password, message.salt)).encode()
        if isinstance(message, AuthenticationSASL):
            if SCRAM not in message.mechanisms:
                raise LoginError(f"server offers SASL mechanisms {list(message.mechanisms)}, not {SCRAM}")
            self._scram = scramp.ScramClient([SCRAM], self._user, self._password)
            self._scram_finished = False
            first = self._scram.get_client_first().encode("utf-8")
            return SASLInitialResponse(SCRAM, first).encode()
        if isinstance(message, AuthenticationSASLContinue):
            scram = self._require_scram()
            try:
                scram.set_server_first(message.data.decode("utf-8"))
                final = scram.get_client_final()
            except (scramp.ScramException, UnicodeDecodeError) as exc:
                raise LoginError(f"bad SCRAM server-first message: {type(exc).__name__}") from None
            return SASLResponse(final.encode("utf-8")).encode()
        if isinstance(message, AuthenticationSASLFinal):
            scram = self._require_scram()
            try:
                scram.set_server_final(message.data.decode("utf-8"))
            except (scramp.ScramException, UnicodeDecodeError):
                raise LoginError("the server's SCRAM signature does not verify") from None
            self._scram_finished = True
            return None
        if isinstance(message, AuthenticationOther):
            raise LoginError(f"unsupported authentication method (code {message.code})")
        raise LoginError(f"unexpected authentication message {type(message).__name__}")

    def _require_scram(self) -> scramp.ScramClient:
        if self._scram is None:
            raise LoginError("SCRAM message before the SCRAM exchange started")
        return self._scram

    _scram_finished = False
