"""PostgreSQL frontend/backend protocol v3 messages: one small frozen type per message, no I/O.

Each typed message has ``TYPE`` (its type byte), ``encode() -> bytes`` (the whole message: type byte,
int32 length, body) and ``decode(body) -> Self`` (the body after the length). Startup-phase messages
(``StartupMessage``, ``SSLRequest``, ``GSSENCRequest``, ``CancelRequest``) have no type byte and decode
from the body after their length. :func:`decode_frontend` and :func:`decode_backend` turn a
:class:`Frame` (see :mod:`enact_proxy.pgwire.framing`) into its message type. Anything malformed raises
:class:`ProtocolError`, never another exception. Text is UTF-8 (the sidecar only lets sessions use a
UTF8 client encoding).

The ``p`` message is context-dependent (password, SASLInitialResponse or SASLResponse): it decodes to
:class:`PasswordMessage`, and the authentication code, which knows what it asked for, decodes
``data`` further with :meth:`SASLInitialResponse.decode` / :meth:`SASLResponse.decode`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROTOCOL_VERSION_3_0 = 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")


class ProtocolError(Exception):
    """The byte stream is not valid protocol; the session must end (never the sidecar)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed message: ``type`` is the type byte, or ``b""`` for a startup-phase message."""

    type: bytes
    body: bytes

    def encode(self) -> bytes:
        return self.type + _I32.pack(len(self.body) + 4) + self.body


def _typed(type_byte: bytes, body: bytes = b"") -> bytes:
    return type_byte + _I32.pack(len(body) + 4) + body


def _cstr(text: str) -> bytes:
    raw = text.encode("utf-8")
    if b"\x00" in raw:
        raise ProtocolError("a string field may not contain a NUL byte")
    return raw + b"\x00"


class _Reader:
    """Reads fields from a message body; any shortfall is a ProtocolError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def int16(self) -> int:
        return int(self._unpack(_I16))

    def int32(self) -> int:
        return int(self._unpack(_I32))

    def uint32(self) -> int:
        return int(self._unpack(_U32))

    def _unpack(self, fmt: struct.Struct) -> int:
        if self._pos + fmt.size > len(self._data):
            raise ProtocolError("message ends inside a field")
        (value,) = fmt.unpack_from(self._data, self._pos)
        self._pos += fmt.size
        return int(value)

    def byte(self) -> bytes:
        return self.take(1)

    def take(self, count: int) -> bytes:
        if count < 0 or self._pos + count > len(self._data):
            raise ProtocolError("message ends inside a field")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def cstring(self) -> str:
        end = self._data.find(b"\x00", self._pos)
        if end < 0:
            raise ProtocolError("string field without its terminating NUL")
        raw = self._data[self._pos : end]
        self._pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string field is not valid UTF-8") from exc

    def value(self) -> bytes | None:
        """An int32 length (-1 = NULL) then that many bytes."""
        length = self.int32()
        if length == -1:
            return None
        if length < -1:
            raise ProtocolError("negative value length")
        return self.take(length)

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    def count(self) -> int:
        number = self.int16()
        if number < 0:
            raise ProtocolError("negative count")
        return number

    def end(self) -> None:
        if self._pos != len(self._data):
            raise ProtocolError("unexpected bytes at the end of a message")


def _value(value: bytes | None) -> bytes:
    return _I32.pack(-1) if value is None else _I32.pack(len(value)) + value


# ---- startup phase (no type byte) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupMessage:
    protocol: int
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.parameters)

    def encode(self) -> bytes:
        body = _I32.pack(self.protocol)
        body += b"".join(_cstr(k) + _cstr(v) for k, v in self.parameters) + b"\x00"
        return _I32.pack(len(body) + 4) + body

    @classmethod
    def decode(cls, body: bytes) -> StartupMessage:
        reader = _Reader(body)
        protocol = reader.int32()
        parameters = []
        while True:
            key = reader.cstring()
            if not key:
                break
            parameters.append((key, reader.cstring()))
        reader.end()
        return cls(protocol, tuple(parameters))


