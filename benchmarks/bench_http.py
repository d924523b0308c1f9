"""HTTP(S) proxy path: plain mitmdump versus ``enact-proxy run``, side by side in one run.

Both proxies run at once in front of the same fast upstream (benchmarks/upstream.py); the load
generator is ``hey`` using each as its forward proxy, exactly as an agent with ``HTTPS_PROXY`` would:
one CONNECT per connection, TLS intercepted by the proxy, then keep-alive HTTP/1.1 requests to
``https://api.hubapi.com/...``. Each round measures mitmdump and Enact back to back (the order
alternates between rounds), so both see the same machine state; ratios are taken per round.

    python -m benchmarks.bench_http [--rounds 5] [--seconds 10] [--clients 1 16] [--enact-workers 1]

``--enact-workers N`` runs Enact with ``listen.workers: N`` (N HTTP front processes on one port). Each
run also reports CPU per request: user + system time of the proxy's whole process tree (Enact's
writer child and workers included) over the measured run, divided by the requests it answered.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import fmt, save, spread, tool_version, version
from benchmarks._proxies import (
    AGENT_HOST,
    Proc,
    cpu_seconds,
    require_hey,
    run_hey,
    start_enact,
    start_mitmdump,
    start_upstream,
)

SCENARIOS: dict[str, dict[str, Any]] = {
    # hubspot.get_contact: every policy runs, none needs the network.
    "get_contact": {"method": "GET", "url": f"https://{AGENT_HOST}/crm/v3/objects/contacts/101", "body": None},
    # hubspot.create_contact of one email, over and over: no_duplicate_contacts searches the upstream, then
    # the state store remembers the contact the first request created, so every later one is refused (403)
    # after the search and the claim check: the refusal path with a lookup and the state store.
    "create_contact": {"method": "POST", "url": f"https://{AGENT_HOST}/crm/v3/objects/contacts",
                       "body": json.dumps({"properties": {"email": "jane@acme.com", "firstname": "Jane"}}),
                       "ok": {403}},
}


def measure(hey: str, proxies: list[Proc], scenario: str, clients: int, rounds: int, seconds: float,
            warmup: float) -> dict[str, Any]:
    spec = SCENARIOS[scenario]
    runs: dict[str, list[dict[str, float]]] = {p.name: [] for p in proxies}
    for round_no in range(rounds):
        order = proxies if round_no % 2 == 0 else list(reversed(proxies))
        for proxy in order:
            run_hey(hey, proxy.address, spec["url"], clients=clients, duration=warmup,
                    method=spec["method"], body=spec["body"])
            cpu_before = cpu_seconds(proxy.pid)
            result = run_hey(hey, proxy.address, spec["url"], clients=clients, duration=seconds,
                             method=spec["method"], body=spec["body"])
            cpu_ms = (cpu_seconds(proxy.pid) - cpu_before) * 1000 / max(1, sum(result.statuses.values()))
            ok = spec.get("ok", {200}) if proxy.name == "enact" else {200}
            bad = {code: n for code, n in result.statuses.items() if code not in ok}
            if bad or result.errors:
                raise RuntimeError(f"{proxy.name} answered {bad} with {result.errors} errors:\n{result.raw}")
            runs[proxy.name].append({"rps": result.requests_per_second, "p50_ms": result.p50_ms,
                                     "p99_ms": result.p99_ms, "cpu_ms_per_request": cpu_ms})
            print(f"  {scenario} c={clients} round {round_no + 1}: {proxy.name:8s} "
                  f"{result.requests_per_second:8.1f} req/s  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms"
                  f"  CPU {cpu_ms:.2f} ms/req", flush=True)
    base, enact = runs["mitmdump"], runs["enact"]
    return {
        "scenario": scenario, "clients": clients, "runs": runs,
        "mitmdump": {k: spread([r[k] for r in base]) for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")},
        "enact": {k: spread([r[k] for r in enact]) for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")},
        "rps_ratio": spread([e["rps"] / b["rps"] for e, b in zip(enact, base, strict=True)]),
        "added_p50_ms": spread([e["p50_ms"] - b["p50_ms"] for e, b in zip(enact, base, strict=True)]),
        "added_p99_ms": spread([e["p99_ms"] - b["p99_ms"] for e, b in zip(enact, base, strict=True)]),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | clients | mitmdump req/s | Enact req/s | ratio | mitmdump p50 / p99 ms | "
             "Enact p50 / p99 ms | added p50 ms | CPU ms/req mitmdump / Enact |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m, e = r["mitmdump"], r["enact"]
        lines.append(f"| {r['scenario']} | {r['clients']} | {fmt(m['rps'], 0)} | {fmt(e['rps'], 0)} | "
                     f"**{fmt(r['rps_ratio'], 2)}×** | {m['p50_ms']['median']:.1f} / {m['p99_ms']['median']:.1f} | "
                     f"{e['p50_ms']['median']:.1f} / {e['p99_ms']['median']:.1f} | {fmt(r['added_p50_ms'], 1)} | "
                     f"{m['cpu_ms_per_request']['median']:.2f} / {e['cpu_ms_per_request']['median']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--enact-workers", type=int, default=1,
                        help="listen.workers for Enact: HTTP front processes sharing its port (default 1)")
    args = parser.parse_args()
    hey = require_hey()
    work = Path(tempfile.mkdtemp(prefix="enact-bench-http-"))
    upstream = start_upstream()
    proxies: list[Proc] = []
    try:
        proxies.append(start_mitmdump(work / "mitmdump", int(upstream.address.rsplit(":", 1)[1])))
        proxies.append(start_enact(work / "enact", f"http://{upstream.address}", workers=args.enact_workers))
        results = [measure(hey, proxies, s, c, args.rounds, args.seconds, args.warmup)
                   for s in args.scenarios for c in args.clients]
    finally:
        for proc in (*proxies, upstream):
            proc.stop()
    print(table(results))
    path = save("http", {"args": vars(args), "results": results, "workdir": str(work),
                         "versions": {"mitmproxy": version("mitmproxy"), "enact-proxy": version("enact-proxy"),
                                      "hey": "hey " + tool_version(["dpkg-query", "-W", "-f=${Version}", "hey"])}})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
