"""The GitHub wire's git push hooks: recognising pushes against a mirror, refusing per ref, the outcome."""

# ruff: noqa: F811 - pytest fixtures imported from tests.gitwire_fixtures are redefined as arguments
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import HttpCall, Refusal
from connectors.github import Config, Wire
from enact_proxy.engine import Verdict
from enact_proxy.gitpush import GitPush, Mirrors, attach, reasons_by_ref, refs_of_action
from enact_proxy.gitwire import RESULT_CONTENT_TYPE, parse_report_status
from enact_proxy.gitwire.pktline import encode_lines
from enact_proxy.gitwire.report import sideband_wrap
from enact_proxy.models import ActionRequest, Decision
from tests.gitwire_fixtures import (  # noqa: F401 - pytest fixtures
    GitHttpServer,
    Workspace,
    basic_token,
    capture_push,
    git,
    git_env,
    git_server,
    workspace,
)

PATH = "/srv/repo.git/git-receive-pack"
CAPS = "report-status side-band-64k quiet object-format=sha1 agent=git/2.39.5"
Z = "0" * 40
A, B = "a" * 40, "b" * 40


def call_with(body: bytes, path: str = PATH, headers: dict[str, str] | None = None) -> HttpCall:
    return HttpCall(method="POST", host="github.com", path=path, raw_path=path, headers=headers or {}, body=body)


def commands_body(*commands: tuple[str, str, str], caps: str = CAPS, pack: bytes = b"PACK") -> bytes:
    """A receive-pack body; the default stand-in pack is enough for parsing (refusals never unpack it)."""
    lines = [f"{old} {new} {ref}".encode() for old, new, ref in commands]
    lines[0] += b"\0" + caps.encode()
    return encode_lines(lines) + pack


def verdict(action: ActionRequest, decision: Decision, reason: str) -> Verdict:
    return Verdict(run_id="r", timestamp=datetime.now(UTC), action=action, workflow="agent_git",
                   decision=decision, reason=reason, mode="enforce")


def action(name: str, **payload: object) -> ActionRequest:
    return ActionRequest(system="github", action=name, payload={"owner": "acme", "repo": "app", **payload})


@pytest.fixture
def upstream(workspace: Workspace) -> Iterator[GitHttpServer]:
    # Served from the workspace root, so the bare repository is ``/srv/repo.git`` (owner srv, repo repo).
    server = GitHttpServer(workspace.root)
    yield server
    server.close()


def hooks(server: GitHttpServer, tmp_path: Path, token: str | None = "upstream-token") -> GitPush:
    return GitPush(Mirrors(tmp_path / "cache", f"http://127.0.0.1:{server.port}"), token_for=lambda call: token)


def pushed_body(ws: Workspace, server: GitHttpServer, *args: str) -> bytes:
    body = capture_push(ws, server, *args)
    server.refuse = None
    return body


# --- recognising -------------------------------------------------------------------------------------


def test_probe_is_a_read_of_the_repository(upstream: GitHttpServer, tmp_path: Path) -> None:
    (found,) = hooks(upstream, tmp_path).recognise(call_with(b"0000"), "srv", "repo")
    assert (found.action, found.payload["probe"], found.payload["repo"]) == ("read", True, "repo")


def test_thin_push_judged_against_the_mirror_fetched_with_the_configured_token(
        workspace: Workspace, upstream: GitHttpServer, tmp_path: Path) -> None:
    workspace.commit("base", {"a.txt": "1\n", "b.txt": "2\n"})
    workspace.publish("main")
    tip = workspace.commit("change", {"a.txt": "changed\n", "c.txt": "new\n"})
    body = pushed_body(workspace, upstream, "HEAD:refs/heads/agent/x", "HEAD:refs/heads/main")
    upstream.log.authorization.clear()

    actions = hooks(upstream, tmp_path).recognise(call_with(body), "srv", "repo")

    assert sorted((a.action, a.payload["branch"]) for a in actions) == [
        ("create_branch", "agent/x"), ("push_commit", "agent/x"), ("push_commit", "main")]
    pushes = [a for a in actions if a.action == "push_commit"]
    for push in pushes:
        assert push.payload["commits"] == [{"sha": tip, "files": ["a.txt", "c.txt"], "renames": []}]
        assert push.payload["force"] is False
    # The mirror fetched what the thin pack lacks, through its own connection, with the sidecar's token.
    assert upstream.log.authorization and {basic_token(h) for h in upstream.log.authorization} == {
        "x-access-token:upstream-token"}


