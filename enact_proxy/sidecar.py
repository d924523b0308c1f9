"""The sidecar's parsed state and ``enact-proxy run``: mitmproxy with the Enact addons in front."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import connectors
from enact_proxy.admin import AdminTokens, Metrics
from enact_proxy.config import ConfigError, EnactConfig, load_config
from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest
from enact_proxy.receipts import ReceiptError, ReceiptKey
from enact_proxy.receipts.checkpoint import LOG_PUB_FILE, load_log_signer
from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.redact import Redactor
from enact_proxy.state import Approval, open_store

CA_FILE = "mitmproxy-ca-cert.pem"
log = logging.getLogger("enact_proxy.sidecar")


class Sidecar:
    """Everything built once from ``enact.yaml`` that the addons read on every flow."""

    def __init__(self, config: EnactConfig, environ: Mapping[str, str] = os.environ, *,
                 attach_receipts: tuple[int, int] | None = None, worker: int | None = None):
        """``worker``/``attach_receipts``: this is HTTP front process number ``worker`` of a sidecar with
        ``listen.workers`` > 1 (see :mod:`enact_proxy.workers`): it serves only the HTTP proxy, and its
        records go to the main process's writer child over the two pipe ends it was given."""
        self.config = config
        self.worker = worker
        self.fleet: Any = None  # the main process's extra HTTP fronts (enact_proxy.workers.Fleet), if any
        config.certs_dir.mkdir(parents=True, exist_ok=True)
        self.key = ReceiptKey.load(config.certs_dir)
        self.log_signer = load_log_signer(config.certs_dir)
        # Chaining, signing and writing the log run in a child process: off this process's GIL.
        receipts = config.raw.receipts
        self.store = ProcessReceiptStore(config.receipts_dir, self.key, signer=self.log_signer,
                                         segment_bytes=int(receipts.segment_mb * 1024 * 1024),
                                         checkpoint_seconds=receipts.checkpoint_seconds,
                                         fronts=worker is None and config.raw.listen.workers > 1,
                                         attach=attach_receipts)
        self.environ = environ
        state_password = _state_password(config, environ)
        self.state = open_store(config.state_url, base_dir=config.base_dir, password=state_password,
                                timeout=config.raw.state.timeout_seconds)
        self.webhook = None
        if config.raw.admin.webhook_url:  # a notice on each new pending approval, sent off the deciding thread
            from enact_proxy.admin.webhook import Webhook

            self.webhook = Webhook(config.raw.admin.webhook_url).start()
            self.state.on_new_approval = self.webhook.notify
        self.metrics = Metrics()
        self.metrics.watch_unwritable(lambda: bool(getattr(self.store, "unwritable", False)))
        self.admin_tokens = AdminTokens.load([(t.name, t.token_env) for t in config.raw.admin.tokens],
                                             config.certs_dir, environ)
        self.loop: asyncio.AbstractEventLoop | None = None  # the proxy's loop, once it runs (reload runs there)
        self._install(config)

    def _install(self, config: EnactConfig) -> None:
        """Build what the config decides — connectors, egress, limits, policies, workflows — and swap it in.

        Addons and sessions read these attributes on every request, so a request received after the swap
        is decided by the new config, on connections opened before it too; one in flight keeps what it had.
        """
        environ = self.environ
        wires: dict[str, Any] = {}
        for name, system_config in config.systems.items():
            module = connectors.available()[name]
            if hasattr(module, "Wire"):
                wires[name] = module.Wire(system_config, environ)
        self._attach_git(wires.get("github"), config, environ)
        known = [environ.get(opt) for cfg in config.systems.values()
                 for opt in (getattr(cfg, "token_env", None), getattr(cfg, "password_env", None)) if opt]
        redactor = Redactor([s for s in [*known, _state_password(config, environ)] if s])
        engine = Engine(policies=config.policies, workflows=config.workflows,
                        actor_email=config.raw.actor.email, actor_roles=config.raw.actor.roles,
                        receipts=self.store, mode=config.raw.mode, state=self.state,
                        config_sha256=config.sha256, redactor=redactor, metrics=self.metrics)
        self.config = config
        self.wires = wires
        self.by_host = {host: wire for wire in wires.values() for host in wire.hosts}
        self.passthrough = frozenset(h.lower().rstrip(".") for h in config.raw.egress.passthrough)
        self.max_body_bytes = config.raw.limits.max_body_bytes
        self.upstream_addresses = self._upstream_addresses()
        self.redactor = redactor
        self.engine = engine

    # -- reload (SPEC §9) ----------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Re-read and validate the config file; swap it in when valid. Returns the errors (none: reloaded).
        Keys that name sockets, folders, the state store or the admin tokens take effect only on restart:
        a change to them refuses the reload, so nobody believes it applied."""
        try:
            fresh = load_config(self.config.path)
        except ConfigError as exc:
            return list(exc.errors)
        fixed = [key for key in ("listen", "receipts", "certs_dir", "state", "admin")
                 if getattr(fresh.raw, key) != getattr(self.config.raw, key)]
        if fixed:
            return [f"{key}: cannot change while running; restart the sidecar to apply it" for key in fixed]
        try:
            self._install(fresh)
        except (OSError, ValueError, LookupError) as exc:
            return [f"{type(exc).__name__}: {exc}"]
        if self.fleet is not None:  # the other HTTP fronts re-read the same file
            self.fleet.reload()
        return []

    def reload_from_any_thread(self, timeout: float = 10.0) -> list[str]:
        """Reload on the proxy's event loop (where every request is decided), from the admin thread."""
        if self.loop is None:
            return self.reload()
        return asyncio.run_coroutine_threadsafe(_call(self.reload), self.loop).result(timeout)

    @staticmethod
    def _attach_git(github: Any, config: EnactConfig, environ: Mapping[str, str]) -> None:
        if github is None:
            return
        try:
            from enact_proxy.gitpush import attach
        except ImportError:  # git push judging not installed: pushes stay refused (fail closed)
            return
        attach(github, cache_dir=config.certs_dir.parent / ".enact-cache" / "git", environ=environ)

    def _upstream_addresses(self) -> frozenset[tuple[str, int]]:
        """Every (host, port) a forwarded request may dial; anything else is refused at connect."""
        from connectors.base import HttpCall

        found = set()
        for wire in self.wires.values():  # set by _install just before
            for host in wire.hosts:
                for path in ("/", "/info/refs"):
                    up = wire.upstream(HttpCall(method="GET", host=host, path=path))
                    found.add((up.host.lower(), up.port))
        return frozenset(found)

    def start(self) -> Sidecar:
        self.store.start()
        return self

    def close(self) -> None:
        self.store.close()
        self.state.close()
        if self.webhook is not None:
            self.webhook.stop()

    # -- what the admin listener asks ------------------------------------------------------------
    def readiness_problems(self) -> list[str]:
        """Empty while records can be written and the state store answers (``/readyz``)."""
        problems = list(self.fleet.problems()) if self.fleet is not None else []
        if getattr(self.store, "unwritable", False):
            problems.append("receipts cannot be written")
        try:
            self.state.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            problems.append(str(exc) if "state store" in str(exc) else f"state store {self.state.url}: {exc}")
        return problems

    def decide_approval(self, approval_id: str, approve: bool, person: str, reason: str) -> Approval:
        """A person's decision on a pending approval, recorded as an ``enact.approve`` / ``enact.deny`` receipt."""
        engine = self.engine
        approval = self.state.decide_approval(approval_id, approve=approve, by=person, reason=reason,
                                              now=engine.clock())
        verb = "approve" if approve else "deny"
        action = ActionRequest(system="enact", action=verb,
                               payload={"approval_id": approval.id, "digest": approval.digest, "reason": reason})
        said = "approved" if approve else "denied"
        try:
            engine.record(engine.note(action, person, f"{said} by {person}: {approval.action}")).result(timeout=30)
        except Exception as exc:
            # No receipt of who decided, no decision: the approval goes back to pending (unless a retry
            # already spent the grant, whose own receipt names the approver), and the person is told.
            self.state.reopen_approval(approval.id)
            raise ReceiptError(f"the decision could not be recorded ({exc}); approval {approval.id} "
                               "is still pending") from exc
        return approval

    @property
    def ca_path(self) -> Path:
        return self.config.certs_dir / CA_FILE


