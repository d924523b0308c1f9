"""Loopback sandbox upstreams for ``enact-proxy demo`` and end-to-end tests: HubSpot, GitHub REST,
and a git smart-HTTP server. No account, key or network needed."""

from enact_proxy.sandbox._http import Headers, ReceivedRequest, SandboxServer
from enact_proxy.sandbox.git_server import SandboxGitServer
from enact_proxy.sandbox.github import SandboxGitHub
from enact_proxy.sandbox.hubspot import SandboxHubSpot

__all__ = [
    "Headers",
    "ReceivedRequest",
    "SandboxGitHub",
    "SandboxGitServer",
    "SandboxHubSpot",
    "SandboxServer",
]
