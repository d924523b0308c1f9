"""A git smart-HTTP server on loopback: bare repositories served by the real ``git http-backend``.

URLs look like GitHub's: ``{url}/{owner}/{repo}.git/info/refs?service=...`` (the ``.git`` suffix is
optional; owner and repo match case-insensitively). Request bodies arrive de-chunked and keep their
``Content-Encoding`` (``http-backend`` inflates gzip itself); the CGI's output is streamed back chunked.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, cast

from enact_proxy.sandbox._http import Request, Response, SandboxServer, _Handler

_GIT_ROUTE = re.compile(
    r"^/(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?"
    r"(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))$"
)
_STREAM_CHUNK = 64 * 1024
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Enact Sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@enact.invalid",
    "GIT_COMMITTER_NAME": "Enact Sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@enact.invalid",
}


class SandboxGitServer(SandboxServer):
    """Serves the bare repositories under ``root`` (``root/{owner}/{repo}.git``) over smart HTTP.

    With ``token``, requests must carry it (HTTP Basic with the token as password, as git sends
    ``x-access-token:TOKEN``, or ``Bearer TOKEN``); without, anyone may fetch and push.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        git: str = "git",
    ) -> None:
        super().__init__(host, port)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.git = shutil.which(git) or git

    # -- repositories ----------------------------------------------------------------------------
    def repo_path(self, owner: str, name: str) -> Path:
        found = self._find_repo(owner, name)
        return found if found is not None else self.root / owner / f"{name}.git"

    def create_repo(
        self, owner: str, name: str, default_branch: str = "main", files: dict[str, bytes | str] | None = None
    ) -> str:
        """Makes a bare repository with one initial commit on ``default_branch``; returns its sha."""
        path = self.root / owner / f"{name}.git"
        if path.exists():
            raise FileExistsError(f"repository {owner}/{name} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._git(None, "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path))
        self._git(path, "config", "http.receivepack", "true")
        seeded = files or {"README.md": f"# {name}\n"}
        with tempfile.TemporaryDirectory() as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            for file_path, content in seeded.items():
                data = content.encode() if isinstance(content, str) else content
                blob = self._git(path, "hash-object", "-w", "--stdin", stdin=data).strip()
                self._git(path, "update-index", "--add", "--cacheinfo", f"100644,{blob},{file_path}", env=index)
            tree = self._git(path, "write-tree", env=index).strip()
        commit = self._git(path, "commit-tree", tree, "-m", "Initial commit").strip()
        self._git(path, "update-ref", f"refs/heads/{default_branch}", commit)
        return commit

    def refs(self, owner: str, name: str) -> dict[str, str]:
        """Every ref of the bare repository -> its sha (the ground truth for push tests)."""
        out = self._git(self.repo_path(owner, name), "for-each-ref", "--format=%(refname) %(objectname)")
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {ref: sha for ref, sha in pairs}

    def rev_parse(self, owner: str, name: str, rev: str) -> str | None:
        result = subprocess.run(
            [
                self.git,
                "--git-dir",
                str(self.repo_path(owner, name)),
                "rev-parse",
                "--verify",
                "--quiet",
                f"{rev}^{{commit}}",
            ],
            capture_output=True,
            env=self._env(),
            check=False,
        )
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def clone_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def _find_repo(self, owner: str, name: str) -> Path | None:
        wanted_owner, wanted_repo = owner.lower(), f"{name.lower()}.git"
        if not self.root.is_dir():
            return None
        for owner_dir in self.root.iterdir():
            if owner_dir.is_dir() and owner_dir.name.lower() == wanted_owner:
                for repo_dir in owner_dir.iterdir():
                    if repo_dir.is_dir() and repo_dir.name.lower() == wanted_repo:
                        return repo_dir
        return None

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Isolated from the host's git configuration so results do not depend on the machine.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
            **_IDENTITY,
        }
        env.update(extra or {})
        return env

    def _git(
        self, git_dir: Path | None, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> str:
        command = [self.git] + (["--git-dir", str(git_dir)] if git_dir is not None else []) + list(args)
        result = subprocess.run(command, input=stdin, capture_output=True, env=self._env(env), check=False)
        if result.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode()

    # -- serving ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        return Response(404, b"Not Found\n", [("Content-Type", "text/plain")])

    def serve(self, request: Request, handler: _Handler) -> None:
        if not self._authorized(request):
            handler.send(
                Response(
                    401,
                    b"Authentication required\n",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="sandbox"')],
                )
            )
            return
        match = _GIT_ROUTE.match(request.path)
        repo = self._find_repo(match["owner"], match["repo"]) if match else None
        if match is None or repo is None:
            handler.send(self.handle(request))
            return
        path_info = "/" + repo.relative_to(self.root).as_posix() + match["rest"]
        self._run_backend(request, handler, path_info)

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return credential.strip() == self.token
        if scheme.lower() == "basic":
            try:
                _, _, password = base64.b64decode(credential.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return password == self.token
        return False

    def _run_backend(self, request: Request, handler: _Handler, path_info: str) -> None:
        cgi_env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path_info,
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.target.partition("?")[2],
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(request.body)),
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        for header, variable in (("content-encoding", "HTTP_CONTENT_ENCODING"), ("git-protocol", "HTTP_GIT_PROTOCOL")):
            if header in request.headers:
                cgi_env[variable] = request.headers[header]
        with tempfile.TemporaryFile() as body, tempfile.TemporaryFile() as errors:
            body.write(request.body)
            body.seek(0)
            process = subprocess.Popen(
                [self.git, "http-backend"],
                stdin=body,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=self._env(cgi_env),
            )
            stdout = cast(io.BufferedReader, process.stdout)
            try:
                status, headers = _read_cgi_headers(stdout)
                handler.send_response(status)
                for name, value in headers:
                    handler.send_header(name, value)
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
                while chunk := stdout.read1(_STREAM_CHUNK):
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.write(b"0\r\n\r\n")
            finally:
                stdout.close()
                process.wait()


def _read_cgi_headers(stream: IO[bytes]) -> tuple[int, list[tuple[str, str]]]:
    status = 200
    headers: list[tuple[str, str]] = []
    while True:
        line = stream.readline(65536)
        if line in (b"\r\n", b"\n", b""):
            return status, headers
        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if name.lower() == "status":
            status = int(value.strip().split(" ", 1)[0])
        else:
            headers.append((name.strip(), value.strip()))
