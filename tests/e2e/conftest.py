"""Fixtures: sandbox upstreams on loopback and a factory for real ``enact-proxy run`` processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.sandbox import SandboxGitHub, SandboxGitServer, SandboxHubSpot
from tests.e2e.harness import RunningSidecar, start_sidecar, write_config

UPSTREAM_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


@pytest.fixture
def hubspot() -> Iterator[SandboxHubSpot]:
    with SandboxHubSpot() as server:
        yield server


@pytest.fixture
def github() -> Iterator[SandboxGitHub]:
    with SandboxGitHub() as server:
        server.add_repo("acme", "app")
        yield server


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[SandboxGitServer]:
    with SandboxGitServer(tmp_path / "git-upstream") as server:
        server.create_repo("acme", "app", files={"README.md": "hello\n"})
        yield server


@pytest.fixture
def sidecar_factory(tmp_path: Path) -> Iterator[Callable[..., RunningSidecar]]:
    """``make(systems=..., **config)`` writes enact.yaml in a fresh folder and starts the sidecar."""
    started: list[RunningSidecar] = []

    def make(env: dict[str, str] | None = None, **config: Any) -> RunningSidecar:
        directory = tmp_path / f"sidecar{len(started)}"
        directory.mkdir()
        write_config(directory, **config)
        sidecar = start_sidecar(directory, env=env)
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        sidecar.stop()


@pytest.fixture
def sidecar(sidecar_factory: Callable[..., RunningSidecar], hubspot: SandboxHubSpot,
            github: SandboxGitHub) -> RunningSidecar:
    """The default: HubSpot and GitHub REST guarded, every built-in policy, enforce mode."""
    return sidecar_factory(systems={"hubspot": {"upstream": hubspot.url},
                                    "github": {"upstream": github.url, "git_upstream": github.url}})
