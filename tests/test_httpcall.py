import gzip
import zlib

import brotli
import pytest
import zstandard
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from connectors.base import Refusal
from enact_proxy.httpcall import build_call, call_from_flow, decode_body, normalise_host, normalise_path

LIMIT = 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/crm/v3/objects/contacts/", "/crm/v3/objects/contacts"),
        ("//crm///v3/objects//contacts", "/crm/v3/objects/contacts"),
        ("/repos/o/r/git/refs/heads%2Ffeature", "/repos/o/r/git/refs/heads/feature"),
        ("/repos/o/r/git/refs/heads%2ffeature", "/repos/o/r/git/refs/heads/feature"),
        ("/a/./b/../c", "/a/c"),
        ("/a/%2E%2E/b", "/b"),
        ("/../../etc", "/etc"),
        ("/contacts/jane%40acme.com", "/contacts/jane@acme.com"),
        ("/a/%252F", "/a/%2F"),  # decoded once, as the server decodes it
        ("/caf%C3%A9", "/café"),
    ],
)
def test_normalise_path(raw, expected):
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/a/%00/b", "NUL"),
        ("/a/\x00", "NUL"),
        ("/a/%FF%FE", "UTF-8"),
    ],
)
def test_normalise_path_refuses(raw, reason):
    with pytest.raises(Refusal, match=reason):
        normalise_path(raw)


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("API.HubAPI.com", "api.hubapi.com"),
        ("api.github.com:443", "api.github.com"),
        ("api.github.com.", "api.github.com"),
        ("[::1]:8080", "::1"),
    ],
)
def test_normalise_host(authority, host):
    assert normalise_host(authority) == host


def test_build_call_normalises_everything():
    call = build_call(
        "post",
        "API.HubAPI.com:443",
        "/crm//v3/objects/contacts/?a=1&b=x%20y&a=2",
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        gzip.compress(b'{"properties": {}}'),
        LIMIT,
    )
    assert call.method == "POST"
    assert call.host == "api.hubapi.com"
    assert call.path == "/crm/v3/objects/contacts"
    assert call.raw_path == "/crm//v3/objects/contacts/"
    assert call.query == {"a": ["1", "2"], "b": ["x y"]}
    assert call.headers["content-type"] == "application/json"
    assert call.body == b'{"properties": {}}'


def test_absolute_form_target():
    call = build_call("GET", "api.github.com", "http://api.github.com/repos/o/r?x=1", {}, b"", LIMIT)
    assert call.path == "/repos/o/r"
    assert call.query_one("x") == "1"


def test_multi_valued_headers_are_joined():
    call = build_call("GET", "h", "/", [("Accept", "a"), ("accept", "b")], b"", LIMIT)
    assert call.headers["accept"] == "a, b"
    call = build_call("GET", "h", "/", {"Accept": ["a", "b"]}, b"", LIMIT)
    assert call.headers["accept"] == "a, b"


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
def test_method_override_headers_refused(header):
    with pytest.raises(Refusal, match="method-override"):
        build_call("POST", "h", "/", {header: "DELETE"}, b"", LIMIT)


def test_method_override_query_refused():
    with pytest.raises(Refusal, match="method-override"):
        build_call("POST", "h", "/x?_method=DELETE", {}, b"", LIMIT)


def test_body_over_limit_is_413():
    with pytest.raises(Refusal) as caught:
        build_call("POST", "h", "/", {}, b"x" * 11, 10)
    assert caught.value.status == 413


def test_decompression_bomb_is_413():
    bomb = gzip.compress(b"\0" * (LIMIT * 8))
    assert len(bomb) < LIMIT
    with pytest.raises(Refusal) as caught:
        build_call("POST", "h", "/", {"content-encoding": "gzip"}, bomb, LIMIT)
    assert caught.value.status == 413


PLAIN = b'{"hello": "world"}' * 50


def _deflate_raw(data: bytes) -> bytes:
    engine = zlib.compressobj(wbits=-15)
    return engine.compress(data) + engine.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("GZIP", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", _deflate_raw(PLAIN)),
        ("br", brotli.compress(PLAIN)),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN)),
        ("identity", PLAIN),
        ("", PLAIN),
        ("gzip, br", brotli.compress(gzip.compress(PLAIN))),
        ("br,zstd", zstandard.ZstdCompressor().compress(brotli.compress(PLAIN))),
        # two gzip members and two zstd frames concatenated are one body each
        ("gzip", gzip.compress(PLAIN[:100]) + gzip.compress(PLAIN[100:])),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN[:100]) + zstandard.ZstdCompressor().compress(PLAIN[100:])),
    ],
)
def test_decode_body(encoding, encoded):
    assert decode_body(encoded, encoding, LIMIT) == PLAIN


@pytest.mark.parametrize(
    ("encoding", "encoded", "reason"),
    [
        ("gzip", gzip.compress(PLAIN)[:-8], "truncated"),
        ("gzip", b"not gzip at all", "gzip"),
        ("deflate", b"garbage", "deflate"),
        ("br", brotli.compress(PLAIN)[:-4], "br"),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN)[:-3], "truncated"),
        ("compress", PLAIN, "unsupported"),
        ("gzip, gzip", gzip.compress(PLAIN), "gzip"),
    ],
)
def test_decode_body_failure_refuses(encoding, encoded, reason):
    with pytest.raises(Refusal, match="body could not be decoded") as caught:
        decode_body(encoded, encoding, LIMIT)
    assert reason in caught.value.reason
    assert caught.value.status == 403


def _flow(host_header: str, *, dial_host: str = "api.github.com", sni: str | None = None, path: bytes = b"/x"):
    request = tutils.treq(host=dial_host, port=443, scheme=b"https", path=path,
                          headers=http.Headers(host=host_header, content_type="application/json"),
                          content=b"{}")
    flow = tflow.tflow(req=request)
    flow.client_conn.sni = sni
    return flow


def test_call_from_flow():
    call = call_from_flow(_flow("API.github.com", sni="api.github.com", path=b"/repos/O/R/"), LIMIT)
    assert call.host == "api.github.com"
    assert call.path == "/repos/O/R"
    assert call.body == b"{}"
    assert call.headers["content-type"] == "application/json"


def test_call_from_flow_refuses_sni_mismatch():
    with pytest.raises(Refusal, match="TLS server name"):
        call_from_flow(_flow("api.github.com", sni="evil.example"), LIMIT)


def test_call_from_flow_refuses_host_that_is_not_the_dial_target():
    with pytest.raises(Refusal, match="host header"):
        call_from_flow(_flow("api.hubapi.com", dial_host="api.github.com"), LIMIT)


def test_call_from_flow_refuses_two_host_headers():
    flow = _flow("api.github.com")
    flow.request.headers.add("host", "api.hubapi.com")
    with pytest.raises(Refusal, match="more than one Host"):
        call_from_flow(flow, LIMIT)


def test_call_from_flow_refuses_streamed_body():
    flow = _flow("api.github.com")
    flow.request.stream = True
    flow.request.data.content = None
    with pytest.raises(Refusal, match="streamed"):
        call_from_flow(flow, LIMIT)


def test_call_from_flow_raw_nul_in_target():
    with pytest.raises(Refusal, match="NUL"):
        call_from_flow(_flow("api.github.com", path=b"/repos/o/r\x00/x"), LIMIT)