def test_non_fast_forward_is_forced(workspace: Workspace, upstream: GitHttpServer, tmp_path: Path) -> None:
    workspace.commit("base", {"a.txt": "1\n"})
    workspace.commit("second", {"a.txt": "2\n"})
    workspace.publish("main")
    git(workspace.work, "reset", "--quiet", "--hard", "HEAD~1")
    workspace.commit("other", {"b.txt": "x\n"})
    body = pushed_body(workspace, upstream, "--force", "HEAD:refs/heads/main")

    (push,) = hooks(upstream, tmp_path).recognise(call_with(body), "srv", "repo")

    assert push.action == "push_commit" and push.payload["force"] is True


def test_unreadable_push_is_refused_as_unknown(upstream: GitHttpServer, tmp_path: Path) -> None:
    with pytest.raises(Refusal) as caught:
        hooks(upstream, tmp_path).recognise(call_with(b"0032garbage"), "srv", "repo")
    assert caught.value.reason.startswith("git push could not be read: ")
    assert caught.value.action is not None and caught.value.action.action == "unknown"


def test_push_that_cannot_be_counted_is_refused_naming_every_ref(tmp_path: Path) -> None:
    work = tmp_path / "w"
    git(tmp_path, "init", "--quiet", "-b", "main", str(work))
    (work / "f.txt").write_text("x\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "c")
    parent = git(work, "rev-parse", "HEAD")
    # A thin pack: its commit's parent only the (unreachable) upstream could supply.
    tip, pack = _pack_on_top_of(work, parent)
    body = commands_body((parent, tip, "refs/heads/agent/x"), (B, Z, "refs/heads/old"), pack=pack)
    push = GitPush(Mirrors(tmp_path / "cache", "http://127.0.0.1:9"), token_for=lambda call: None)

    with pytest.raises(Refusal) as caught:
        push.recognise(call_with(body), "acme", "app")

    assert caught.value.reason.startswith("git push could not be judged: ")
    unjudged = caught.value.action
    assert unjudged is not None and unjudged.action == "push_commit"
    assert refs_of_action(unjudged) == ["refs/heads/agent/x", "refs/heads/old"]


def _pack_on_top_of(work: Path, parent: str) -> tuple[str, bytes]:
    (work / "g.txt").write_text("y\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "d")
    tip = git(work, "rev-parse", "HEAD")
    done = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "--thin"], cwd=work, env=git_env(),
                          input=f"{tip}\n^{parent}\n".encode(), capture_output=True, check=True)
    return tip, done.stdout


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bodies_are_refused_never_crash(tmp_path: Path, body: bytes) -> None:
    push = GitPush(Mirrors(tmp_path / "cache", "http://127.0.0.1:9"), token_for=lambda call: None)
    try:
        actions = push.recognise(call_with(body), "acme", "app")
    except Refusal:
        return
    assert body == b"0000" and actions[0].payload["probe"] is True


# --- refusing ----------------------------------------------------------------------------------------


def test_each_ref_names_its_own_reason_and_the_collateral_ref_says_why() -> None:
    body = commands_body((Z, A, "refs/heads/agent/ok"), (A, B, "refs/heads/main"))
    collateral = "refused with the rest of this request (github.push_commit was refused: no_push_to_main: no)"
    verdicts = [
        verdict(action("create_branch", branch="agent/ok", sha=A), Decision.BLOCK, collateral),
        verdict(action("push_commit", branch="agent/ok"), Decision.BLOCK, collateral),
        verdict(action("push_commit", branch="main"), Decision.BLOCK, "no_push_to_main: push to main"),
    ]
    answer = GitPush(Mirrors("/nonexistent", "http://x"), token_for=lambda c: None).refuse_verdicts(
        call_with(body), verdicts, 403)

    assert answer.status == 200 and answer.headers["content-type"] == RESULT_CONTENT_TYPE
    assert answer.body.startswith(b"0") and answer.body[4:5] == b"\x01"  # side-band wrapped as asked
    assert parse_report_status(answer.body) == {
        "refs/heads/agent/ok": f"ng Blocked by Enact: {collateral}",
        "refs/heads/main": "ng Blocked by Enact: no_push_to_main: push to main",
    }


def test_own_reasons_win_over_collateral_ones_on_one_ref() -> None:
    verdicts = [
        verdict(action("create_branch", branch="agent/big"), Decision.BLOCK, "refused with the rest of this request"),
        verdict(action("push_commit", branch="agent/big"), Decision.BLOCK, "max_files_per_commit: 25 files"),
        verdict(action("push_tag", tag="v1"), Decision.PASS, "allowed"),
    ]
    assert reasons_by_ref(["refs/heads/agent/big", "refs/tags/v1"], verdicts) == {
        "refs/heads/agent/big": "Blocked by Enact: max_files_per_commit: 25 files"}


