"""The sidecar's mirror: fetched over smart HTTP with the credential, used to resolve thin packs."""
# ruff: noqa: F811 - pytest fixtures imported from tests.gitwire_fixtures are redefined as arguments

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from enact_proxy.gitwire import GitWireError, analyse_push, parse_receive_pack
from enact_proxy.gitwire.mirror import GitMirror
from tests.gitwire_fixtures import (  # noqa: F401 - pytest fixtures
    GitHttpServer,
    Workspace,
    basic_token,
    capture_push,
    git_server,
    workspace,
)

TOKEN = "ghs_secret_token_123"


def test_thin_push_resolved_through_a_mirror_fetched_on_demand(
    workspace: Workspace, git_server: GitHttpServer, tmp_path: Path
) -> None:
    big = "".join(f"row {i} of a file big enough to be sent as a delta\n" for i in range(2000))
    base = workspace.commit("big", {"big.txt": big, "other.txt": "o\n"})
    workspace.publish("main")
    tip = workspace.commit("tweak", {"big.txt": big.replace("row 7 ", "ROW 7 ")})
    req = parse_receive_pack(capture_push(workspace, git_server, "main"))
    mirror = GitMirror(tmp_path / "cache", git_server.url(workspace.bare), token=TOKEN, timeout=30)
    auth_before = len(git_server.log.authorization)

    item = analyse_push(req, mirror.source()).for_ref("refs/heads/main")

    assert [(c.sha, c.files) for c in item.new_commits] == [(tip, ("big.txt",))]
    assert item.force is False
    fetch_auth = git_server.log.authorization[auth_before:]
    assert fetch_auth and all(basic_token(h) == f"x-access-token:{TOKEN}" for h in fetch_auth)
    assert mirror.get_raw_local(base.encode())[0] == 1  # the mirror now holds the upstream's commit
    assert TOKEN not in repr(mirror)


def test_source_fetches_at_most_once(workspace: Workspace, git_server: GitHttpServer, tmp_path: Path) -> None:
    workspace.commit("first", {"a.txt": "a\n"})
    workspace.publish("main")
    mirror = GitMirror(tmp_path / "cache", git_server.url(workspace.bare))
    source = mirror.source()
    requests_before = len(git_server.log.authorization)

    with pytest.raises(KeyError):
        source.get_raw(b"1" * 40)
    after_first = len(git_server.log.authorization)
    with pytest.raises(KeyError):
        source.get_raw(b"2" * 40)

    assert after_first > requests_before
    assert len(git_server.log.authorization) == after_first


def test_ancestry_from_the_mirror(workspace: Workspace, git_server: GitHttpServer, tmp_path: Path) -> None:
    first = workspace.commit("first", {"a.txt": "a\n"})
    second = workspace.commit("second", {"a.txt": "b\n"})
    workspace.publish("main")
    mirror = GitMirror(tmp_path / "cache", git_server.url(workspace.bare))
    mirror.fetch()
    assert mirror.is_ancestor(first, second) is True
    assert mirror.is_ancestor(second, first) is False
    assert mirror.is_ancestor("3" * 40, second) is None


def test_failed_fetch_is_a_gitwireerror_without_the_token(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = GitMirror(tmp_path / "cache", f"http://127.0.0.1:{port}/nothing.git", token=TOKEN, timeout=30)
    with pytest.raises(GitWireError, match="git fetch failed") as info:
        mirror.source().get_raw(b"4" * 40)
    assert TOKEN not in info.value.reason


def test_unanswering_upstream_times_out(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        port = listener.getsockname()[1]
        mirror = GitMirror(tmp_path / "cache", f"http://127.0.0.1:{port}/slow.git", timeout=2)
        with pytest.raises(GitWireError, match="timed out"):
            mirror.fetch()
    finally:
        stop.set()
        holder.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_credentials_in_the_url_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token="):
        GitMirror(tmp_path, "https://user:pw@example.invalid/r.git")
