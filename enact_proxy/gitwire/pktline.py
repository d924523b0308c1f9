"""pkt-line framing (gitprotocol-common): reading from a bytes buffer, writing via dulwich."""

from __future__ import annotations

from dataclasses import dataclass

from dulwich.protocol import pkt_line

from enact_proxy.gitwire.errors import GitWireError

__all__ = ["FLUSH", "DELIM", "RESPONSE_END", "MAX_PKT_SIZE", "PktReader", "pkt_line", "encode_lines"]

# Largest pkt-line git accepts, 4-byte header included (LARGE_PACKET_MAX).
MAX_PKT_SIZE = 65520


@dataclass(frozen=True)
class _Special:
    name: str

    def __str__(self) -> str:
        return self.name


FLUSH = _Special("flush-pkt")
DELIM = _Special("delim-pkt")
RESPONSE_END = _Special("response-end-pkt")
_SPECIALS = {0: FLUSH, 1: DELIM, 2: RESPONSE_END}
_HEX = frozenset(b"0123456789abcdefABCDEF")


class PktReader:
    """Reads pkt-lines one at a time from an in-memory buffer; the rest stays readable."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = data
        self.offset = offset

    def at_end(self) -> bool:
        return self.offset >= len(self._data)

    def remaining(self) -> bytes:
        return self._data[self.offset :]

    def peek(self, size: int) -> bytes:
        return self._data[self.offset : self.offset + size]

    def read(self) -> bytes | _Special:
        """The next pkt-line's payload, or FLUSH / DELIM / RESPONSE_END."""
        header = self._data[self.offset : self.offset + 4]
        if len(header) < 4:
            raise GitWireError("truncated pkt-line: expected a 4-byte length, input ended")
        if not _HEX.issuperset(header):
            raise GitWireError(f"invalid pkt-line length {header!r}")
        size = int(header, 16)
        if size in _SPECIALS:
            self.offset += 4
            return _SPECIALS[size]
        if size == 3:
            raise GitWireError("invalid pkt-line length 0003")
        if size > MAX_PKT_SIZE:
            raise GitWireError(f"pkt-line of {size} bytes exceeds the maximum {MAX_PKT_SIZE}")
        end = self.offset + size
        if end > len(self._data):
            raise GitWireError(f"truncated pkt-line: announced {size} bytes, input ended first")
        payload = self._data[self.offset + 4 : end]
        self.offset = end
        return payload


def encode_lines(lines: list[bytes], flush: bool = True) -> bytes:
    """pkt-line framed ``lines``, optionally followed by a flush-pkt."""
    framed = b"".join(pkt_line(line) for line in lines)
    return framed + (pkt_line(None) if flush else b"")