@dataclass(frozen=True, slots=True)
class SSLRequest:
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(GSSENC_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    process_id: int
    secret_key: bytes  # 4 bytes in protocol 3.0, up to 256 in 3.2

    def encode(self) -> bytes:
        body = _I32.pack(CANCEL_REQUEST_CODE) + _I32.pack(self.process_id) + self.secret_key
        return _I32.pack(len(body) + 4) + body

    @classmethod
    def decode(cls, body: bytes) -> CancelRequest:
        reader = _Reader(body)
        reader.int32()
        pid = reader.int32()
        key = reader.rest()
        if not 4 <= len(key) <= 256:
            raise ProtocolError("CancelRequest secret key must be 4 to 256 bytes")
        return cls(pid, key)


StartupPhaseMessage = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def decode_startup(body: bytes) -> StartupPhaseMessage:
    """A startup-phase message from its body (after the int32 length)."""
    code = _Reader(body).int32()
    if code == SSL_REQUEST_CODE:
        if len(body) != 4:
            raise ProtocolError("SSLRequest has a fixed length of 8")
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        if len(body) != 4:
            raise ProtocolError("GSSENCRequest has a fixed length of 8")
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        return CancelRequest.decode(body)
    if code >> 16 == 3:
        return StartupMessage.decode(body)
    raise ProtocolError(f"unsupported protocol version {code >> 16}.{code & 0xFFFF}")


# ---- frontend (typed) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    TYPE: ClassVar[bytes] = b"Q"
    sql: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.sql))

    @classmethod
    def decode(cls, body: bytes) -> Query:
        reader = _Reader(body)
        sql = reader.cstring()
        reader.end()
        return cls(sql)


@dataclass(frozen=True, slots=True)
class Parse:
    TYPE: ClassVar[bytes] = b"P"
    name: str
    query: str
    param_types: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = _cstr(self.name) + _cstr(self.query) + _I16.pack(len(self.param_types))
        body += b"".join(_U32.pack(oid) for oid in self.param_types)
        return _typed(self.TYPE, body)

    @classmethod
    def decode(cls, body: bytes) -> Parse:
        reader = _Reader(body)
        name, query = reader.cstring(), reader.cstring()
        types = tuple(reader.uint32() for _ in range(reader.count()))
        reader.end()
        return cls(name, query, types)


@dataclass(frozen=True, slots=True)
class Bind:
    TYPE: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = _cstr(self.portal) + _cstr(self.statement)
        body += _I16.pack(len(self.param_formats)) + b"".join(_I16.pack(f) for f in self.param_formats)
        body += _I16.pack(len(self.params)) + b"".join(_value(p) for p in self.params)
        body += _I16.pack(len(self.result_formats)) + b"".join(_I16.pack(f) for f in self.result_formats)
        return _typed(self.TYPE, body)

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        reader = _Reader(body)
        portal, statement = reader.cstring(), reader.cstring()
        param_formats = tuple(reader.int16() for _ in range(reader.count()))
        params = tuple(reader.value() for _ in range(reader.count()))
        result_formats = tuple(reader.int16() for _ in range(reader.count()))
        reader.end()
        return cls(portal, statement, param_formats, params, result_formats)


def _kind(reader: _Reader) -> str:
    kind = reader.byte()
    if kind not in (b"S", b"P"):
        raise ProtocolError("Describe/Close target must be 'S' or 'P'")
    return kind.decode()


@dataclass(frozen=True, slots=True)
class Describe:
    TYPE: ClassVar[bytes] = b"D"
    kind: str  # "S" statement, "P" portal
    name: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.kind.encode() + _cstr(self.name))

    @classmethod
    def decode(cls, body: bytes) -> Describe:
        reader = _Reader(body)
        kind, name = _kind(reader), reader.cstring()
        reader.end()
        return cls(kind, name)


@dataclass(frozen=True, slots=True)
class Close:
    TYPE: ClassVar[bytes] = b"C"
    kind: str  # "S" statement, "P" portal
    name: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.kind.encode() + _cstr(self.name))

    @classmethod
    def decode(cls, body: bytes) -> Close:
        reader = _Reader(body)
        kind, name = _kind(reader), reader.cstring()
        reader.end()
        return cls(kind, name)


@dataclass(frozen=True, slots=True)
class Execute:
    TYPE: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int = 0

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.portal) + _I32.pack(self.max_rows))

    @classmethod
    def decode(cls, body: bytes) -> Execute:
        reader = _Reader(body)
        portal, max_rows = reader.cstring(), reader.int32()
        reader.end()
        return cls(portal, max_rows)


def _empty_body(body: bytes, name: str) -> None:
    if body:
        raise ProtocolError(f"{name} has no body")


