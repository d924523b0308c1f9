"""Framing arbitrary TCP chunks into messages; fuzzed: random input only ever raises ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enact_proxy.pgwire import messages as m
from enact_proxy.pgwire.framing import MAX_STARTUP_MESSAGE_SIZE, Framer

STARTUP = m.StartupMessage(m.PROTOCOL_VERSION_3_0, (("user", "agent"), ("database", "app"))).encode()
EXTENDED_BATCH = b"".join(
    msg.encode()
    for msg in (
        m.Parse("", "INSERT INTO t (a) VALUES ($1)", (23,)),
        m.Bind("", "", (0,), (b"7",), ()),
        m.Describe("P", ""),
        m.Execute("", 0),
        m.Sync(),
    )
)


def _feed_in_chunks(framer: Framer, data: bytes, cuts: list[int]) -> list[m.Frame]:
    frames: list[m.Frame] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        frames.extend(framer.feed(data[start:cut]))
        start = cut
    return frames


def test_five_messages_in_one_read():
    frames = Framer().feed(EXTENDED_BATCH)
    assert [f.type for f in frames] == [b"P", b"B", b"D", b"E", b"S"]
    assert b"".join(f.encode() for f in frames) == EXTENDED_BATCH


def test_a_third_of_a_message_waits_for_the_rest():
    raw = m.Query("SELECT " + "x" * 300).encode()
    framer = Framer()
    assert framer.feed(raw[:100]) == []
    assert framer.feed(raw[100:200]) == []
    assert framer.buffered == 200
    (frame,) = framer.feed(raw[200:])
    assert m.decode_frontend(frame) == m.Query("SELECT " + "x" * 300)
    assert framer.buffered == 0


def test_every_split_point_frames_identically():
    stream = STARTUP + EXTENDED_BATCH
    whole = Framer(startup=True).feed(stream)
    for cut in range(len(stream) + 1):
        framer = Framer(startup=True)
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == whole, cut


def test_byte_by_byte():
    framer = Framer(startup=True)
    frames = [frame for byte in (STARTUP + EXTENDED_BATCH) for frame in framer.feed(bytes([byte]))]
    assert [f.type for f in frames] == [b"", b"P", b"B", b"D", b"E", b"S"]


def test_ssl_request_then_startup_then_typed():
    framer = Framer(startup=True)
    (ssl,) = framer.feed(m.SSLRequest().encode())
    assert m.decode_startup(ssl.body) == m.SSLRequest()
    assert framer.in_startup
    (gss,) = framer.feed(m.GSSENCRequest().encode())
    assert m.decode_startup(gss.body) == m.GSSENCRequest()
    (startup, query) = framer.feed(STARTUP + m.Query("SELECT 1").encode())
    assert isinstance(m.decode_startup(startup.body), m.StartupMessage)
    assert not framer.in_startup
    assert m.decode_frontend(query) == m.Query("SELECT 1")


def test_nothing_may_follow_a_cancel_request():
    framer = Framer(startup=True)
    (cancel,) = framer.feed(m.CancelRequest(9, b"abcd").encode())
    assert m.decode_startup(cancel.body) == m.CancelRequest(9, b"abcd")
    with pytest.raises(m.ProtocolError, match="after a CancelRequest"):
        framer.feed(b"Q")


@pytest.mark.parametrize(
    ("startup", "data", "match"),
    [
        (False, b"Q\x00\x00\x00\x03", "invalid message length 3"),
        (False, b"Q\xff\xff\xff\xff", "invalid message length -1"),
        (False, b"d\x7f\xff\xff\xff", "invalid message length"),
        (True, b"\x00\x00\x00\x04", "invalid startup message length 4"),
        (True, (MAX_STARTUP_MESSAGE_SIZE + 1).to_bytes(4, "big"), "invalid startup message length"),
        (True, b"\x00\x00\x00\x08\x00\x02\x00\x00", "protocol version 2.0"),
        (True, b"\x16\x03\x01\x02\x00\x01\x00\x01", "invalid startup message length"),  # a TLS ClientHello
    ],
)
def test_bad_lengths_and_codes(startup, data, match):
    with pytest.raises(m.ProtocolError, match=match):
        Framer(startup=startup).feed(data)


def test_maximum_message_size_is_enforced_before_buffering():
    framer = Framer(max_message_size=1024)
    assert framer.feed(m.CopyData(b"x" * 1019).encode())  # exactly 1024 with the length field
    with pytest.raises(m.ProtocolError, match="invalid message length 1025"):
        framer.feed(b"d\x00\x00\x04\x01")  # header only: refused without waiting for the body


def test_a_broken_framer_stays_broken():
    framer = Framer()
    with pytest.raises(m.ProtocolError):
        framer.feed(b"Q\x00\x00\x00\x00")
    with pytest.raises(m.ProtocolError):
        framer.feed(m.Sync().encode())


def _decode_all(frames: list[m.Frame], *, backend: bool) -> None:
    for frame in frames:
        if frame.type == b"":
            m.decode_startup(frame.body)
        elif backend:
            m.decode_backend(frame)
        else:
            m.decode_frontend(frame)


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
    startup=st.booleans(),
    backend=st.booleans(),
)
def test_random_bytes_only_ever_raise_protocol_error(data, cuts, startup, backend):
    framer = Framer(startup=startup and not backend, max_message_size=4096)
    try:
        frames = _feed_in_chunks(framer, data, cuts)
        _decode_all(frames, backend=backend)
    except m.ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    type_byte=st.sampled_from([b"Q", b"P", b"B", b"D", b"E", b"C", b"S", b"H", b"X", b"p", b"F", b"d", b"c",
                               b"f", b"R", b"K", b"Z", b"T", b"N", b"t", b"1", b"2", b"3", b"n", b"s",
                               b"G", b"W", b"A", b"V", b"v", b"I"]),
    body=st.binary(max_size=200),
    backend=st.booleans(),
)
def test_random_bodies_with_valid_framing_only_raise_protocol_error(type_byte, body, backend):
    (frame,) = Framer().feed(m.Frame(type_byte, body).encode())
    assert frame.body == body
    with contextlib.suppress(m.ProtocolError):
        _decode_all([frame], backend=backend)


@settings(max_examples=100, deadline=None)
@given(sql=st.text(max_size=200).filter(lambda s: "\x00" not in s), cuts=st.lists(st.integers(0, 400)))
def test_any_chunking_of_valid_messages_frames_identically(sql, cuts):
    stream = STARTUP + m.Query(sql).encode() + EXTENDED_BATCH
    expected = Framer(startup=True).feed(stream)
    got = _feed_in_chunks(Framer(startup=True), stream, [c for c in cuts if c <= len(stream)])
    assert got == expected
    assert m.decode_frontend(got[1]) == m.Query(sql)
