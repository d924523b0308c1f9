"""Turn the raw parts of an intercepted HTTP request into a normalised :class:`HttpCall`.

Vendor-neutral and free of I/O: the recognisers match on what this module produces, so every
trick that makes two spellings of one request look different to a matcher (``%2F``, ``..``,
``//``, a trailing slash, a compressed body, a method-override header) is undone or refused here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import brotli
import zstandard

from connectors.base import HttpCall, Refusal

if TYPE_CHECKING:
    from mitmproxy import http

METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
METHOD_OVERRIDE_QUERY = "_method"

# Decompressors are fed this much input at a time so a small bomb is stopped soon after it
# passes the size limit instead of after it has filled memory.
_DECODE_CHUNK = 16 * 1024

HeaderSource = Mapping[str, str] | Mapping[str, list[str]] | Iterable[tuple[str, str]]


def build_call(
    method: str,
    host: str,
    target: str,
    headers: HeaderSource,
    body: bytes,
    max_body_bytes: int,
) -> HttpCall:
    """Normalise one request. Raises :class:`Refusal` when it cannot be read safely."""
    header_map = _merge_headers(headers)
    for name in METHOD_OVERRIDE_HEADERS:
        if name in header_map:
            raise Refusal(f"method-override header {name} is not allowed")
    if len(body) > max_body_bytes:
        raise Refusal(f"request body exceeds the limit of {max_body_bytes} bytes", status=413)

    raw_path, raw_query = _split_target(target)
    query = _parse_query(raw_query)
    if METHOD_OVERRIDE_QUERY in query:
        raise Refusal(f"method-override query parameter {METHOD_OVERRIDE_QUERY} is not allowed")

    decoded = decode_body(body, header_map.get("content-encoding", ""), max_body_bytes)
    return HttpCall(
        method=method.strip().upper(),
        host=normalise_host(host),
        path=normalise_path(raw_path),
        raw_path=raw_path,
        query=query,
        headers=header_map,
        body=decoded,
    )


def call_from_flow(flow: http.HTTPFlow, max_body_bytes: int) -> HttpCall:
    """Build the call from a mitmproxy flow, refusing when Host, SNI and dial target disagree."""
    request = flow.request
    if request.raw_content is None:
        # A streamed body never reached us: judging the headers alone would judge a different request.
        raise Refusal("request body was streamed and cannot be inspected")
    host_headers = request.headers.get_all("host")
    if len(host_headers) > 1:
        raise Refusal("more than one Host header")
    sent_authority = request.host_header or request.host
    host = normalise_host(sent_authority)
    dial_host = normalise_host(request.host)
    if host != dial_host:
        raise Refusal("host header does not match the connection target")
    sni = flow.client_conn.sni
    if sni and normalise_host(sni) != host:
        raise Refusal("host header does not match the TLS server name")
    headers = [(k, v) for k, v in request.headers.items(multi=True)]
    return build_call(request.method, host, request.path, headers, request.raw_content, max_body_bytes)


def normalise_host(authority: str) -> str:
    """``API.GitHub.com.:443`` -> ``api.github.com``."""
    value = authority.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def normalise_path(raw_path: str) -> str:
    """Percent-decode (``%2F`` becomes a separator), drop dot segments, ``//`` and a trailing ``/``."""
    if "\x00" in raw_path:
        raise Refusal("request target contains a NUL byte")
    raw_bytes = unquote_to_bytes(raw_path)
    if b"\x00" in raw_bytes:
        raise Refusal("request path contains an encoded NUL byte")
    try:
        decoded = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal("request path is not valid UTF-8 after percent-decoding") from exc
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def decode_body(body: bytes, content_encoding: str, max_body_bytes: int) -> bytes:
    """Undo every listed Content-Encoding (the last applied is undone first)."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise Refusal(f"body could not be decoded: unsupported Content-Encoding {coding!r}")
        try:
            body = decoder(body, max_body_bytes)
        except Refusal:
            raise
        except Exception as exc:  # every decoder failure means the same thing: we cannot read it
            raise Refusal(f"body could not be decoded: {coding}: {exc}") from exc
    return body


def _merge_headers(headers: HeaderSource) -> dict[str, str]:
    pairs: list[tuple[str, str]] = []
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if isinstance(value, list | tuple):
                pairs.extend((name, v) for v in value)
            else:
                pairs.append((name, value))
    else:
        pairs.extend(headers)
    merged: dict[str, str] = {}
    for name, value in pairs:
        key = name.strip().lower()
        if "\x00" in key or "\x00" in value:
            raise Refusal("request header contains a NUL byte")
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _split_target(target: str) -> tuple[str, str]:
    if "\x00" in target:
        raise Refusal("request target contains a NUL byte")
    if target.startswith("/"):
        path, _, rest = target.partition("?")
        return path, rest.partition("#")[0]
    if target == "*":
        return "/", ""
    # absolute-form (plain-HTTP proxy requests)
    parts = urlsplit(target)
    if not parts.scheme or not parts.netloc:
        raise Refusal("request target is neither a path nor an absolute URL")
    return parts.path or "/", parts.query


def _parse_query(raw_query: str) -> dict[str, list[str]]:
    if not raw_query:
        return {}
    try:
        return parse_qs(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise Refusal("query string is not valid UTF-8 after percent-decoding") from exc


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise Refusal(f"decoded request body exceeds the limit of {limit} bytes", status=413)


def _decode_zlib(body: bytes, limit: int, wbits: int, multi_member: bool) -> bytes:
    out = bytearray()
    data = body
    while True:
        engine = zlib.decompressobj(wbits)
        pending = data
        while pending:
            out += engine.decompress(pending, limit + 1 - len(out))
            _check_size(len(out), limit)
            pending = engine.unconsumed_tail
        if not engine.eof:
            raise ValueError("truncated stream")
        data = engine.unused_data
        if not data:
            return bytes(out)
        if not multi_member:
            raise ValueError("trailing data after the compressed stream")


def _decode_gzip(body: bytes, limit: int) -> bytes:
    return _decode_zlib(body, limit, wbits=31, multi_member=True)


def _decode_deflate(body: bytes, limit: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but many clients send a raw deflate stream.
    try:
        return _decode_zlib(body, limit, wbits=15, multi_member=False)
    except zlib.error:
        return _decode_zlib(body, limit, wbits=-15, multi_member=False)


def _decode_brotli(body: bytes, limit: int) -> bytes:
    engine = brotli.Decompressor()
    out = bytearray()
    for start in range(0, len(body), _DECODE_CHUNK):
        out += engine.process(body[start : start + _DECODE_CHUNK])
        _check_size(len(out), limit)
    if not engine.is_finished():
        raise ValueError("truncated stream")
    return bytes(out)


def _decode_zstd(body: bytes, limit: int) -> bytes:
    out = bytearray()
    data = body
    while True:
        engine = zstandard.ZstdDecompressor().decompressobj()
        offset = 0
        while offset < len(data) and not engine.eof:
            out += engine.decompress(data[offset : offset + _DECODE_CHUNK])
            _check_size(len(out), limit)
            offset += _DECODE_CHUNK
        if not engine.eof:
            raise ValueError("truncated stream")
        data = engine.unused_data + data[offset:]
        if not data:
            return bytes(out)


def _decode_identity(body: bytes, limit: int) -> bytes:
    return body


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _decode_gzip,
    "x-gzip": _decode_gzip,
    "deflate": _decode_deflate,
    "br": _decode_brotli,
    "zstd": _decode_zstd,
    "identity": _decode_identity,
}
