"""The proxy path with the console open and polling versus closed (SPEC §8: the console must not slow it).

One ``enact-proxy run`` in front of the fast upstream; ``hey`` drives hubspot.get_contact through it
(16 clients, keep-alive, as in bench_http). Rounds alternate: console closed, console open. "Open" is
what an open console tab sends the admin listener: every 2 s ``GET /api/approvals?status=pending`` and
``GET /api/receipts?limit=200`` with the bearer token (the page's own polling, issued here by a thread
so the browser's CPU does not land on this machine's two cores). The log grows through the run, so
later rounds poll a bigger log; rounds alternate to spread that evenly.

    python -m benchmarks.bench_console [--rounds 3] [--seconds 6] [--clients 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._common import fmt, save, spread, version
from benchmarks._proxies import (
    AGENT_HOST,
    HUBSPOT_WORKFLOWS,
    Proc,
    require_hey,
    run_hey,
    start_upstream,
    write_enact_config,
)
from enact_proxy.launcher import start_sidecar

URL = f"https://{AGENT_HOST}/crm/v3/objects/contacts/101"
POLL_SECONDS = 2.0


class Console:
    """Polls the admin API as an open console tab does, recording how long each poll took."""

    def __init__(self, admin: str, token: str):
        self.base = f"http://{admin}"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.polls: list[float] = []
        self.listed: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        started = time.perf_counter()
        pending = self.http.get(self.base + "/api/approvals?status=pending", timeout=30)
        found = self.http.get(self.base + "/api/receipts?limit=200", timeout=30)
        assert pending.status_code == 200 and found.status_code == 200, (pending.text, found.text)
        self.polls.append(time.perf_counter() - started)
        self.listed.append(len(found.json()["receipts"]))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(POLL_SECONDS)  # the page waits 2 s after each answer

    def __enter__(self) -> Console:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def records(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("*/*.jsonl")) + len(list(directory.glob("*/*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    hey = require_hey()
    work = Path(tempfile.mkdtemp(prefix="enact-bench-console-"))
    upstream = start_upstream()
    sidecar = None
    runs: dict[str, list[dict[str, float]]] = {"closed": [], "open": []}
    try:
        config = write_enact_config(work, {"hubspot": {"upstream": f"http://{upstream.address}"}}, HUBSPOT_WORKFLOWS)
        sidecar = start_sidecar(config)
        assert sidecar.admin, "the sidecar printed no admin address"
        console = Console(sidecar.admin, (work / "certs" / "admin.token").read_text().strip())
        for round_no in range(args.rounds):
            for mode in (("closed", "open") if round_no % 2 == 0 else ("open", "closed")):
                run_hey(hey, sidecar.http, URL, clients=args.clients, duration=args.warmup)
                log_size = records(work / "receipts")
                if mode == "open":
                    with console:
                        result = run_hey(hey, sidecar.http, URL, clients=args.clients, duration=args.seconds)
                else:
                    result = run_hey(hey, sidecar.http, URL, clients=args.clients, duration=args.seconds)
                bad = {code: n for code, n in result.statuses.items() if code != 200}
                if bad or result.errors:
                    raise RuntimeError(f"answered {bad} with {result.errors} errors:\n{result.raw}")
                runs[mode].append({"rps": result.requests_per_second, "p50_ms": result.p50_ms,
                                   "p99_ms": result.p99_ms, "log_records": log_size})
                print(f"  round {round_no + 1} console {mode:6s}: {result.requests_per_second:7.1f} req/s  "
                      f"p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  (log {log_size} records)", flush=True)
        # What one poll costs the sidecar, measured on the idle sidecar by its CPU time: a figure the
        # other tenants of a shared machine do not move the way they move req/s.
        before, polls = cpu_seconds(sidecar.process.pid), 20
        for _ in range(polls):
            console.poll_once()
        cpu_per_poll_ms = (cpu_seconds(sidecar.process.pid) - before) / polls * 1000
        final_log = records(work / "receipts")
        print(f"sidecar CPU per poll: {cpu_per_poll_ms:.1f} ms with {final_log} records in the log "
              f"({cpu_per_poll_ms / POLL_SECONDS / 10:.2f} % of one core at one poll per {POLL_SECONDS:.0f} s)")
    finally:
        if sidecar is not None:
            Proc("enact", sidecar.process, sidecar.http).stop()
        upstream.stop()
    ratios = [o["rps"] / c["rps"] for o, c in zip(runs["open"], runs["closed"], strict=True)]
    summary: dict[str, Any] = {
        "closed": {k: spread([r[k] for r in runs["closed"]]) for k in ("rps", "p50_ms", "p99_ms")},
        "open": {k: spread([r[k] for r in runs["open"]]) for k in ("rps", "p50_ms", "p99_ms")},
        "rps_ratio_open_vs_closed": spread(ratios),
        "poll_seconds": spread(console.polls) if console.polls else None,
        "polls": len(console.polls),
        "listed": console.listed[-1] if console.listed else 0,
        "sidecar_cpu_ms_per_poll": cpu_per_poll_ms, "log_records_at_cpu_measure": final_log,
    }
    polls_ms = sorted(p * 1000 for p in console.polls)
    print(f"closed {fmt(summary['closed']['rps'], 0)} req/s, open {fmt(summary['open']['rps'], 0)} req/s, "
          f"open/closed {fmt(summary['rps_ratio_open_vs_closed'], 3)}; p99 closed "
          f"{summary['closed']['p99_ms']['median']:.1f} / open {summary['open']['p99_ms']['median']:.1f} ms")
    if polls_ms:
        print(f"{len(polls_ms)} polls: median {statistics.median(polls_ms):.0f} ms, max {polls_ms[-1]:.0f} ms")
    path = save("console", {"args": vars(args), "runs": runs, "summary": summary, "polls": console.polls,
                            "versions": {"enact-proxy": version("enact-proxy"), "mitmproxy": version("mitmproxy")}})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