def _reload_and_say(sidecar: Sidecar) -> None:
    errors = sidecar.reload()
    who = "enact-proxy" if sidecar.worker is None else f"enact-proxy http worker {sidecar.worker}"
    for error in errors:  # each names the key (and line); the old config stays in force
        print(f"{who}: reload refused: {error}", file=sys.stderr, flush=True)
    if not errors:
        print(f"{who}: config reloaded (sha256 {sidecar.config.sha256})", file=sys.stderr, flush=True)


async def _call(fn: Any) -> Any:
    return fn()


def _state_password(config: EnactConfig, environ: Mapping[str, str]) -> str | None:
    name = config.raw.state.password_env
    if not name:
        return None
    password = environ.get(name)
    if not password:
        raise ValueError(f"state.password_env names {name}, but that variable is not set")
    return password


def agent_env_lines(ca: Path, http: str, postgres: str | None) -> list[str]:
    lines = [f"export HTTPS_PROXY=http://{http}", f"export HTTP_PROXY=http://{http}",
             f"export REQUESTS_CA_BUNDLE={ca}", f"export SSL_CERT_FILE={ca}",
             f"export GIT_SSL_CAINFO={ca}", f"export CURL_CA_BUNDLE={ca}"]
    if postgres:
        host, _, port = postgres.rpartition(":")
        lines.append(f"export DATABASE_URL=postgresql://agent@{host}:{port}/app  # your database name")
    return lines


