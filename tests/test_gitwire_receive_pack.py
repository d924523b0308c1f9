"""receive-pack request parsing: bytes captured from the real git client, malformed input, fuzz."""
# ruff: noqa: F811 - pytest fixtures imported from tests.gitwire_fixtures are redefined as arguments

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enact_proxy.gitwire import GitWireError, is_probe_request, parse_receive_pack
from enact_proxy.gitwire.pktline import encode_lines
from tests.gitwire_fixtures import (  # noqa: F401 - pytest fixtures
    GitHttpServer,
    Workspace,
    capture_push,
    git_server,
    workspace,
)

A = "a" * 40
B = "b" * 40
Z = "0" * 40


def test_real_push_of_two_refs_with_push_options(workspace: Workspace, git_server: GitHttpServer) -> None:
    tip = workspace.commit("first", {"a.txt": "a\n"})
    body = capture_push(workspace, git_server, "-o", "ci.skip", "-o", "note=x y", "main", "main:refs/heads/copy")

    req = parse_receive_pack(body)

    assert [(c.old, c.new, c.ref) for c in req.commands] == [
        (Z, tip, "refs/heads/main"),
        (Z, tip, "refs/heads/copy"),
    ]
    assert {"report-status-v2", "side-band-64k", "push-options"} <= req.capabilities
    assert req.push_options == ["ci.skip", "note=x y"]
    assert req.pack.startswith(b"PACK")


def test_real_delete_carries_no_pack(workspace: Workspace, git_server: GitHttpServer) -> None:
    tip = workspace.commit("first", {"a.txt": "a\n"})
    workspace.publish("main", "main:refs/heads/old")

    req = parse_receive_pack(capture_push(workspace, git_server, ":old"))

    assert [(c.old, c.new, c.ref) for c in req.commands] == [(tip, Z, "refs/heads/old")]
    assert req.commands[0].is_delete and req.pack == b""


def test_shallow_lines_and_capabilities() -> None:
    body = encode_lines(
        [b"shallow " + B.encode() + b"\n", f"{A} {B} refs/heads/x\0report-status agent=git/2\n".encode()]
    ) + b"PACK" + b"\0" * 20
    req = parse_receive_pack(body)
    assert req.shallow == [B]
    assert req.capabilities == frozenset({"report-status", "agent=git/2"})
    assert req.has_capability("agent") and not req.has_capability("side-band")


def test_probe_request_is_recognised() -> None:
    assert is_probe_request(b"0000")
    assert not is_probe_request(b"00000000")
    with pytest.raises(GitWireError, match="no ref update"):
        parse_receive_pack(b"0000")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "truncated pkt-line"),
        (b"00", "truncated pkt-line"),
        (b"zzzz", "invalid pkt-line length"),
        (b"0003", "invalid pkt-line length"),
        (b"ffff" + b"x" * 10, "exceeds the maximum"),
        (b"0030abc", "truncated pkt-line"),
        (encode_lines([f"{A} {B}\0report-status".encode()]), "malformed command"),
        (encode_lines([f"{A[:39]}g {B} refs/heads/x\0".encode()]), "not a 40-hex object id"),
        (encode_lines([f"{A} {B} refs/heads/bad..name\0".encode()]), "invalid ref name"),
        (encode_lines([f"{A} {B} HEAD\0".encode()]), "invalid ref name"),
        (encode_lines([f"{Z} {Z} refs/heads/x\0".encode()]), "zero old and a zero new"),
        (encode_lines([f"{A} {B} refs/heads/x\0".encode()]), "carries no packfile"),
        (encode_lines([f"{A} {B} refs/heads/x\0".encode()]) + b"JUNK", "not a packfile"),
        (encode_lines([f"{A} {Z} refs/heads/x\0".encode()], flush=False), "truncated pkt-line"),
        (encode_lines([f"{A} {B} refs/heads/x\0push-options".encode()]) + b"0008opt", "truncated pkt-line"),
        (encode_lines([b"push-cert\0report-status\n"]), "push-cert"),
        (encode_lines([f"{A} {B} refs/heads/\xff\0".encode("latin-1")]), "not valid UTF-8"),
        (encode_lines([f"{A} {B} refs/heads/x\0object-format=sha256".encode()]), "sha256"),
        (b"0001" + encode_lines([]), "unexpected delim-pkt"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(GitWireError, match=reason):
        parse_receive_pack(body)


def test_command_limit() -> None:
    from enact_proxy.gitwire import receive_pack

    lines = [f"{A} {Z} refs/heads/b{i}".encode() for i in range(receive_pack.MAX_COMMANDS + 1)]
    lines[0] += b"\0report-status"
    with pytest.raises(GitWireError, match="more than 10000 ref updates"):
        parse_receive_pack(encode_lines(lines))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_gitwireerror(body: bytes) -> None:
    with contextlib.suppress(GitWireError):
        parse_receive_pack(body)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.sampled_from(
                [
                    f"{A} {B} refs/heads/x\0report-status push-options".encode(),
                    f"{A} {Z} refs/tags/v1".encode(),
                    f"shallow {B}".encode(),
                    b"push-option",
                ]
            ),
        ),
        max_size=6,
    ),
    st.booleans(),
    st.binary(max_size=40),
)
def test_structured_garbage_only_raises_gitwireerror(lines: list[bytes], flush: bool, tail: bytes) -> None:
    try:
        req = parse_receive_pack(encode_lines(lines, flush=flush) + tail)
    except GitWireError:
        return
    assert req.commands