@dataclass(frozen=True, slots=True)
class Sync:
    TYPE: ClassVar[bytes] = b"S"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> Sync:
        _empty_body(body, "Sync")
        return cls()


@dataclass(frozen=True, slots=True)
class Flush:
    TYPE: ClassVar[bytes] = b"H"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> Flush:
        _empty_body(body, "Flush")
        return cls()


@dataclass(frozen=True, slots=True)
class Terminate:
    TYPE: ClassVar[bytes] = b"X"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> Terminate:
        _empty_body(body, "Terminate")
        return cls()


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """``p``: a password, SASLInitialResponse or SASLResponse; ``data`` is the raw body."""

    TYPE: ClassVar[bytes] = b"p"
    data: bytes

    @classmethod
    def for_password(cls, password: str) -> PasswordMessage:
        return cls(_cstr(password))

    def password(self) -> str:
        reader = _Reader(self.data)
        text = reader.cstring()
        reader.end()
        return text

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.data)

    @classmethod
    def decode(cls, body: bytes) -> PasswordMessage:
        return cls(body)


@dataclass(frozen=True, slots=True)
class SASLInitialResponse:
    TYPE: ClassVar[bytes] = b"p"
    mechanism: str
    response: bytes | None

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.mechanism) + _value(self.response))

    @classmethod
    def decode(cls, body: bytes) -> SASLInitialResponse:
        reader = _Reader(body)
        mechanism, response = reader.cstring(), reader.value()
        reader.end()
        return cls(mechanism, response)


@dataclass(frozen=True, slots=True)
class SASLResponse:
    TYPE: ClassVar[bytes] = b"p"
    data: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.data)

    @classmethod
    def decode(cls, body: bytes) -> SASLResponse:
        return cls(body)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``F``: the fast-path function call; only the function's oid is decoded, the rest kept raw."""

    TYPE: ClassVar[bytes] = b"F"
    function_oid: int
    arguments: bytes = b""

    def encode(self) -> bytes:
        return _typed(self.TYPE, _U32.pack(self.function_oid) + self.arguments)

    @classmethod
    def decode(cls, body: bytes) -> FunctionCall:
        reader = _Reader(body)
        return cls(reader.uint32(), reader.rest())


@dataclass(frozen=True, slots=True)
class CopyData:
    """``d``, both directions."""

    TYPE: ClassVar[bytes] = b"d"
    data: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.data)

    @classmethod
    def decode(cls, body: bytes) -> CopyData:
        return cls(body)


@dataclass(frozen=True, slots=True)
class CopyDone:
    """``c``, both directions."""

    TYPE: ClassVar[bytes] = b"c"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> CopyDone:
        _empty_body(body, "CopyDone")
        return cls()


@dataclass(frozen=True, slots=True)
class CopyFail:
    TYPE: ClassVar[bytes] = b"f"
    message: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.message))

    @classmethod
    def decode(cls, body: bytes) -> CopyFail:
        reader = _Reader(body)
        message = reader.cstring()
        reader.end()
        return cls(message)


FrontendMessage = (
    Query | Parse | Bind | Describe | Close | Execute | Sync | Flush | Terminate | PasswordMessage
    | FunctionCall | CopyData | CopyDone | CopyFail
)
_FRONTEND: dict[bytes, type[FrontendMessage]] = {
    m.TYPE: m
    for m in (Query, Parse, Bind, Describe, Close, Execute, Sync, Flush, Terminate, PasswordMessage,
              FunctionCall, CopyData, CopyDone, CopyFail)
}


def decode_frontend(frame: Frame) -> FrontendMessage:
    """The typed frontend message in ``frame``; ProtocolError for an unknown type or a bad body."""
    message_type = _FRONTEND.get(frame.type)
    if message_type is None:
        raise ProtocolError(f"unknown frontend message type {frame.type!r}")
    return message_type.decode(frame.body)


# ---- backend ----------------------------------------------------------------------------------

AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 0, 3, 5, 10, 11, 12


