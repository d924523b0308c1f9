"""Sidecar memory: RSS of ``enact-proxy run`` (and of plain mitmdump beside it) at start and after N requests.

Both proxies are driven by ``hey`` through the forward proxy (HTTPS interception, keep-alive, 16
clients, hubspot.get_contact) with the same request count; RSS is read with psutil at start, after the
first tenth of the requests (warm: caches, certificates, imports done) and at the end. Growth is
reported against both, so a per-flow leak shows as growth from warm to end.

    python -m benchmarks.bench_memory [--requests 100000] [--clients 16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import save, tree_rss, version
from benchmarks._proxies import AGENT_HOST, Proc, require_hey, run_hey, start_enact, start_mitmdump, start_upstream

URL = f"https://{AGENT_HOST}/crm/v3/objects/contacts/101"


def rss_mb(proc: Proc) -> float:
    return tree_rss(proc.pid) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    hey = require_hey()
    work = Path(tempfile.mkdtemp(prefix="enact-bench-memory-"))
    upstream = start_upstream()
    proxies: list[Proc] = []
    results: dict[str, Any] = {}
    try:
        proxies.append(start_mitmdump(work / "mitmdump", int(upstream.address.rsplit(":", 1)[1])))
        proxies.append(start_enact(work / "enact", f"http://{upstream.address}"))
        for proxy in proxies:
            start = rss_mb(proxy)
            warm_n = max(args.clients, args.requests // 10)
            run_hey(hey, proxy.address, URL, clients=args.clients, requests=warm_n)
            warm = rss_mb(proxy)
            run_hey(hey, proxy.address, URL, clients=args.clients, requests=args.requests - warm_n)
            end = rss_mb(proxy)
            results[proxy.name] = {"start_mb": start, "warm_mb": warm, "end_mb": end,
                                   "growth_from_start": end / start - 1, "growth_from_warm": end / warm - 1}
            print(f"  {proxy.name:8s} RSS start {start:.1f} MB, after {warm_n} {warm:.1f} MB, "
                  f"after {args.requests} {end:.1f} MB", flush=True)
    finally:
        for proc in (*proxies, upstream):
            proc.stop()
    print("| process | RSS at start MB | after first 10 % MB | after all MB | growth from start | growth from warm |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['start_mb']:.1f} | {r['warm_mb']:.1f} | {r['end_mb']:.1f} | "
              f"{100 * r['growth_from_start']:+.1f} % | {100 * r['growth_from_warm']:+.1f} % |")
    path = save("memory", {"args": vars(args), "results": results, "versions": {"psutil": version("psutil")}})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
