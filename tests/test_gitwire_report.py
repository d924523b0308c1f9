"""report-status: the refusal the real git client shows, and reading the upstream's answer."""
# ruff: noqa: F811 - pytest fixtures imported from tests.gitwire_fixtures are redefined as arguments

from __future__ import annotations

import pytest

from enact_proxy.gitwire import GitWireError, parse_receive_pack, parse_report_status, refusal_body
from enact_proxy.gitwire.pktline import encode_lines
from enact_proxy.gitwire.report import client_reads_report, sideband_wrap
from tests.gitwire_fixtures import (  # noqa: F401 - pytest fixtures
    GitHttpServer,
    Workspace,
    git,
    git_server,
    run_git,
    workspace,
)


def test_refusal_body_matches_the_wire_format() -> None:
    body = refusal_body(["refs/heads/main"], {"refs/heads/main": "<reason>"}, {"side-band-64k"})
    assert body == b"0037\x01000eunpack ok\n0020ng refs/heads/main <reason>\n00000000"
    plain = refusal_body(["refs/heads/main"], {"refs/heads/main": "<reason>"}, {"report-status"})
    assert plain == b"000eunpack ok\n0020ng refs/heads/main <reason>\n0000"


def test_reasons_are_flattened_to_one_line() -> None:
    body = refusal_body(["refs/heads/x"], {"refs/heads/x": "a\nb\r\n  c\0d"}, set())
    assert b"ng refs/heads/x a b c d\n" in body


def test_old_side_band_packets_stay_under_1000_bytes() -> None:
    wrapped = sideband_wrap(b"x" * 2500, {"side-band"})
    assert [wrapped[i : i + 4] for i in (0, 1000)] == [b"03e8", b"03e8"]
    assert wrapped.endswith(b"0000")


def test_client_reads_report() -> None:
    assert client_reads_report({"report-status-v2", "side-band-64k"})
    assert not client_reads_report({"side-band-64k", "ofs-delta"})


def _refuse_feature(body: bytes) -> bytes:
    req = parse_receive_pack(body)
    reasons = {"refs/heads/main": "Blocked by Enact: no_push_to_main: main is protected"}
    return refusal_body([c.ref for c in req.commands], reasons, req.capabilities)


@pytest.mark.parametrize("hide", [set(), {"side-band-64k", "side-band"}, {"report-status-v2"}])
def test_real_git_prints_remote_rejected_for_every_ref(
    workspace: Workspace, git_server: GitHttpServer, hide: set[str]
) -> None:
    workspace.commit("first", {"a.txt": "a\n"})
    workspace.publish("main")
    workspace.commit("second", {"b.txt": "b\n"})
    git(workspace.work, "branch", "agent/ok")
    git_server.refuse = _refuse_feature
    git_server.hide_capabilities = hide
    before = workspace.upstream_ref("refs/heads/main")

    done = run_git(workspace.work, "push", git_server.url(workspace.bare), "main", "agent/ok")

    assert done.returncode != 0
    assert "! [remote rejected] main -> main (Blocked by Enact: no_push_to_main: main is protected)" in done.stderr
    assert (
        "! [remote rejected] agent/ok -> agent/ok (Blocked by Enact: refused with the rest of this push)"
        in done.stderr
    )
    assert workspace.upstream_ref("refs/heads/main") == before
    assert workspace.upstream_ref("refs/heads/agent/ok") is None
    sent = parse_receive_pack(git_server.log.receive_pack_bodies[-1]).capabilities
    assert ("side-band-64k" in sent) == (not hide & {"side-band-64k"})


def test_upstream_report_is_read_per_ref(workspace: Workspace, git_server: GitHttpServer) -> None:
    base = workspace.commit("first", {"a.txt": "a\n"})
    workspace.publish("main")
    git(workspace.bare, "config", "receive.denyNonFastForwards", "true")
    workspace.commit("second", {"b.txt": "b\n"})
    git(workspace.work, "branch", "agent/ok")
    git(workspace.work, "branch", "-f", "rewind", base)
    workspace.publish("main:refs/heads/rewind-target")
    git(workspace.work, "commit", "--quiet", "--amend", "-m", "amended")

    done = run_git(
        workspace.work, "push", "--force", git_server.url(workspace.bare),
        "agent/ok", "HEAD:refs/heads/rewind-target",
    )

    assert done.returncode != 0
    report = parse_report_status(git_server.log.receive_pack_answers[-1])
    assert report["refs/heads/agent/ok"] == "ok"
    assert report["refs/heads/rewind-target"].startswith("ng ")
    assert workspace.upstream_ref("refs/heads/agent/ok") is not None


def test_upstream_report_without_side_band_and_with_errors() -> None:
    plain = encode_lines([b"unpack ok\n", b"ok refs/heads/a\n", b"ng refs/heads/b hook said no\n"])
    assert parse_report_status(plain) == {"refs/heads/a": "ok", "refs/heads/b": "ng hook said no"}
    unpack_failed = encode_lines([b"unpack index-pack abnormal exit\n", b"ok refs/heads/a\n"])
    assert parse_report_status(unpack_failed)["refs/heads/a"].startswith("ng unpack failed")
    with pytest.raises(GitWireError, match="upstream error: fatal"):
        parse_report_status(b"000b\x03fatal0000")
    with pytest.raises(GitWireError):
        parse_report_status(b"garbage")