@dataclass(frozen=True, slots=True)
class AuthenticationOk:
    TYPE: ClassVar[bytes] = b"R"

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(AUTH_OK))


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    TYPE: ClassVar[bytes] = b"R"

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(AUTH_CLEARTEXT))


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    TYPE: ClassVar[bytes] = b"R"
    salt: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(AUTH_MD5) + self.salt)


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    TYPE: ClassVar[bytes] = b"R"
    mechanisms: tuple[str, ...]

    def encode(self) -> bytes:
        body = _I32.pack(AUTH_SASL) + b"".join(_cstr(m) for m in self.mechanisms) + b"\x00"
        return _typed(self.TYPE, body)


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    TYPE: ClassVar[bytes] = b"R"
    data: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(AUTH_SASL_CONTINUE) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    TYPE: ClassVar[bytes] = b"R"
    data: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(AUTH_SASL_FINAL) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationOther:
    """Kerberos, GSS, SSPI and anything newer: the sidecar does not speak them."""

    TYPE: ClassVar[bytes] = b"R"
    code: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(self.code) + self.data)


Authentication = (
    AuthenticationOk | AuthenticationCleartextPassword | AuthenticationMD5Password | AuthenticationSASL
    | AuthenticationSASLContinue | AuthenticationSASLFinal | AuthenticationOther
)


def decode_authentication(body: bytes) -> Authentication:
    reader = _Reader(body)
    code = reader.int32()
    if code == AUTH_OK:
        reader.end()
        return AuthenticationOk()
    if code == AUTH_CLEARTEXT:
        reader.end()
        return AuthenticationCleartextPassword()
    if code == AUTH_MD5:
        salt = reader.take(4)
        reader.end()
        return AuthenticationMD5Password(salt)
    if code == AUTH_SASL:
        mechanisms = []
        while True:
            name = reader.cstring()
            if not name:
                break
            mechanisms.append(name)
        reader.end()
        return AuthenticationSASL(tuple(mechanisms))
    if code == AUTH_SASL_CONTINUE:
        return AuthenticationSASLContinue(reader.rest())
    if code == AUTH_SASL_FINAL:
        return AuthenticationSASLFinal(reader.rest())
    return AuthenticationOther(code, reader.rest())


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    TYPE: ClassVar[bytes] = b"K"
    process_id: int
    secret_key: bytes

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(self.process_id) + self.secret_key)

    @classmethod
    def decode(cls, body: bytes) -> BackendKeyData:
        reader = _Reader(body)
        pid, key = reader.int32(), reader.rest()
        if not 4 <= len(key) <= 256:
            raise ProtocolError("BackendKeyData secret key must be 4 to 256 bytes")
        return cls(pid, key)


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    TYPE: ClassVar[bytes] = b"S"
    name: str
    value: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.name) + _cstr(self.value))

    @classmethod
    def decode(cls, body: bytes) -> ParameterStatus:
        reader = _Reader(body)
        name, value = reader.cstring(), reader.cstring()
        reader.end()
        return cls(name, value)


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    """``status``: ``I`` idle, ``T`` in a transaction block, ``E`` in a failed transaction block."""

    TYPE: ClassVar[bytes] = b"Z"
    status: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, self.status.encode("ascii"))

    @classmethod
    def decode(cls, body: bytes) -> ReadyForQuery:
        if body not in (b"I", b"T", b"E"):
            raise ProtocolError("ReadyForQuery status must be I, T or E")
        return cls(body.decode("ascii"))


def _decode_fields(body: bytes) -> tuple[tuple[str, str], ...]:
    reader = _Reader(body)
    fields = []
    while True:
        code = reader.byte()
        if code == b"\x00":
            break
        fields.append((code.decode("latin-1"), reader.cstring()))
    reader.end()
    return tuple(fields)


@dataclass(frozen=True, slots=True)
class _Report:
    """ErrorResponse / NoticeResponse: ``fields`` are (code letter, text) pairs in wire order."""

    fields: tuple[tuple[str, str], ...]

    def get(self, code: str) -> str | None:
        return next((text for key, text in self.fields if key == code), None)

    @property
    def sqlstate(self) -> str | None:
        return self.get("C")

    @property
    def message(self) -> str | None:
        return self.get("M")

    def _body(self) -> bytes:
        return b"".join(key.encode("latin-1") + _cstr(text) for key, text in self.fields) + b"\x00"


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Report):
    TYPE: ClassVar[bytes] = b"E"

    @classmethod
    def build(cls, sqlstate: str, message: str, *, severity: str = "ERROR", detail: str | None = None,
              hint: str | None = None) -> ErrorResponse:
        fields = [("S", severity), ("V", severity), ("C", sqlstate), ("M", message)]
        if detail is not None:
            fields.append(("D", detail))
        if hint is not None:
            fields.append(("H", hint))
        return cls(tuple(fields))

    def encode(self) -> bytes:
        return _typed(self.TYPE, self._body())

    @classmethod
    def decode(cls, body: bytes) -> ErrorResponse:
        return cls(_decode_fields(body))


