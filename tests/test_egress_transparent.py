"""Transparent connections at the Egress hooks (no proxy process): routed by server name only.
The end-to-end run through a network namespace is tests/e2e/test_transparent.py."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from mitmproxy import connection, tls
from mitmproxy.proxy import mode_specs, server_hooks
from mitmproxy.proxy.context import Context
from mitmproxy.test import taddons, tflow

from enact_proxy.addons import Egress, Enact
from enact_proxy.config import ConfigError, load_config
from enact_proxy.sidecar import UNKNOWN_DESTINATION, Sidecar
from tests.e2e.harness import log_records


def _config(tmp_path: Path, **listen: Any) -> Path:
    path = tmp_path / "enact.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "actor": {"email": "agent@company.com"}, "listen": listen,
        "egress": {"passthrough": ["api.openai.com"]},
        "systems": {"hubspot": {"upstream": "http://127.0.0.1:9"}},
        "workflows": {"w": ["hubspot.create_contact"]}}))
    return path


def test_listen_transparent_is_off_by_default_and_validated(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path)).raw.listen.transparent is None
    assert load_config(_config(tmp_path, transparent="127.0.0.1:15001")).raw.listen.transparent == "127.0.0.1:15001"
    with pytest.raises(ConfigError) as bad:
        load_config(_config(tmp_path, transparent="15001"))
    assert "listen.transparent" in str(bad.value) and "expected host:port" in str(bad.value)


@pytest.fixture
def enact(tmp_path: Path) -> Iterator[Enact]:
    sidecar = Sidecar(load_config(_config(tmp_path))).start()
    yield Enact(sidecar=sidecar)
    sidecar.close()


def _egress(enact: Enact) -> Egress:
    return next(a for a in enact.addons if isinstance(a, Egress))


def _transparent_client(original: tuple[str, int]) -> connection.Client:
    client = tflow.tclient_conn()
    client.proxy_mode = mode_specs.ProxyMode.parse("transparent@127.0.0.1:15001")
    client.sockname = original
    return client


def _hello(enact: Enact, sni: str | None, original: tuple[str, int]) -> tls.ClientHelloData:
    """Run the ClientHello hook and then, unless intercepted, the server_connect mitmproxy would do next."""
    client = _transparent_client(original)
    with taddons.context(enact) as tctx:
        context = Context(client, tctx.options)
        context.server.address = original
        data = tls.ClientHelloData(context, SimpleNamespace(sni=sni))  # type: ignore[arg-type]

        async def go() -> None:
            egress = _egress(enact)
            result = egress.tls_clienthello(data)
            if result is not None:
                await result
            if data.ignore_connection:
                connect = egress.server_connect(server_hooks.ServerConnectionHookData(context.server, client))
                if connect is not None:
                    await connect

        asyncio.run(go())
    return data


def _receipts(enact: Enact) -> list[dict[str, Any]]:
    found = log_records(enact.state.config.receipts_dir)
    return [r for r in found if r.get("kind", "receipt") == "receipt" and r.get("action") == "egress.connect"]


def test_a_guarded_server_name_is_intercepted(enact: Enact) -> None:
    data = _hello(enact, "api.hubapi.com", UNKNOWN_DESTINATION)
    assert not data.ignore_connection and data.context.server.error is None
    assert not _receipts(enact)


@pytest.mark.parametrize(("original", "port"), [(UNKNOWN_DESTINATION, 443), (("104.18.0.1", 8443), 8443)])
def test_a_passthrough_name_is_dialled_by_name_never_by_original_address(
        enact: Enact, original: tuple[str, int], port: int) -> None:
    data = _hello(enact, "API.OpenAI.com.", original)
    assert data.ignore_connection
    assert data.context.server.address == ("api.openai.com", port)
    assert data.context.server.error is None and not _receipts(enact)


@pytest.mark.parametrize("sni", ["evil.example.com", None])
def test_an_unknown_or_missing_name_is_refused_with_one_receipt(enact: Enact, sni: str | None) -> None:
    data = _hello(enact, sni, ("104.18.0.1", 443))
    assert data.ignore_connection  # no TLS with the agent: nothing intercepted, nothing forwarded
    assert data.context.server.error and data.context.server.error.startswith("Blocked by Enact:")
    (receipt,) = _receipts(enact)
    assert receipt["decision"] == "BLOCK" and receipt["payload"]["host"] == sni
    assert receipt["request"]["method"] == "TLS"


def test_a_raw_connection_to_its_original_destination_is_refused_with_a_receipt(enact: Enact) -> None:
    original = ("104.18.0.1", 443)
    client = _transparent_client(original)
    server = connection.Server(address=original)
    with taddons.context(enact):
        result = _egress(enact).server_connect(server_hooks.ServerConnectionHookData(server, client))
        assert result is not None
        asyncio.run(result)  # type: ignore[arg-type]
    assert server.error and "without a server name" in server.error
    (receipt,) = _receipts(enact)
    assert receipt["request"]["method"] == "TCP" and receipt["payload"] == {"host": None, "port": 443}


def test_original_destination_lookup_failing_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    from mitmproxy import platform

    from enact_proxy import sidecar

    def no_record(sock: socket.socket) -> tuple[str, int]:
        raise OSError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(platform, "original_addr", no_record)
    sidecar._tolerate_unknown_original_destination()
    assert platform.original_addr is not no_record
    with socket.socket() as sock:
        assert platform.original_addr(sock) == UNKNOWN_DESTINATION


def test_in_shadow_mode_an_unknown_name_is_recorded_and_tunnelled_to_that_name(tmp_path: Path) -> None:
    path = _config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["mode"] = "shadow"
    path.write_text(yaml.safe_dump(raw))
    sidecar = Sidecar(load_config(path)).start()
    try:
        enact = Enact(sidecar=sidecar)
        data = _hello(enact, "evil.example.com", ("104.18.0.1", 443))
        assert data.ignore_connection and data.context.server.address == ("evil.example.com", 443)
        assert data.context.server.error is None
        (receipt,) = _receipts(enact)
        assert receipt["decision"] == "BLOCK" and receipt["mode"] == "shadow"
        # ... but a connection without a name has nowhere to go, in shadow mode too.
        unnamed = _hello(enact, None, ("104.18.0.1", 443))
        assert unnamed.context.server.error and "without a server name" in unnamed.context.server.error
    finally:
        sidecar.close()


def test_a_transparent_listener_that_cannot_bind_stops_the_sidecar(tmp_path: Path) -> None:
    """Never half up: without its transparent listener the sidecar exits instead of serving the rest."""
    import subprocess
    import sys

    path = _config(tmp_path, http="127.0.0.1:0", transparent="203.0.113.7:15001")  # not an address of this host
    done = subprocess.run([sys.executable, "-m", "enact_proxy.cli", "run", "--config", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "203.0.113.7:15001" in done.stdout + done.stderr