def test_message_refuser_reports_every_ref_without_side_band() -> None:
    body = commands_body((Z, A, "refs/heads/a"), (A, Z, "refs/heads/b"), caps="report-status")
    answer = GitPush(Mirrors("/nonexistent", "http://x"), token_for=lambda c: None).refuse(
        call_with(body), "Blocked by Enact: nope", 403)
    assert answer.body[4:10] == b"unpack"
    assert parse_report_status(answer.body) == {"refs/heads/a": "ng Blocked by Enact: nope",
                                                 "refs/heads/b": "ng Blocked by Enact: nope"}


def test_client_without_report_status_gets_an_http_error() -> None:
    body = commands_body((Z, A, "refs/heads/a"), caps="side-band-64k")
    answer = GitPush(Mirrors("/nonexistent", "http://x"), token_for=lambda c: None).refuse(
        call_with(body), "Blocked by Enact: nope", 403)
    assert answer.status == 403 and answer.body == b"Blocked by Enact: nope\n"


def test_unparseable_push_is_answered_as_a_failed_unpack() -> None:
    body = encode_lines([f"{Z} {A} not-a-ref\0{CAPS}".encode()])
    answer = GitPush(Mirrors("/nonexistent", "http://x"), token_for=lambda c: None).refuse(
        call_with(body), "Blocked by Enact: git push could not be read", 403)
    assert answer.status == 200
    assert answer.body == sideband_wrap(encode_lines([b"unpack Blocked by Enact: git push could not be read\n"]),
                                        ["side-band-64k"])


# --- the outcome -------------------------------------------------------------------------------------


def test_outcome_reads_the_upstream_report() -> None:
    push = GitPush(Mirrors("/nonexistent", "http://x"), token_for=lambda c: None)
    body = commands_body((Z, A, "refs/heads/a"), (A, B, "refs/heads/b"))
    report = sideband_wrap(encode_lines([b"unpack ok\n", b"ok refs/heads/a\n", b"ng refs/heads/b hook declined\n"]),
                           ["side-band-64k"])
    assert push.outcome(call_with(body), 200, report) == {
        "refs": {"refs/heads/a": "ok", "refs/heads/b": "ng hook declined"}, "success": False}
    all_ok = encode_lines([b"unpack ok\n", b"ok refs/heads/a\n", b"ok refs/heads/b\n"])
    assert push.outcome(call_with(body), 200, all_ok)["success"] is True
    assert push.outcome(call_with(body), 200, b"")["success"] is False
    assert push.outcome(call_with(b"0000"), 200, b"") == {"probe": True}


# --- attaching to the GitHub wire ---------------------------------------------------------------------


def test_attach_installs_hooks_that_leave_rest_calls_alone(tmp_path: Path) -> None:
    wire = Wire(Config(upstream="http://127.0.0.1:9", git_upstream="http://127.0.0.1:9", token_env="GH_TOKEN"),
                {"GH_TOKEN": "secret-token"})
    push = attach(wire, cache_dir=tmp_path, environ={})
    hooked: Any = wire  # refuse_verdicts and outcome are set on the instance

    git_call = call_with(commands_body((Z, A, "refs/heads/main")), path="/acme/app.git/git-receive-pack")
    assert wire.recognise(call_with(b"0000", path="/acme/app/git-receive-pack"))[0].payload["probe"] is True
    refused = [verdict(action("create_branch", branch="main"), Decision.BLOCK, "no_push_to_main: no")]
    assert parse_report_status(hooked.refuse_verdicts(git_call, refused, 403).body) == {
        "refs/heads/main": "ng Blocked by Enact: no_push_to_main: no"}

    rest_call = HttpCall(method="POST", host="api.github.com", path="/repos/acme/app/issues")
    answer = hooked.refuse_verdicts(rest_call, refused, 403)
    assert answer.status == 403
    assert json.loads(answer.body)["message"] == "Blocked by Enact: no_push_to_main: no"
    assert hooked.outcome(rest_call, 201, b"{}") is None
    assert push.mirrors.get("acme", "app", wire.git_token_for(git_call)).upstream_url == (
        "http://127.0.0.1:9/acme/app.git")
    assert "secret-token" not in repr(push.mirrors.get("acme", "app", "secret-token"))
