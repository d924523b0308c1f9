"""Start a real ``enact-proxy run`` process and learn where it listens (the demo and tests use it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ADMIN = re.compile(r"enact-proxy admin on http://([\d.]+:\d+)")
LISTENING = re.compile(r"enact-proxy listening on http://([\d.]+:\d+)(?: and postgres://([\d.]+:\d+))?")


@dataclass
class SidecarProcess:
    process: subprocess.Popen[str]
    directory: Path
    http: str
    postgres: str | None
    output: list[str] = field(default_factory=list)
    admin: str | None = None  # host:port of the admin listener, when it is on

    @property
    def proxy_url(self) -> str:
        return f"http://{self.http}"

    @property
    def ca(self) -> Path:
        return self.directory / "certs" / "mitmproxy-ca-cert.pem"

    @property
    def receipts_dir(self) -> Path:
        return self.directory / "receipts"

    def agent_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment an unchanged agent runs with: the proxy, and our CA for every client."""
        env = {k: v for k, v in (base if base is not None else os.environ).items()
               if not k.lower().endswith("_proxy")}
        ca = str(self.ca)
        env.update(HTTPS_PROXY=self.proxy_url, HTTP_PROXY=self.proxy_url, https_proxy=self.proxy_url,
                   http_proxy=self.proxy_url, NO_PROXY="", no_proxy="", REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca,
                   GIT_SSL_CAINFO=ca, CURL_CA_BUNDLE=ca)
        return env

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_sidecar(config: Path, *, env: dict[str, str] | None = None, timeout: float = 30.0,
                  echo: bool = False) -> SidecarProcess:
    """Run ``enact-proxy run --config CONFIG`` and wait until it prints where it listens."""
    exe = shutil.which("enact-proxy")
    command = [exe] if exe else [sys.executable, "-m", "enact_proxy.cli"]
    process = subprocess.Popen([*command, "run", "--config", str(config)], cwd=config.parent,
                               env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    found: dict[str, str | None] = {}
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if echo:
                sys.stderr.write(line)
            admin = ADMIN.search(line)
            if admin:
                found["admin"] = admin.group(1)
            match = LISTENING.search(line)
            if match:
                found.update(http=match.group(1), postgres=match.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=pump, name="enact-sidecar-output", daemon=True).start()
    if not ready.wait(timeout) or "http" not in found:
        process.kill()
        process.wait()
        raise RuntimeError("enact-proxy did not start:\n" + "".join(output))
    return SidecarProcess(process, config.parent, str(found["http"]), found.get("postgres"), output,
                          found.get("admin"))
