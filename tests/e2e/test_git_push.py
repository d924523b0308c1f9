"""The real ``git`` through a real ``enact-proxy run`` to the sandbox git server (``git http-backend``).

Ground truth is the bare repository's refs after each push; git's exit code and its
``[remote rejected]`` lines are what the agent sees; the receipts say what was judged.
One sidecar and one upstream serve the whole module; each test uses its own branch names.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.sandbox import SandboxGitServer
from tests.e2e.harness import ALL_POLICIES, RunningSidecar, start_sidecar, wait_until, write_config

AGENT_URL = "https://github.com/acme/app.git"
WORKFLOWS = {"agent_git": ["github.read", "github.create_branch", "github.push_commit", "github.delete_branch"]}


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxGitServer]:
    with SandboxGitServer(tmp_path_factory.mktemp("git-upstream")) as server:
        server.create_repo("acme", "app", files={"README.md": "hello\n"})
        yield server


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, git_server: SandboxGitServer) -> Iterator[RunningSidecar]:
    directory = tmp_path_factory.mktemp("sidecar")
    write_config(directory, systems={"github": {"upstream": git_server.url, "git_upstream": git_server.url}},
                 workflows=WORKFLOWS, policies=ALL_POLICIES)
    running = start_sidecar(directory)
    yield running
    running.stop()


class Agent:
    """A working copy cloned through the sidecar, with git run as an unchanged agent would run it."""

    def __init__(self, work: Path, env: dict[str, str]):
        self.work = work
        self.env = env

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev).stdout.strip()

    def push(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.git("push", "origin", *args, check=False)


def agent_env(sidecar: RunningSidecar, home: Path) -> dict[str, str]:
    env = {k: v for k, v in sidecar.agent_env().items() if not k.startswith("GIT_") or k == "GIT_SSL_CAINFO"}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_AUTHOR_NAME="Agent", GIT_AUTHOR_EMAIL="agent@company.com",
               GIT_COMMITTER_NAME="Agent", GIT_COMMITTER_EMAIL="agent@company.com", LC_ALL="C")
    return env


@pytest.fixture
def clone(sidecar: RunningSidecar, tmp_path: Path) -> Callable[..., Agent]:
    def make(url: str = AGENT_URL, name: str = "work") -> Agent:
        env = agent_env(sidecar, tmp_path)
        done = subprocess.run(["git", "clone", "--quiet", url, str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return Agent(tmp_path / name, env)

    return make


def receipt_ids(sidecar: RunningSidecar) -> set[str]:
    return {r["run_id"] for r in sidecar.receipts()}


def push_receipts(sidecar: RunningSidecar, before: set[str], count: int) -> list[dict[str, Any]]:
    """The receipts of receive-pack requests written since ``before`` (waits for ``count`` finished ones)."""

    def found() -> list[dict[str, Any]]:
        fresh = [r for r in sidecar.receipts() if r["run_id"] not in before
                 and (r.get("request") or {}).get("path", "").endswith("/git-receive-pack")
                 and not r["payload"].get("probe")]
        return [r for r in fresh if r["decision"] == "BLOCK" or r["actions_taken"]]

    wait_until(lambda: len(found()) >= count, what=f"{count} push receipts")
    receipts = found()
    assert len(receipts) == count, [(r["action"], r["decision"]) for r in receipts]
    return receipts


def by_action(receipts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["action"]: r for r in receipts}


def rejected_line(stderr: str, ref: str) -> str:
    # ``src -> ref (reason)`` for updates, ``ref (reason)`` for deletions.
    lines = [line for line in stderr.splitlines()
             if "[remote rejected]" in line and (f"-> {ref} (" in line or f"] {ref} (" in line)]
    assert len(lines) == 1, stderr
    return lines[0]


# --- reads -------------------------------------------------------------------------------------------


def test_clone_and_fetch_are_reads_and_pass(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                            git_server: SandboxGitServer) -> None:
    before = receipt_ids(sidecar)
    agent = clone()
    assert agent.head("origin/main") == git_server.refs("acme", "app")["refs/heads/main"]
    agent.git("fetch", "--quiet", "origin")
    fresh = [r for r in sidecar.receipts() if r["run_id"] not in before]
    paths = {r["request"]["path"] for r in fresh}
    assert "/acme/app.git/git-upload-pack" in paths
    assert {r["action"] for r in fresh} == {"github.read"}
    assert {r["decision"] for r in fresh} == {"PASS"}


# --- allowed pushes ----------------------------------------------------------------------------------


def test_allowed_agent_branch_push_reaches_upstream(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                   git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/feature")
    tip = agent.commit("add two files", {"src/a.py": "a = 1\n", "src/b.py": "b = 2\n"})
    before = receipt_ids(sidecar)

    done = agent.push("agent/feature")

    assert done.returncode == 0, done.stderr
    assert git_server.refs("acme", "app")["refs/heads/agent/feature"] == tip
    receipts = by_action(push_receipts(sidecar, before, 2))
    assert set(receipts) == {"github.create_branch", "github.push_commit"}
    push = receipts["github.push_commit"]
    assert push["decision"] == "PASS"
    assert push["payload"]["branch"] == "agent/feature" and push["payload"]["force"] is False
    assert sorted(push["payload"]["files"]) == ["src/a.py", "src/b.py"]
    assert [c["sha"] for c in push["payload"]["commits"]] == [tip]
    taken = push["actions_taken"][0]
    assert taken["success"] is True
    assert taken["output"]["refs"] == {"refs/heads/agent/feature": "ok"}


def test_update_of_agent_branch_counts_only_new_commits(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                       git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/update")
    agent.commit("first", {"one.txt": "1\n"})
    assert agent.push("agent/update").returncode == 0
    second = agent.commit("second", {"two.txt": "2\n", "three.txt": "3\n"})
    before = receipt_ids(sidecar)

    done = agent.push("agent/update")

    assert done.returncode == 0, done.stderr
    assert git_server.refs("acme", "app")["refs/heads/agent/update"] == second
    (push,) = push_receipts(sidecar, before, 1)
    assert push["action"] == "github.push_commit" and push["decision"] == "PASS"
    assert [c["sha"] for c in push["payload"]["commits"]] == [second]
    assert sorted(push["payload"]["files"]) == ["three.txt", "two.txt"]


def test_new_branch_based_on_another_agent_branch(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                  git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/base")
    agent.commit("base work", {f"base/f{i}.txt": f"{i}\n" for i in range(15)})
    assert agent.push("agent/base").returncode == 0
    agent.git("checkout", "--quiet", "-b", "agent/derived")
    derived = agent.commit("derived work", {"derived.txt": "d\n"})
    before = receipt_ids(sidecar)

    done = agent.push("agent/derived")

    assert done.returncode == 0, done.stderr
    assert git_server.refs("acme", "app")["refs/heads/agent/derived"] == derived
    push = by_action(push_receipts(sidecar, before, 2))["github.push_commit"]
    # Only the commit the upstream lacks is judged, not the base branch's commit.
    assert [c["sha"] for c in push["payload"]["commits"]] == [derived]
    assert push["payload"]["files"] == ["derived.txt"]


def test_repository_url_without_git_suffix(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                           git_server: SandboxGitServer) -> None:
    agent = clone("https://github.com/acme/app", name="nosuffix")
    agent.git("checkout", "--quiet", "-b", "agent/nosuffix")
    tip = agent.commit("one file", {"x.txt": "x\n"})
    before = receipt_ids(sidecar)

    done = agent.push("agent/nosuffix")

    assert done.returncode == 0, done.stderr
    assert git_server.refs("acme", "app")["refs/heads/agent/nosuffix"] == tip
    push = by_action(push_receipts(sidecar, before, 2))["github.push_commit"]
    assert push["payload"]["repo"] == "app" and push["request"]["path"] == "/acme/app/git-receive-pack"


@pytest.mark.parametrize("http_version", ["HTTP/2", "HTTP/1.1"])
def test_chunked_large_push_passes_after_probe(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                               git_server: SandboxGitServer, http_version: str) -> None:
    agent = clone()
    agent.git("config", "http.postBuffer", "1024")
    agent.git("config", "http.version", http_version)
    branch = f"agent/chunked-{http_version[5:]}"
    agent.git("checkout", "--quiet", "-b", branch)
    tip = agent.commit("bulky", {"blob.bin": os.urandom(48 * 1024).hex()})
    before = receipt_ids(sidecar)

    done = agent.push(branch)

    assert done.returncode == 0, done.stderr
    assert git_server.refs("acme", "app")[f"refs/heads/{branch}"] == tip
    push = by_action(push_receipts(sidecar, before, 2))["github.push_commit"]
    assert push["payload"]["files"] == ["blob.bin"]
    probes = [r for r in sidecar.receipts() if r["run_id"] not in before and r["payload"].get("probe")]
    assert [(p["action"], p["decision"]) for p in probes] == [("github.read", "PASS")]


# --- refused pushes ----------------------------------------------------------------------------------


def test_push_to_main_is_rejected_and_never_reaches_upstream(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                             git_server: SandboxGitServer) -> None:
    agent = clone()
    main_before = git_server.refs("acme", "app")["refs/heads/main"]
    agent.commit("straight to main", {"hotfix.txt": "fix\n"})
    before = receipt_ids(sidecar)

    done = agent.push("HEAD:main")

    assert done.returncode != 0
    line = rejected_line(done.stderr, "main")
    assert "(Blocked by Enact: no_push_to_main: push to refs/heads/main is forbidden" in line
    assert git_server.refs("acme", "app")["refs/heads/main"] == main_before
    (push,) = push_receipts(sidecar, before, 1)
    assert push["action"] == "github.push_commit" and push["decision"] == "BLOCK"
    assert push["payload"]["files"] == ["hotfix.txt"]
    assert push["actions_taken"] == []


def test_push_creating_capitalised_main_is_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                    git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.commit("sneaky", {"sneaky.txt": "s\n"})
    before = receipt_ids(sidecar)

    done = agent.push("HEAD:refs/heads/Main")

    assert done.returncode != 0
    assert "Blocked by Enact: no_push_to_main: push to refs/heads/Main is forbidden" in rejected_line(done.stderr,
                                                                                                     "Main")
    assert "refs/heads/Main" not in git_server.refs("acme", "app")
    receipts = by_action(push_receipts(sidecar, before, 2))
    assert {r["decision"] for r in receipts.values()} == {"BLOCK"}
    assert receipts["github.create_branch"]["payload"]["branch"] == "Main"


def test_delete_of_main_is_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                    git_server: SandboxGitServer) -> None:
    agent = clone()
    main_before = git_server.refs("acme", "app")["refs/heads/main"]
    before = receipt_ids(sidecar)

    done = agent.push("--delete", "main")

    assert done.returncode != 0
    assert "Blocked by Enact: no_push_to_main: delete of refs/heads/main is forbidden" in rejected_line(
        done.stderr, "main")
    assert git_server.refs("acme", "app")["refs/heads/main"] == main_before
    (delete,) = push_receipts(sidecar, before, 1)
    assert (delete["action"], delete["decision"]) == ("github.delete_branch", "BLOCK")


def test_force_push_is_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/force")
    first = agent.commit("first", {"f.txt": "1\n"})
    assert agent.push("agent/force").returncode == 0
    agent.git("commit", "--quiet", "--amend", "-m", "rewritten")
    before = receipt_ids(sidecar)

    done = agent.push("--force", "agent/force")

    assert done.returncode != 0
    assert "Blocked by Enact: no_push_to_main: force-push to refs/heads/agent/force is forbidden" in rejected_line(
        done.stderr, "agent/force")
    assert git_server.refs("acme", "app")["refs/heads/agent/force"] == first
    (push,) = push_receipts(sidecar, before, 1)
    assert push["decision"] == "BLOCK" and push["payload"]["force"] is True


def test_allowed_and_forbidden_refs_together_forward_nothing(sidecar: RunningSidecar,
                                                             clone: Callable[..., Agent],
                                                             git_server: SandboxGitServer) -> None:
    agent = clone()
    refs_before = git_server.refs("acme", "app")
    agent.commit("both ways", {"both.txt": "b\n"})
    before = receipt_ids(sidecar)

    done = agent.push("HEAD:refs/heads/agent/mixed", "HEAD:main")

    assert done.returncode != 0
    assert "(Blocked by Enact: no_push_to_main: push to refs/heads/main is forbidden" in rejected_line(
        done.stderr, "main")
    collateral = rejected_line(done.stderr, "agent/mixed")
    assert "(Blocked by Enact: refused with the rest of this request" in collateral
    assert git_server.refs("acme", "app") == refs_before
    receipts = push_receipts(sidecar, before, 3)
    assert {r["decision"] for r in receipts} == {"BLOCK"}
    assert sorted((r["action"], r["payload"]["branch"]) for r in receipts) == [
        ("github.create_branch", "agent/mixed"), ("github.push_commit", "agent/mixed"),
        ("github.push_commit", "main")]


def test_commit_of_25_files_is_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                        git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/big")
    big = agent.commit("25 files", {f"big/f{i}.txt": f"{i}\n" for i in range(25)})
    before = receipt_ids(sidecar)

    done = agent.push("agent/big")

    assert done.returncode != 0
    assert f"Blocked by Enact: max_files_per_commit: commit {big[:12]} changes 25 files (max 20)" in rejected_line(
        done.stderr, "agent/big")
    assert "refs/heads/agent/big" not in git_server.refs("acme", "app")
    push = by_action(push_receipts(sidecar, before, 2))["github.push_commit"]
    assert push["decision"] == "BLOCK"
    assert len(push["payload"]["files"]) == 25 and len(push["payload"]["commits"][0]["files"]) == 25


def test_small_commits_around_a_large_one_are_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                       git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("checkout", "--quiet", "-b", "agent/series")
    agent.commit("small 1", {"s1.txt": "1\n"})
    middle = agent.commit("large", {f"series/f{i}.txt": f"{i}\n" for i in range(21)})
    agent.commit("small 2", {"s2.txt": "2\n"})
    before = receipt_ids(sidecar)

    done = agent.push("agent/series")

    assert done.returncode != 0
    assert f"max_files_per_commit: commit {middle[:12]} changes 21 files (max 20)" in rejected_line(
        done.stderr, "agent/series")
    assert "refs/heads/agent/series" not in git_server.refs("acme", "app")
    push = by_action(push_receipts(sidecar, before, 2))["github.push_commit"]
    assert [len(c["files"]) for c in push["payload"]["commits"]] == [1, 21, 1]


def test_chunked_large_push_to_main_is_rejected(sidecar: RunningSidecar, clone: Callable[..., Agent],
                                                git_server: SandboxGitServer) -> None:
    agent = clone()
    agent.git("config", "http.postBuffer", "1024")
    main_before = git_server.refs("acme", "app")["refs/heads/main"]
    agent.commit("bulky to main", {"bulk.bin": os.urandom(48 * 1024).hex()})

    done = agent.push("HEAD:main")

    assert done.returncode != 0
    assert "Blocked by Enact: no_push_to_main" in rejected_line(done.stderr, "main")
    assert git_server.refs("acme", "app")["refs/heads/main"] == main_before
