"""A local bare mirror of one upstream repository, fetched through the sidecar's own connection.

Thin packs and parent trees are resolved against it. The credential goes to git through
environment-only config (never the command line, never logs, never error messages).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

from dulwich.objects import ObjectID, hex_to_sha
from dulwich.repo import Repo

from enact_proxy.gitwire.errors import GitWireError

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_HEX40 = re.compile(rb"[0-9a-f]{40}")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _thread_lock(path: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def mirror_dir_name(upstream_url: str) -> str:
    """A readable, collision-free folder name for an upstream repository URL."""
    parts = urlsplit(upstream_url)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parts.hostname or 'local'}{parts.path}").strip("_")
    digest = hashlib.sha256(upstream_url.encode("utf-8")).hexdigest()[:12]
    return f"{readable[:80]}-{digest}.git"


class GitMirror:
    """A bare repository under ``cache_dir`` kept in step with ``upstream_url`` by ``git fetch``."""

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        upstream_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        ca_file: str | None = None,
        use_proxy_env: bool = False,
    ) -> None:
        if urlsplit(upstream_url).password or urlsplit(upstream_url).username:
            raise ValueError("put the credential in token=, not in the upstream URL")
        self.upstream_url = upstream_url
        self.path = Path(cache_dir) / mirror_dir_name(upstream_url)
        self.timeout = timeout
        self._token = token
        self._ca_file = ca_file
        self._use_proxy_env = use_proxy_env
        self._repo: Repo | None = None

    def __repr__(self) -> str:  # keeps the token out of any log line that prints the mirror
        return f"GitMirror({self.upstream_url!r}, path={str(self.path)!r})"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        if not self._use_proxy_env:
            for name in _PROXY_VARS:
                env.pop(name, None)
        config = [("credential.helper", ""), ("core.askPass", "")]
        if self._token:
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode("ascii")
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        if self._ca_file:
            config.append(("http.sslCAInfo", self._ca_file))
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_COUNT=str(len(config)),
        )
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "[REDACTED]")
        return text.strip()[-500:]

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = next((a for a in args if not a.startswith("-") and a != str(self.path)), "")
        try:
            done = subprocess.run(
                ["git", *args],
                env=self._env(),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            reason = f"git {command} against the upstream timed out after {self.timeout:g}s"
            raise GitWireError(reason) from exc
        except OSError as exc:
            raise GitWireError(f"cannot run git: {exc.strerror}") from exc
        if check and done.returncode != 0:
            stderr = self._scrub(done.stderr.decode("utf-8", "replace"))
            raise GitWireError(f"git {command} failed (exit {done.returncode}): {stderr}")
        return done

    def ensure(self) -> None:
        """Create the bare repository if it does not exist yet."""
        if (self.path / "HEAD").exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._git("init", "--quiet", "--bare", str(self.path))

    def fetch(self) -> None:
        """Bring every branch and tag of the upstream into the mirror (one fetch at a time)."""
        self.ensure()
        lock_path = str(self.path) + ".lock"
        with _thread_lock(lock_path), open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                self._git(
                    "--git-dir", str(self.path), "fetch", "--quiet", "--prune", "--no-tags",
                    "--no-write-fetch-head", self.upstream_url,
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                )
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        self._repo = None  # reopen so dulwich sees the new packs

    def _store_repo(self) -> Repo:
        if self._repo is None:
            self.ensure()
            self._repo = Repo(str(self.path))
        return self._repo

    def get_raw_local(self, sha: bytes) -> tuple[int, bytes]:
        """The object from the mirror as it is now; KeyError when absent."""
        if not _HEX40.fullmatch(sha):
            raise KeyError(sha)
        store = self._store_repo().object_store
        type_num, data = store.get_raw(hex_to_sha(ObjectID(sha)))
        return type_num, bytes(data)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        self.ensure()
        done = self._git(
            "--git-dir", str(self.path), "merge-base", "--is-ancestor", ancestor, descendant, check=False
        )
        return {0: True, 1: False}.get(done.returncode)

    def source(self, fetch_on_miss: bool = True) -> MirrorSource:
        """An ObjectSource for one push: fetches at most once, on the first missing object."""
        return MirrorSource(self, fetch_on_miss=fetch_on_miss)


class MirrorSource:
    """ObjectSource (and AncestryOracle) over a GitMirror, for the analysis of one push."""

    def __init__(self, mirror: GitMirror, *, fetch_on_miss: bool) -> None:
        self._mirror = mirror
        self._may_fetch = fetch_on_miss

    def _refresh(self) -> bool:
        if not self._may_fetch:
            return False
        self._may_fetch = False
        self._mirror.fetch()  # GitWireError propagates: the caller refuses
        return True

    def get_raw(self, sha: bytes) -> tuple[int, bytes]:
        try:
            return self._mirror.get_raw_local(sha)
        except KeyError:
            if not self._refresh():
                raise
        return self._mirror.get_raw_local(sha)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        return self._mirror.is_ancestor(ancestor, descendant)
