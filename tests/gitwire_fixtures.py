"""Real git repositories and a tiny loopback smart-HTTP git server for the gitwire tests.

The server answers ``info/refs`` and both services with the real ``git upload-pack`` /
``git receive-pack --stateless-rpc``. Every receive-pack body is recorded (de-chunked and
decoded); ``refuse`` makes it answer with a given body instead of applying the push.
"""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dulwich.objects import ObjectID, hex_to_sha
from dulwich.repo import Repo

from enact_proxy.gitwire.pktline import FLUSH, PktReader, pkt_line

GIT_ENV_DROP = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in GIT_ENV_DROP}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Agent",
        GIT_AUTHOR_EMAIL="agent@company.com",
        GIT_COMMITTER_NAME="Agent",
        GIT_COMMITTER_EMAIL="agent@company.com",
    )
    return env


def git(cwd: Path, *args: str, check: bool = True, input: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, input=input, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout.decode().strip()


def run_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=False, timeout=60
    )


class Workspace:
    """A bare 'upstream' repository and a clone to commit in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "srv" / "repo.git"
        self.bare.parent.mkdir(parents=True)
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.bare))
        git(self.bare, "config", "receive.advertisePushOptions", "true")
        self.work = root / "work"
        git(root, "init", "--quiet", "-b", "main", str(self.work))
        self._counter = 0

    def write(self, path: str, text: str, mode: int | None = None) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if mode is not None:
            target.chmod(mode)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for path, text in (files or {}).items():
            self.write(path, text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def files_commit(self, message: str, count: int, prefix: str) -> str:
        self._counter += 1
        return self.commit(message, {f"{prefix}/f{i}.txt": f"{prefix} {i} v{self._counter}\n" for i in range(count)})

    def head(self, rev: str = "HEAD") -> str:
        return git(self.work, "rev-parse", rev)

    def publish(self, *refspecs: str) -> None:
        """Push directly into the bare repository (set-up, not under test)."""
        git(self.work, "push", "--quiet", "--force", str(self.bare), *refspecs)

    def upstream_ref(self, ref: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", ref],
            cwd=self.bare, env=git_env(), capture_output=True, text=True, check=False,
        )
        return done.stdout.strip() or None


class RepoSource:
    """ObjectSource over a bare repository on disk (the upstream as it is now)."""

    def __init__(self, path: Path) -> None:
        self.repo = Repo(str(path))
        self.requested: list[bytes] = []

    def get_raw(self, sha: bytes) -> tuple[int, bytes]:
        self.requested.append(sha)
        type_num, data = self.repo.object_store.get_raw(hex_to_sha(ObjectID(sha)))
        return type_num, bytes(data)


def _strip_capabilities(advert: bytes, drop: set[str]) -> bytes:
    """Remove capabilities from the first ref line of an info/refs advertisement."""
    reader = PktReader(advert)
    out = bytearray()
    done = False
    while not reader.at_end():
        pkt = reader.read()
        if pkt is FLUSH:
            out += pkt_line(None)
            continue
        assert isinstance(pkt, bytes)
        if not done and b"\0" in pkt:
            line, _, caps = pkt.partition(b"\0")
            kept = [c for c in caps.rstrip(b"\n").split(b" ") if c.decode() not in drop]
            pkt = line + b"\0" + b" ".join(kept) + b"\n"
            done = True
        out += pkt_line(pkt)
    return bytes(out)


@dataclass
class ServerLog:
    receive_pack_bodies: list[bytes] = field(default_factory=list)
    receive_pack_answers: list[bytes] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)


class GitHttpServer:
    """Loopback smart-HTTP git server for repositories under ``root`` (the URL path is the folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = ServerLog()
        self.refuse: Callable[[bytes], bytes] | None = None
        self.hide_capabilities: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _repo(self, suffix: str) -> Path:
                path = self.path.split("?", 1)[0]
                assert path.endswith(suffix), path
                return server.root / path[1 : -len(suffix)].strip("/")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    raw = bytes(data)
                else:
                    raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "").lower() in ("gzip", "x-gzip"):
                    raw = gzip.decompress(raw)
                return raw

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.log.authorization.append(self.headers.get("Authorization"))
                service = self.path.split("service=", 1)[-1]
                if service not in ("git-upload-pack", "git-receive-pack"):
                    self._send(403, "text/plain", b"smart HTTP only\n")
                    return
                repo = self._repo("/info/refs")
                advert = subprocess.run(
                    ["git", service[4:], "--stateless-rpc", "--advertise-refs", str(repo)],
                    env=git_env(), capture_output=True, check=True,
                ).stdout
                if service == "git-receive-pack" and server.hide_capabilities:
                    advert = _strip_capabilities(advert, server.hide_capabilities)
                head = pkt_line(f"# service={service}\n".encode()) + pkt_line(None)
                self._send(200, f"application/x-{service}-advertisement", head + advert)

            def do_POST(self) -> None:  # noqa: N802
                server.log.authorization.append(self.headers.get("Authorization"))
                body = self._body()
                service = self.path.rsplit("/", 1)[-1]
                repo = self._repo("/" + service)
                if service == "git-receive-pack":
                    if body == b"0000":  # git's probe before a chunked upload
                        self._send(200, "application/x-git-receive-pack-result", b"")
                        return
                    server.log.receive_pack_bodies.append(body)
                    if server.refuse is not None:
                        self._send(200, "application/x-git-receive-pack-result", server.refuse(body))
                        return
                answer = subprocess.run(
                    ["git", service[4:], "--stateless-rpc", str(repo)],
                    input=body, env=git_env(), capture_output=True, check=False,
                ).stdout
                if service == "git-receive-pack":
                    server.log.receive_pack_answers.append(answer)
                self._send(200, f"application/x-{service}-result", answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, repo: Path) -> str:
        return f"http://127.0.0.1:{self.port}/{repo.relative_to(self.root).as_posix()}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def basic_token(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    return base64.b64decode(header[6:]).decode()


def refuse_everything(body: bytes) -> bytes:
    from enact_proxy.gitwire import parse_receive_pack, refusal_body

    req = parse_receive_pack(body)
    refs = [cmd.ref for cmd in req.commands]
    return refusal_body(refs, {}, req.capabilities, "Blocked by Enact: captured by the test")


def capture_push(ws: Workspace, server: GitHttpServer, *args: str) -> bytes:
    """Run ``git push <server url> args`` against a refusing server; the recorded request body."""
    server.refuse = refuse_everything
    before = len(server.log.receive_pack_bodies)
    done = run_git(ws.work, "push", "--porcelain", server.url(ws.bare), *args)
    assert len(server.log.receive_pack_bodies) == before + 1, done.stderr
    return server.log.receive_pack_bodies[-1]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def git_server(workspace: Workspace) -> Iterator[GitHttpServer]:
    server = GitHttpServer(workspace.bare.parent)
    yield server
    server.close()
