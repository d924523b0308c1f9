"""Protocol messages: encode/decode round trips, known byte layouts, and malformed bodies."""

from __future__ import annotations

import pytest

from enact_proxy.pgwire import messages as m
from enact_proxy.pgwire.framing import Framer

FRONTEND = [
    m.Query("SELECT 1"),
    m.Parse("s1", "SELECT $1::int", (23,)),
    m.Parse("", "SELECT 1"),
    m.Bind("p", "s1", (1,), (b"\x00\x00\x00\x01", None), (0, 1)),
    m.Describe("S", "s1"),
    m.Describe("P", ""),
    m.Close("P", "p"),
    m.Execute("p", 100),
    m.Sync(),
    m.Flush(),
    m.Terminate(),
    m.PasswordMessage.for_password("secret"),
    m.FunctionCall(1234, b"\x00\x01"),
    m.CopyData(b"1\tjane\n"),
    m.CopyDone(),
    m.CopyFail("aborted"),
]

BACKEND = [
    m.AuthenticationOk(),
    m.AuthenticationCleartextPassword(),
    m.AuthenticationMD5Password(b"salt"),
    m.AuthenticationSASL(("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS")),
    m.AuthenticationSASLContinue(b"r=abc,s=xyz,i=4096"),
    m.AuthenticationSASLFinal(b"v=xyz"),
    m.AuthenticationOther(7, b""),
    m.BackendKeyData(42, b"\x01\x02\x03\x04"),
    m.ParameterStatus("client_encoding", "UTF8"),
    m.ReadyForQuery("E"),
    m.ErrorResponse.build("42501", "Blocked by Enact: x", detail="receipt r1"),
    m.NoticeResponse((("S", "NOTICE"), ("M", "hello"))),
    m.CommandComplete("INSERT 0 1"),
    m.EmptyQueryResponse(),
    m.ParseComplete(),
    m.BindComplete(),
    m.CloseComplete(),
    m.NoData(),
    m.PortalSuspended(),
    m.ParameterDescription((23, 25)),
    m.RowDescription((m.FieldDescription("id", 16384, 1, 23, 4, -1, 0), m.FieldDescription("é"))),
    m.DataRow((b"1", None, b"")),
    m.CopyInResponse(0, (0, 0)),
    m.CopyOutResponse(1, (1,)),
    m.CopyBothResponse(0, ()),
    m.NotificationResponse(7, "chan", "payload"),
    m.FunctionCallResponse(None),
    m.NegotiateProtocolVersion(0, ("_pq_.x",)),
]


def _frame(raw: bytes, startup: bool = False) -> m.Frame:
    (frame,) = Framer(startup=startup).feed(raw)
    return frame


@pytest.mark.parametrize("message", FRONTEND, ids=lambda msg: type(msg).__name__)
def test_frontend_round_trip(message):
    raw = message.encode()
    frame = _frame(raw)
    assert frame.type == message.TYPE
    assert frame.encode() == raw
    assert m.decode_frontend(frame) == message


@pytest.mark.parametrize("message", BACKEND, ids=lambda msg: type(msg).__name__)
def test_backend_round_trip(message):
    raw = message.encode()
    frame = _frame(raw)
    assert frame.encode() == raw
    assert m.decode_backend(frame) == message


@pytest.mark.parametrize(
    "message",
    [m.StartupMessage(m.PROTOCOL_VERSION_3_0, (("user", "agent"), ("database", "app"))), m.SSLRequest(),
     m.GSSENCRequest(), m.CancelRequest(42, b"\x00\x00\x00\x07")],
    ids=lambda msg: type(msg).__name__,
)
def test_startup_phase_round_trip(message):
    frame = _frame(message.encode(), startup=True)
    assert frame.type == b""
    assert m.decode_startup(frame.body) == message


def test_known_layouts():
    assert m.Query("SELECT 1").encode() == b"Q\x00\x00\x00\x0dSELECT 1\x00"
    assert m.Sync().encode() == b"S\x00\x00\x00\x04"
    assert m.SSLRequest().encode() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    assert m.ReadyForQuery("I").encode() == b"Z\x00\x00\x00\x05I"
    startup = m.StartupMessage(m.PROTOCOL_VERSION_3_0, (("user", "u"),)).encode()
    assert startup == b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00u\x00\x00"


def test_error_response_fields():
    error = m.ErrorResponse.build("42501", "Blocked by Enact: no", detail="receipt abc")
    assert (error.sqlstate, error.message, error.get("D"), error.get("S")) == (
        "42501", "Blocked by Enact: no", "receipt abc", "ERROR")
    assert error.get("H") is None


def test_password_and_sasl_bodies():
    assert m.PasswordMessage.for_password("pw").password() == "pw"
    initial = m.SASLInitialResponse("SCRAM-SHA-256", b"n,,n=,r=abc")
    decoded = m.decode_frontend(_frame(initial.encode()))
    assert isinstance(decoded, m.PasswordMessage)
    assert m.SASLInitialResponse.decode(decoded.data) == initial
    assert m.SASLResponse.decode(m.SASLResponse(b"c=biws").encode()[5:]) == m.SASLResponse(b"c=biws")


def test_startup_params_mapping():
    startup = m.StartupMessage(m.PROTOCOL_VERSION_3_0, (("user", "a"), ("options", "-c x=y")))
    assert startup.params == {"user": "a", "options": "-c x=y"}


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (m.Frame(b"Q", b"SELECT 1"), "NUL"),
        (m.Frame(b"Q", b"SELECT 1\x00extra"), "end of a message"),
        (m.Frame(b"Q", b"\xff\xfe\x00"), "UTF-8"),
        (m.Frame(b"P", b"s\x00q\x00\x00\x02\x00\x00\x00\x17"), "inside a field"),
        (m.Frame(b"B", b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00"), "negative value length"),
        (m.Frame(b"B", b"\x00\x00\xff\xff"), "negative count"),
        (m.Frame(b"D", b"X\x00"), "'S' or 'P'"),
        (m.Frame(b"S", b"x"), "no body"),
        (m.Frame(b"?", b""), "unknown frontend"),
    ],
)
def test_malformed_frontend_bodies(frame, match):
    with pytest.raises(m.ProtocolError, match=match):
        m.decode_frontend(frame)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (m.Frame(b"Z", b"X"), "I, T or E"),
        (m.Frame(b"R", b"\x00\x00\x00\x05ab"), "inside a field"),
        (m.Frame(b"K", b"\x00\x00\x00\x01\x02"), "secret key"),
        (m.Frame(b"E", b"Mmessage"), "NUL"),
        (m.Frame(b"?", b""), "unknown backend"),
    ],
)
def test_malformed_backend_bodies(frame, match):
    with pytest.raises(m.ProtocolError, match=match):
        m.decode_backend(frame)


def test_malformed_startup_bodies():
    with pytest.raises(m.ProtocolError, match="protocol version 2.0"):
        m.decode_startup(b"\x00\x02\x00\x00user\x00u\x00\x00")
    with pytest.raises(m.ProtocolError, match="fixed length"):
        m.decode_startup(b"\x04\xd2\x16\x2fextra")
    with pytest.raises(m.ProtocolError, match="NUL"):
        m.decode_startup(b"\x00\x03\x00\x00user\x00u")
    with pytest.raises(m.ProtocolError, match="secret key"):
        m.decode_startup(b"\x04\xd2\x16\x2e\x00\x00\x00\x01\x00")


def test_strings_with_nul_cannot_be_encoded():
    with pytest.raises(m.ProtocolError):
        m.Query("SELECT 1\x00; DROP TABLE t").encode()