def run_sidecar(config: EnactConfig) -> int:
    """``enact-proxy run``: serve until Ctrl-C / SIGTERM, then flush every receipt."""
    host, _, port = config.raw.listen.http.rpartition(":")
    workers = config.raw.listen.workers
    if workers > 1:
        from enact_proxy.workers import port_in_use

        # Every front binds with SO_REUSEPORT, which would also let this one silently share a port that
        # another process (of this user) already serves: refuse instead, as a plain bind would.
        listen = config.raw.listen
        for key, address in (("listen.http", listen.http), ("listen.transparent", listen.transparent)):
            problem = port_in_use(address) if address else None
            if problem:
                print(f"enact-proxy: cannot start: {key} {address}: {problem}", file=sys.stderr, flush=True)
                return 1
    try:
        sidecar = Sidecar(config)
    except (OSError, ValueError) as exc:
        print(f"enact-proxy: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"receipt log public key ({config.certs_dir / LOG_PUB_FILE}): {sidecar.log_signer.verifier.text}",
          file=sys.stderr, flush=True)
    if workers > 1:
        from enact_proxy.workers import Fleet

        sidecar.fleet = Fleet(sidecar, workers)
        sidecar.metrics.others = sidecar.fleet.samples  # /metrics counts every front's decisions
    modes = [f"regular@{host}:{port}"]  # first: the address printed for HTTPS_PROXY
    if config.raw.listen.transparent:
        modes.append(f"transparent@{config.raw.listen.transparent}")
    code = serve_proxy(sidecar, modes, reuse_port=workers > 1)
    if code == 0:
        print("enact-proxy stopped; receipts flushed", file=sys.stderr, flush=True)
    return code


def serve_proxy(sidecar: Sidecar, modes: list[str], *, reuse_port: bool = False) -> int:
    """Run mitmproxy with the Enact addon on ``modes`` until Ctrl-C / SIGTERM (the main process and
    each HTTP worker process alike)."""
    from mitmproxy import options
    from mitmproxy.tools.dump import DumpMaster

    from enact_proxy.addons import Enact

    config = sidecar.config
    # The event loop and the receipt threads trade the GIL at every syscall; with the default 5 ms
    # switch interval a receipt file (four syscalls) could wait 20 ms for it, and the loop as long.
    sys.setswitchinterval(0.005)
    # Everything built so far lives as long as the process; a busy proxy allocates fast, and the
    # default young-generation threshold made full collections a visible p99 stall.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)

    if any(mode.startswith("transparent@") for mode in modes):
        _tolerate_unknown_original_destination()
    if reuse_port:
        from enact_proxy.workers import listen_with_reuse_port

        listen_with_reuse_port()

    async def serve() -> None:
        opts = options.Options(mode=modes, confdir=str(config.certs_dir))
        master = DumpMaster(opts, with_termlog=True, with_dumper=False)
        # These options belong to built-in addons, so they exist only once the master does.
        opts.update(connection_strategy="lazy", stream_large_bodies=None, termlog_verbosity="warn")
        master.addons.add(Enact(sidecar=sidecar.start()))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, master.shutdown)
        sidecar.loop = loop
        loop.add_signal_handler(signal.SIGHUP, _reload_and_say, sidecar)
        # Judging that waits (lookups, the state store, a request held for approval) runs in worker
        # threads; the default pool (cores + 4) would let six held requests stall every other one.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="enact-judge"))
        await master.run()

    try:
        asyncio.run(serve())
    except ReceiptError as exc:  # e.g. another writer has the receipts folder
        print(f"enact-proxy: cannot start: {exc}", file=sys.stderr, flush=True)
        sidecar.state.close()
        return 1
    return 0


# What a transparent connection's "original destination" is when the kernel has no record of one.
UNKNOWN_DESTINATION = ("0.0.0.0", 0)


def _tolerate_unknown_original_destination() -> None:
    """mitmproxy's transparent mode drops a connection whose original destination the kernel cannot
    tell (SO_ORIGINAL_DST fails when the DNAT happened in another network namespace and this one does
    no connection tracking). Enact routes by server name, never by that destination, so such a
    connection is kept with an unknown destination (0.0.0.0:0) instead; nothing can be dialed there."""
    from mitmproxy import platform

    lookup = platform.original_addr
    if lookup is None or getattr(lookup, "enact_tolerant", False):
        return

    def original_addr(sock: Any) -> tuple[str, int]:
        try:
            return lookup(sock)
        except OSError:
            return UNKNOWN_DESTINATION

    original_addr.enact_tolerant = True  # type: ignore[attr-defined]
    platform.original_addr = original_addr
