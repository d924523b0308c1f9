"""pkt-line reading from a buffer."""

from __future__ import annotations

import pytest

from enact_proxy.gitwire import GitWireError
from enact_proxy.gitwire.pktline import DELIM, FLUSH, RESPONSE_END, PktReader, encode_lines


def test_reads_lines_specials_and_leaves_the_rest() -> None:
    reader = PktReader(encode_lines([b"hello\n", b""]) + b"00010002PACKrest")
    assert reader.read() == b"hello\n"
    assert reader.read() == b""
    assert reader.read() is FLUSH
    assert reader.read() is DELIM
    assert reader.read() is RESPONSE_END
    assert reader.remaining() == b"PACKrest"
    assert not reader.at_end()


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"000", "truncated"), (b"-001", "invalid"), (b"0x10", "invalid"), (b"0003", "invalid"),
     (b"fff1", "exceeds"), (b"0009abc", "truncated")],
)
def test_bad_framing(data: bytes, reason: str) -> None:
    with pytest.raises(GitWireError, match=reason):
        PktReader(data).read()


def test_largest_line_is_accepted() -> None:
    payload = b"x" * (65520 - 4)
    assert PktReader(b"fff0" + payload).read() == payload
