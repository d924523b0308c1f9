"""Turn arbitrary TCP chunks into whole protocol messages (no I/O).

A read may hold five messages or a third of one. :class:`Framer` buffers what it is fed and returns
every complete :class:`~enact_proxy.pgwire.messages.Frame`. A frontend stream starts in the startup
phase, whose messages have no type byte (``StartupMessage``, ``SSLRequest``, ``GSSENCRequest``,
``CancelRequest``): after SSLRequest/GSSENCRequest it stays there (the client sends its StartupMessage
next), after a StartupMessage it reads typed messages, after a CancelRequest nothing more may come.
A backend stream is typed from the first byte (the one-byte answer to SSLRequest is read by the
caller before a framer exists).

A length outside [4, max_message_size] (startup messages: [8, 10000] as in PostgreSQL), an unknown
startup code, or bytes after a CancelRequest raise :class:`ProtocolError` and leave the framer
unusable: the session must end.
"""

from __future__ import annotations

import struct

from enact_proxy.pgwire.messages import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
    Frame,
    ProtocolError,
)

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
MAX_STARTUP_MESSAGE_SIZE = 10_000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH

_HEADER = struct.Struct("!ci")
_LENGTH = struct.Struct("!i")


class Framer:
    """Feed bytes, get complete frames.

    ``startup=True`` for the agent's side of a connection (frontend messages), False for a server's.
    """

    def __init__(self, *, startup: bool = False, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE):
        self._buffer = bytearray()
        self._startup = startup
        self._cancelled = False
        self._broken: ProtocolError | None = None
        self.max_message_size = max_message_size

    @property
    def in_startup(self) -> bool:
        """True while the next message is a startup-phase one (no type byte)."""
        return self._startup

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return the messages it completes, in order."""
        if self._broken is not None:
            raise self._broken
        self._buffer += data
        try:
            return self._drain()
        except ProtocolError as exc:
            self._broken = exc
            raise

    def _drain(self) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        pos, size = 0, len(buffer)
        while pos < size:
            if self._cancelled:
                raise ProtocolError("data after a CancelRequest")
            if self._startup:
                if size - pos < 4:
                    break
                (length,) = _LENGTH.unpack_from(buffer, pos)
                if not 8 <= length <= MAX_STARTUP_MESSAGE_SIZE:
                    raise ProtocolError(f"invalid startup message length {length}")
                if size - pos < length:
                    break
                body = bytes(buffer[pos + 4 : pos + length])
                pos += length
                self._after_startup_message(body)
                frames.append(Frame(b"", body))
                continue
            if size - pos < 5:
                break
            type_byte, length = _HEADER.unpack_from(buffer, pos)
            if length < 4 or length > self.max_message_size:
                raise ProtocolError(f"invalid message length {length} for type {type_byte!r}")
            end = pos + 1 + length
            if end > size:
                break
            frames.append(Frame(type_byte, bytes(buffer[pos + 5 : end])))
            pos = end
        if pos:
            del buffer[:pos]
        return frames

    def _after_startup_message(self, body: bytes) -> None:
        (code,) = _LENGTH.unpack_from(body, 0)
        if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
            return
        if code == CANCEL_REQUEST_CODE:
            self._cancelled = True
            return
        if code >> 16 == 3:
            self._startup = False
            return
        raise ProtocolError(f"unsupported protocol version {code >> 16}.{code & 0xFFFF}")
