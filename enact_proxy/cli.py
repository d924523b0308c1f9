"""``enact-proxy``: run, demo, check, receipts list|show|verify (SPEC §2)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enact_proxy.config import ConfigError, load_config
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.verify import load_receipts, verify_directory


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enact-proxy", description="An action firewall for AI agents.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="start the sidecar in the foreground")
    run.add_argument("--config", default="enact.yaml")
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="sandbox upstreams, the sidecar and a sample agent")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox and sidecar running")
    demo.add_argument("--dir", default=".enact-demo", help="where the demo keeps its config, certs, receipts")
    demo.set_defaults(func=_demo)

    check = sub.add_parser("check", help="validate the config")
    check.add_argument("--config", default="enact.yaml")
    check.set_defaults(func=_check)

    receipts = sub.add_parser("receipts", help="list, show and verify receipts")
    rsub = receipts.add_subparsers(dest="receipts_command")
    for name, func in (("list", _list), ("show", _show), ("verify", _verify)):
        p = rsub.add_parser(name)
        p.add_argument("--dir", default=None, help="receipts directory (default: from --config, else receipts)")
        p.add_argument("--config", default=None)
        p.set_defaults(func=func)
        if name == "list":
            p.add_argument("--decision", choices=["PASS", "BLOCK"])
            p.add_argument("--action")
            p.add_argument("--since", help="e.g. 30m, 1h, 2d")
            p.add_argument("--limit", type=int, default=50)
        elif name == "show":
            p.add_argument("run_id")
        else:
            p.add_argument("--certs-dir", default=None, help=f"where receipt.key lives unless {KEY_ENV} is set")
    from enact_proxy.admin.cli import register as register_approvals

    register_approvals(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from enact_proxy.sidecar import run_sidecar

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return run_sidecar(config)


def _demo(args: argparse.Namespace) -> int:
    from enact_proxy.demo import run_demo

    return run_demo(Path(args.dir), keep=args.keep)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"{exc.path}: {error}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{config.path}: ok ({len(config.systems)} systems, {len(config.workflows)} workflows, "
          f"{len(config.policies)} policies; sha256 {config.sha256[:12]})")
    return 0


def _locations(args: argparse.Namespace) -> tuple[Path, Path]:
    """(receipts dir, certs dir) from --dir / --config / defaults."""
    receipts, certs = Path("receipts"), Path("certs")
    if args.config:
        config = load_config(args.config)
        receipts, certs = config.receipts_dir, config.certs_dir
    elif args.dir is None and Path("enact.yaml").exists():
        try:
            config = load_config("enact.yaml")
            receipts, certs = config.receipts_dir, config.certs_dir
        except ConfigError:
            pass
    if args.dir:
        receipts = Path(args.dir)
    if getattr(args, "certs_dir", None):
        certs = Path(args.certs_dir)
    return receipts, certs


_SINCE = re.compile(r"^(\d+)([smhd])$")


def _list(args: argparse.Namespace) -> int:
    directory, _ = _locations(args)
    since = None
    if args.since:
        match = _SINCE.match(args.since)
        if not match:
            print("--since takes a number and s, m, h or d (e.g. 1h)", file=sys.stderr)
            return 2
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        since = datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    rows = [r for _, r in load_receipts(directory) if isinstance(r, dict)]
    rows = [r for r in rows if (not args.decision or r.get("decision") == args.decision)
            and (not args.action or args.action in (r.get("action"), str(r.get("action", "")).split(".")[-1]))
            and (since is None or _when(r) >= since)]
    rows.sort(key=lambda r: str(r.get("timestamp")), reverse=True)
    print(f"{'TIME (UTC)':<20} {'DECISION':<8} {'ACTION':<26} {'RUN ID':<36}  REASON")
    for r in rows[: args.limit]:
        when = str(r.get("timestamp", ""))[:19].replace("T", " ")
        action = r.get("action") or f"workflow {r.get('workflow')}"
        print(f"{when:<20} {r.get('decision', '?'):<8} {action:<26} {r.get('run_id'):<36}  {_short(r.get('reason'))}")
    print(f"{min(len(rows), args.limit)} of {len(rows)} receipt(s) in {directory}")
    return 0


def _show(args: argparse.Namespace) -> int:
    directory, _ = _locations(args)
    for path, record in load_receipts(directory):
        if isinstance(record, dict) and (record.get("run_id") == args.run_id or path.stem == args.run_id):
            print(render_receipt(record, path))
            return 0
    print(f"no receipt {args.run_id} in {directory}", file=sys.stderr)
    return 1


def render_receipt(r: dict[str, Any], path: Path | None = None) -> str:
    out = [f"Receipt {r.get('run_id')}" + (f"  ({path})" if path else ""),
           f"  time      {r.get('timestamp')}",
           f"  actor     {r.get('actor_email')}",
           f"  workflow  {r.get('workflow')}",
           f"  action    {r.get('action')}   mode {r.get('mode')}",
           f"  decision  {r.get('decision')}: {r.get('reason')}"]
    req = r.get("request") or {}
    if req:
        out.append(f"  request   {req.get('method')} {req.get('host')}{req.get('path')}")
    out.append("  payload   " + json.dumps(r.get("payload"), ensure_ascii=False, sort_keys=True)[:2000])
    out.append("  policies")
    for p in r.get("policy_results") or []:
        out.append(f"    {'pass' if p.get('passed') else 'FAIL'}  {p.get('policy')}: {p.get('reason')}")
    out.append("  actions taken")
    for a in r.get("actions_taken") or []:
        out.append(f"    {a.get('action')} success={a.get('success')} {json.dumps(a.get('output'))[:300]}")
    if r.get("redacted"):
        out.append(f"  redacted  {', '.join(r['redacted'])}")
    sig = r.get("signature") or {}
    out.append(f"  signature {sig.get('alg')} key {sig.get('key_id')}; prev_hash {r.get('prev_hash')}")
    return "\n".join(out)


def _verify(args: argparse.Namespace) -> int:
    directory, certs = _locations(args)
    try:
        key = ReceiptKey.load(certs, create=False)
    except (OSError, ValueError) as exc:
        print(f"cannot load the receipt key: {exc}", file=sys.stderr)
        return 1
    if not directory.is_dir():
        print(f"no receipts directory {directory}", file=sys.stderr)
        return 1
    report = verify_directory(directory, key)
    for problem in report.problems:
        print(f"FAIL {problem.where}: {problem.what}")
    if report.ok:
        print(f"ok: {report.checked} receipt(s) in {directory}, signatures and chain hold (key {key.key_id})")
        return 0
    print(f"{len(report.problems)} problem(s) in {report.checked} receipt(s) in {directory}")
    return 1


def _when(r: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(r.get("timestamp")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _short(text: Any, width: int = 90) -> str:
    text = str(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
