"""The root addon: loads ``enact.yaml`` once and hands the parsed state to its sub-addons."""

from __future__ import annotations

import os
import sys
from typing import Any

from mitmproxy import ctx

from enact_proxy.config import EnactConfig, load_config
from enact_proxy.sidecar import Sidecar, agent_env_lines


class Enact:
    def __init__(self, config: EnactConfig | None = None, sidecar: Sidecar | None = None):
        from enact_proxy.addons.decide import Decide
        from enact_proxy.addons.egress import Egress
        from enact_proxy.addons.hygiene import Hygiene
        from enact_proxy.addons.recognise import Recognise
        from enact_proxy.addons.record import Record

        self._config = config
        self.sidecar: Sidecar | None = sidecar
        self.addons = [Egress(self), Hygiene(self), Recognise(self), Decide(self), Record(self)]
        self._extras: list[Any] = []
        self._admin: Any = None

    def load(self, loader: Any) -> None:
        loader.add_option("enact_config", str, "", "Path to enact.yaml (when not given to the addon directly).")

    def configure(self, updated: set[str]) -> None:
        path = str(getattr(ctx.options, "enact_config", None) or "")
        if "enact_config" in updated and path and self.sidecar is None:
            self._config = load_config(path)
        if self.sidecar is None and self._config is not None:
            self.sidecar = Sidecar(self._config).start()

    async def running(self) -> None:
        self.configure(set())
        sidecar = self.state
        proxyserver = ctx.master.addons.get("proxyserver")
        addresses = proxyserver.listen_addrs()
        http = f"{addresses[0][0]}:{addresses[0][1]}" if addresses else sidecar.config.raw.listen.http
        if sidecar.worker is not None:  # one more HTTP front on the same port: the main process says the rest
            print(f"enact-proxy http worker {sidecar.worker} (pid {os.getpid()}) serving on http://{http}",
                  file=sys.stderr, flush=True)
            return
        if sidecar.fleet is not None:  # the other HTTP fronts join the very ports bound now (port 0 too)
            bound = {server.mode.type_name: f"{a[0]}:{a[1]}" for server in proxyserver.servers
                     for a in server.listen_addrs[:1]}
            sidecar.fleet.start(http=bound.get("regular", http), transparent=bound.get("transparent"))
        postgres = None
        if "postgres" in sidecar.config.systems:
            from enact_proxy.pgwire.server import start_listener

            listener = await start_listener(sidecar)
            self._extras.append(listener)
            postgres = listener.address
        admin = None
        if sidecar.config.raw.listen.admin != "off":
            from enact_proxy.admin.server import AdminServer

            host, _, port = sidecar.config.raw.listen.admin.rpartition(":")
            server = AdminServer(sidecar, host, int(port)).start()
            self._admin = server
            admin = server.address
            print(f"enact-proxy admin on http://{admin}", file=sys.stderr, flush=True)
        lines = [f"enact-proxy listening on http://{http}" + (f" and postgres://{postgres}" if postgres else ""),
                 f"CA certificate: {sidecar.ca_path}", f"receipts: {sidecar.config.receipts_dir}",
                 "Point your agent at it:", *("  " + line for line in agent_env_lines(sidecar.ca_path, http, postgres))]
        print("\n".join(lines), file=sys.stderr, flush=True)

    async def done(self) -> None:
        if self.sidecar is not None and self.sidecar.fleet is not None:
            self.sidecar.fleet.stop()  # the other fronts first: their last records reach the writer
        if self._admin is not None:
            self._admin.stop()
        for extra in self._extras:
            await extra.close()
        if self.sidecar is not None:
            self.sidecar.close()

    @property
    def state(self) -> Sidecar:
        # Not raising here: mitmproxy reads every attribute of an addon while collecting commands.
        return self.sidecar  # type: ignore[return-value]
