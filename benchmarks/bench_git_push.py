"""How long a 100-commit, 500-file ``git push`` takes through the sidecar versus straight to the upstream.

Runs the real ``git`` against the sandbox git server (``git http-backend``), once directly and once
through a real ``enact-proxy run`` (TLS interception, pack analysis against a cold mirror, policies,
receipts). Each run pushes a new ``agent/`` branch to a fresh repository. Prints medians.

    python benchmarks/bench_git_push.py [--runs 5] [--commits 100] [--files-per-commit 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enact_proxy.sandbox import SandboxGitServer  # noqa: E402
from tests.e2e.harness import ALL_POLICIES, start_sidecar, write_config  # noqa: E402

WORKFLOWS = {"agent_git": ["github.read", "github.create_branch", "github.push_commit"]}
BRANCH = "agent/bench"


def git_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and not k.lower().endswith("_proxy")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_AUTHOR_NAME="Agent", GIT_AUTHOR_EMAIL="agent@company.com", GIT_COMMITTER_NAME="Agent",
               GIT_COMMITTER_EMAIL="agent@company.com", LC_ALL="C")
    env.update(extra or {})
    return env


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def build_history(server: SandboxGitServer, work: Path, env: dict[str, str], commits: int, per_commit: int) -> None:
    server.create_repo("acme", "seed", files={"README.md": "seed\n"})
    git(work.parent, env, "clone", "--quiet", server.clone_url("acme", "seed"), str(work))
    git(work, env, "checkout", "--quiet", "-b", BRANCH)
    for c in range(commits):
        for f in range(per_commit):
            path = work / f"pkg{c:03d}" / f"module{f}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# commit {c} file {f}\nVALUE = {c * per_commit + f}\n" + "x = 1\n" * 20)
        git(work, env, "add", "-A")
        git(work, env, "commit", "--quiet", "-m", f"commit {c}")


def timed_push(server: SandboxGitServer, work: Path, env: dict[str, str], name: str, url: str) -> float:
    """Seed a fresh repository with the base commit (not timed), then time the push of the branch."""
    server.create_repo("acme", name, files={"README.md": "x\n"})
    base = git(work, env, "rev-parse", "origin/main")
    git(work, git_env(Path(env["HOME"])), "push", "--quiet", "--force", server.clone_url("acme", name),
        f"{base}:refs/heads/main")
    start = time.perf_counter()
    git(work, env, "push", "--quiet", url, BRANCH)
    elapsed = time.perf_counter() - start
    if server.refs("acme", name).get(f"refs/heads/{BRANCH}") != git(work, env, "rev-parse", BRANCH):
        raise RuntimeError(f"push to {name} did not land")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--files-per-commit", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with SandboxGitServer(root / "upstream") as server:
            home = root / "home"
            home.mkdir()
            plain = git_env(home)
            work = root / "work"
            build_history(server, work, plain, args.commits, args.files_per_commit)

            directory = root / "sidecar"
            directory.mkdir()
            write_config(directory, systems={"github": {"upstream": server.url, "git_upstream": server.url}},
                         workflows=WORKFLOWS, policies=ALL_POLICIES)
            sidecar = start_sidecar(directory)
            try:
                proxied = git_env(home, {k: v for k, v in sidecar.agent_env().items()
                                         if k.lower().endswith("_proxy") or k == "GIT_SSL_CAINFO"})
                direct, through = [], []
                for i in range(args.runs):
                    direct.append(timed_push(server, work, plain, f"direct{i}", server.clone_url("acme", f"direct{i}")))
                    through.append(timed_push(server, work, proxied, f"enact{i}",
                                              f"https://github.com/acme/enact{i}.git"))
                receipts = [r for r in sidecar.receipts() if r["action"] == "github.push_commit"]
            finally:
                sidecar.stop()

    files = args.commits * args.files_per_commit
    passed = sum(1 for r in receipts if r["decision"] == "PASS")
    d, t = statistics.median(direct), statistics.median(through)
    print(f"push of {args.commits} commits / {files} files, {args.runs} runs each (median):")
    print(f"  direct          {d * 1000:8.1f} ms   runs: {', '.join(f'{x * 1000:.0f}' for x in direct)}")
    print(f"  through Enact   {t * 1000:8.1f} ms   runs: {', '.join(f'{x * 1000:.0f}' for x in through)}")
    print(f"  spent in Enact  {(t - d) * 1000:8.1f} ms  ({t / d:.2f}x)")
    print(f"  push_commit receipts: {len(receipts)} ({passed} PASS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
