"""Time from ``enact-proxy demo`` start to its first printed decision, several runs.

Measured from outside (process start to the line that carries the first decision) and as the demo
reports it itself ("(first decision X s after start)"). Baseline, same run: plain ``mitmdump`` from
process start until it listens (the floor any mitmproxy-based sidecar pays).

    python -m benchmarks.bench_demo [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import fmt, save, spread
from benchmarks._proxies import start_mitmdump

FIRST = re.compile(r"first decision ([\d.]+) s after start")


def demo_once(workdir: Path) -> tuple[float, float]:
    exe = shutil.which("enact-proxy")
    command = [exe] if exe else [sys.executable, "-m", "enact_proxy.cli"]
    began = time.monotonic()
    process = subprocess.Popen([*command, "demo"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    seen, reported, output = None, None, []
    for line in process.stdout:
        output.append(line)
        match = FIRST.search(line)
        if match and reported is None:
            seen, reported = time.monotonic() - began, float(match.group(1))
    process.wait()
    if reported is None or seen is None or process.returncode != 0:
        raise RuntimeError(f"demo exited {process.returncode} without a first decision:\n" + "".join(output))
    return seen, reported


def mitmdump_once(workdir: Path) -> float:
    began = time.monotonic()
    proc = start_mitmdump(workdir, 9)
    elapsed = time.monotonic() - began
    proc.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="enact-bench-demo-"))
    seen, reported, base = [], [], []
    for n in range(args.runs):
        (root / f"demo{n}").mkdir()
        s, r = demo_once(root / f"demo{n}")
        b = mitmdump_once(root / f"mitmdump{n}")
        seen.append(s)
        reported.append(r)
        base.append(b)
        print(f"  run {n + 1}: demo first decision at {s:.2f} s (demo says {r:.2f} s); mitmdump listening {b:.2f} s",
              flush=True)
    result = {"first_decision_s": spread(seen), "demo_reported_s": spread(reported),
              "mitmdump_listening_s": spread(base), "ratio": spread([s / b for s, b in zip(seen, base, strict=True)])}
    print("| measure | seconds |\n|---|---|")
    print(f"| demo: process start → first decision printed | {fmt(result['first_decision_s'], 2)} |")
    print(f"| demo: as it reports it | {fmt(result['demo_reported_s'], 2)} |")
    print(f"| baseline: mitmdump process start → listening | {fmt(result['mitmdump_listening_s'], 2)} |")
    print(f"| ratio demo / mitmdump | {fmt(result['ratio'], 2)}× |")
    path = save("demo", {"args": vars(args), "results": result})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