@dataclass(frozen=True, slots=True)
class NoticeResponse(_Report):
    TYPE: ClassVar[bytes] = b"N"

    def encode(self) -> bytes:
        return _typed(self.TYPE, self._body())

    @classmethod
    def decode(cls, body: bytes) -> NoticeResponse:
        return cls(_decode_fields(body))


@dataclass(frozen=True, slots=True)
class CommandComplete:
    TYPE: ClassVar[bytes] = b"C"
    tag: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, _cstr(self.tag))

    @classmethod
    def decode(cls, body: bytes) -> CommandComplete:
        reader = _Reader(body)
        tag = reader.cstring()
        reader.end()
        return cls(tag)


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse:
    TYPE: ClassVar[bytes] = b"I"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> EmptyQueryResponse:
        _empty_body(body, "EmptyQueryResponse")
        return cls()


@dataclass(frozen=True, slots=True)
class ParseComplete:
    TYPE: ClassVar[bytes] = b"1"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> ParseComplete:
        _empty_body(body, "ParseComplete")
        return cls()


@dataclass(frozen=True, slots=True)
class BindComplete:
    TYPE: ClassVar[bytes] = b"2"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> BindComplete:
        _empty_body(body, "BindComplete")
        return cls()


@dataclass(frozen=True, slots=True)
class CloseComplete:
    TYPE: ClassVar[bytes] = b"3"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> CloseComplete:
        _empty_body(body, "CloseComplete")
        return cls()


@dataclass(frozen=True, slots=True)
class NoData:
    TYPE: ClassVar[bytes] = b"n"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> NoData:
        _empty_body(body, "NoData")
        return cls()


@dataclass(frozen=True, slots=True)
class PortalSuspended:
    TYPE: ClassVar[bytes] = b"s"

    def encode(self) -> bytes:
        return _typed(self.TYPE)

    @classmethod
    def decode(cls, body: bytes) -> PortalSuspended:
        _empty_body(body, "PortalSuspended")
        return cls()


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    TYPE: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...]

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I16.pack(len(self.type_oids)) + b"".join(_U32.pack(o) for o in self.type_oids))

    @classmethod
    def decode(cls, body: bytes) -> ParameterDescription:
        reader = _Reader(body)
        oids = tuple(reader.uint32() for _ in range(reader.count()))
        reader.end()
        return cls(oids)


@dataclass(frozen=True, slots=True)
class FieldDescription:
    name: str
    table_oid: int = 0
    column_number: int = 0
    type_oid: int = 25
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0


@dataclass(frozen=True, slots=True)
class RowDescription:
    TYPE: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        body = _I16.pack(len(self.fields))
        for f in self.fields:
            body += _cstr(f.name) + _U32.pack(f.table_oid) + _I16.pack(f.column_number)
            body += _U32.pack(f.type_oid) + _I16.pack(f.type_size) + _I32.pack(f.type_modifier)
            body += _I16.pack(f.format)
        return _typed(self.TYPE, body)

    @classmethod
    def decode(cls, body: bytes) -> RowDescription:
        reader = _Reader(body)
        fields = tuple(
            FieldDescription(reader.cstring(), reader.uint32(), reader.int16(), reader.uint32(),
                             reader.int16(), reader.int32(), reader.int16())
            for _ in range(reader.count())
        )
        reader.end()
        return cls(fields)


@dataclass(frozen=True, slots=True)
class DataRow:
    TYPE: ClassVar[bytes] = b"D"
    values: tuple[bytes | None, ...]

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I16.pack(len(self.values)) + b"".join(_value(v) for v in self.values))

    @classmethod
    def decode(cls, body: bytes) -> DataRow:
        reader = _Reader(body)
        values = tuple(reader.value() for _ in range(reader.count()))
        reader.end()
        return cls(values)


def _decode_copy_response(body: bytes) -> tuple[int, tuple[int, ...]]:
    reader = _Reader(body)
    overall = reader.take(1)[0]
    formats = tuple(reader.int16() for _ in range(reader.count()))
    reader.end()
    return overall, formats


