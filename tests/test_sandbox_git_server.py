"""The sandbox git smart-HTTP server, driven by the real git CLI; ground truth is the bare repo's refs."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from enact_proxy.sandbox.git_server import SandboxGitServer

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True).returncode != 0, reason="git CLI not available"
)


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Agent",
        "GIT_AUTHOR_EMAIL": "agent@example.com",
        "GIT_COMMITTER_NAME": "Agent",
        "GIT_COMMITTER_EMAIL": "agent@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxGitServer]:
    with SandboxGitServer(tmp_path / "repos") as git_server:
        git_server.create_repo("acme", "widgets")
        yield git_server


def _clone(server: SandboxGitServer, tmp_path: Path, url: str | None = None) -> Path:
    work = tmp_path / "work"
    _git(tmp_path, "clone", "--quiet", url or server.clone_url("acme", "widgets"), str(work))
    return work


def _commit(work: Path, name: str, content: str = "x\n") -> str:
    (work / name).write_text(content)
    _git(work, "add", name)
    _git(work, "commit", "--quiet", "-m", f"add {name}")
    return _git(work, "rev-parse", "HEAD").stdout.strip()


def test_create_repo_makes_a_bare_repo_with_an_initial_commit_on_main(server):
    refs = server.refs("acme", "widgets")
    assert list(refs) == ["refs/heads/main"]
    assert server.rev_parse("acme", "widgets", "main") == refs["refs/heads/main"]
    assert server.rev_parse("acme", "widgets", "nope") is None
    assert server.repo_path("acme", "widgets").name == "widgets.git"


def test_clone_commit_and_push_a_new_branch_and_main(server, tmp_path):
    work = _clone(server, tmp_path)
    assert (work / "README.md").read_text() == "# widgets\n"
    _git(work, "checkout", "--quiet", "-b", "agent/feature")
    feature = _commit(work, "feature.txt")
    _git(work, "push", "--quiet", "origin", "agent/feature")
    assert server.rev_parse("acme", "widgets", "refs/heads/agent/feature") == feature

    _git(work, "checkout", "--quiet", "main")
    tip = _commit(work, "main.txt")
    _git(work, "push", "--quiet", "origin", "main")
    assert server.rev_parse("acme", "widgets", "main") == tip

    methods_and_paths = [(r.method, r.path.split("?")[0]) for r in server.received]
    assert ("POST", "/acme/widgets.git/git-receive-pack") in methods_and_paths
    receive = [r for r in server.received if r.path.endswith("git-receive-pack") and r.method == "POST"]
    assert receive[-1].body.find(b"refs/heads/main") != -1


def test_url_without_git_suffix_and_in_another_case(server, tmp_path):
    work = _clone(server, tmp_path, f"{server.url}/ACME/Widgets")
    _git(work, "checkout", "--quiet", "-b", "topic")
    tip = _commit(work, "t.txt")
    _git(work, "push", "--quiet", "origin", "topic")
    assert server.refs("acme", "widgets")["refs/heads/topic"] == tip


def test_large_push_goes_chunked_and_delete_works(server, tmp_path):
    work = _clone(server, tmp_path)
    _git(work, "config", "http.postBuffer", "1024")  # forces git's probe + chunked upload
    _git(work, "checkout", "--quiet", "-b", "big")
    tip = _commit(work, "big.bin", os.urandom(200_000).hex())
    _git(work, "push", "--quiet", "origin", "big")
    assert server.rev_parse("acme", "widgets", "big") == tip
    chunked = [r for r in server.received if r.headers.get("transfer-encoding", "").lower() == "chunked"]
    assert chunked, "git should have sent a chunked body"
    _git(work, "push", "--quiet", "origin", "--delete", "big")
    assert "refs/heads/big" not in server.refs("acme", "widgets")


def test_unknown_repo_is_404_and_push_fails(server, tmp_path):
    assert requests.get(f"{server.url}/acme/ghost.git/info/refs?service=git-upload-pack").status_code == 404
    result = _git(tmp_path, "clone", f"{server.url}/acme/ghost.git", str(tmp_path / "ghost"), check=False)
    assert result.returncode != 0


def test_token_is_required_when_configured(tmp_path):
    with SandboxGitServer(tmp_path / "repos", token="s3cret") as server:
        server.create_repo("acme", "widgets")
        url = f"{server.url}/acme/widgets.git/info/refs?service=git-upload-pack"
        assert requests.get(url).status_code == 401
        basic = base64.b64encode(b"x-access-token:s3cret").decode()
        ok = requests.get(url, headers={"Authorization": f"Basic {basic}"})
        assert ok.status_code == 200
        assert ok.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
        result = _git(
            tmp_path,
            "clone",
            f"http://x-access-token:s3cret@127.0.0.1:{server.port}/acme/widgets",
            str(tmp_path / "authed"),
        )
        assert result.returncode == 0
        assert server.received[-1].headers["Authorization"] == f"Basic {basic}"


def test_gzip_request_body_is_passed_through_to_http_backend(server):
    import gzip

    tip = server.rev_parse("acme", "widgets", "main")
    want = f"want {tip}\n".encode()
    body = b"%04x" % (len(want) + 4) + want + b"0000" + b"0009done\n"
    response = requests.post(
        f"{server.url}/acme/widgets.git/git-upload-pack",
        data=gzip.compress(body),
        headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert b"PACK" in response.content
    assert server.received[-1].body[:2] == b"\x1f\x8b"  # arrived still compressed