@dataclass(frozen=True, slots=True)
class CopyInResponse:
    TYPE: ClassVar[bytes] = b"G"
    format: int = 0
    column_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return _typed(self.TYPE, bytes([self.format]) + _I16.pack(len(self.column_formats))
                      + b"".join(_I16.pack(f) for f in self.column_formats))

    @classmethod
    def decode(cls, body: bytes) -> CopyInResponse:
        return cls(*_decode_copy_response(body))


@dataclass(frozen=True, slots=True)
class CopyOutResponse:
    TYPE: ClassVar[bytes] = b"H"
    format: int = 0
    column_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return _typed(self.TYPE, bytes([self.format]) + _I16.pack(len(self.column_formats))
                      + b"".join(_I16.pack(f) for f in self.column_formats))

    @classmethod
    def decode(cls, body: bytes) -> CopyOutResponse:
        return cls(*_decode_copy_response(body))


@dataclass(frozen=True, slots=True)
class CopyBothResponse:
    TYPE: ClassVar[bytes] = b"W"
    format: int = 0
    column_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return _typed(self.TYPE, bytes([self.format]) + _I16.pack(len(self.column_formats))
                      + b"".join(_I16.pack(f) for f in self.column_formats))

    @classmethod
    def decode(cls, body: bytes) -> CopyBothResponse:
        return cls(*_decode_copy_response(body))


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    TYPE: ClassVar[bytes] = b"A"
    process_id: int
    channel: str
    payload: str

    def encode(self) -> bytes:
        return _typed(self.TYPE, _I32.pack(self.process_id) + _cstr(self.channel) + _cstr(self.payload))

    @classmethod
    def decode(cls, body: bytes) -> NotificationResponse:
        reader = _Reader(body)
        result = cls(reader.int32(), reader.cstring(), reader.cstring())
        reader.end()
        return result


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    TYPE: ClassVar[bytes] = b"V"
    value: bytes | None

    def encode(self) -> bytes:
        return _typed(self.TYPE, _value(self.value))

    @classmethod
    def decode(cls, body: bytes) -> FunctionCallResponse:
        reader = _Reader(body)
        value = reader.value()
        reader.end()
        return cls(value)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    TYPE: ClassVar[bytes] = b"v"
    newest_minor: int
    unrecognized: tuple[str, ...] = ()

    def encode(self) -> bytes:
        body = _I32.pack(self.newest_minor) + _I32.pack(len(self.unrecognized))
        return _typed(self.TYPE, body + b"".join(_cstr(o) for o in self.unrecognized))

    @classmethod
    def decode(cls, body: bytes) -> NegotiateProtocolVersion:
        reader = _Reader(body)
        minor, count = reader.int32(), reader.int32()
        if count < 0:
            raise ProtocolError("negative count")
        options = tuple(reader.cstring() for _ in range(count))
        reader.end()
        return cls(minor, options)


BackendMessage = (
    Authentication | BackendKeyData | ParameterStatus | ReadyForQuery | ErrorResponse | NoticeResponse
    | CommandComplete | EmptyQueryResponse | ParseComplete | BindComplete | CloseComplete | NoData
    | PortalSuspended | ParameterDescription | RowDescription | DataRow | CopyInResponse | CopyOutResponse
    | CopyBothResponse | CopyData | CopyDone | NotificationResponse | FunctionCallResponse
    | NegotiateProtocolVersion
)
_BACKEND: dict[bytes, Any] = {
    m.TYPE: m
    for m in (BackendKeyData, ParameterStatus, ReadyForQuery, ErrorResponse, NoticeResponse,
              CommandComplete, EmptyQueryResponse, ParseComplete, BindComplete, CloseComplete, NoData,
              PortalSuspended, ParameterDescription, RowDescription, DataRow, CopyInResponse,
              CopyOutResponse, CopyBothResponse, CopyData, CopyDone, NotificationResponse,
              FunctionCallResponse, NegotiateProtocolVersion)
}


def decode_backend(frame: Frame) -> BackendMessage:
    """The backend message in ``frame``; ProtocolError for an unknown type or a bad body."""
    if frame.type == b"R":
        return decode_authentication(frame.body)
    message_type = _BACKEND.get(frame.type)
    if message_type is None:
        raise ProtocolError(f"unknown backend message type {frame.type!r}")
    message: BackendMessage = message_type.decode(frame.body)
    return message
