"""``enact-proxy``: run, demo, check, receipts list|show|verify|prove (SPEC §2)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enact_proxy.config import ConfigError, load_config
from enact_proxy.models import Receipt
from enact_proxy.receipts.checkpoint import LOG_PUB_FILE, load_verifier
from enact_proxy.receipts.note import Verifier
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.verify import read_receipts, read_records, verify_log


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

    receipts = sub.add_parser("receipts", help="list, show, verify and prove receipts")
    rsub = receipts.add_subparsers(dest="receipts_command")
    for name, func in (("list", _list), ("show", _show), ("verify", _verify), ("prove", _prove)):
        p = rsub.add_parser(name)
        p.add_argument("--dir", default=None, help="receipts directory (default: from --config, else receipts)")
        p.add_argument("--config", default=None)
        p.set_defaults(func=func)
        if name == "list":
            p.add_argument("--decision", choices=["PASS", "BLOCK"])
            p.add_argument("--action")
            p.add_argument("--since", help="e.g. 30m, 1h, 2d")
            p.add_argument("--limit", type=int, default=50)
        elif name in ("show", "prove"):
            p.add_argument("run_id")
        if name in ("verify", "prove"):
            p.add_argument("--public-key", default=None,
                           help=f"the log's verifier key (default: {LOG_PUB_FILE} in the certs folder)")
        if name == "verify":
            p.add_argument("--certs-dir", default=None, help=f"where receipt.key lives unless {KEY_ENV} is set")
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
    rows = [r for r in read_receipts(directory)
            if (not args.decision or r.decision.value == args.decision)
            and (not args.action or args.action in (r.action, str(r.action or "").split(".")[-1]))
            and (since is None or _when(r.timestamp) >= since)]
    rows.sort(key=lambda r: (r.timestamp, r.seq or 0), reverse=True)
    print(f"{'TIME (UTC)':<20} {'DECISION':<8} {'ACTION':<26} {'RUN ID':<36}  REASON")
    for r in rows[: args.limit]:
        when = r.timestamp[:19].replace("T", " ")
        action = r.action or f"workflow {r.workflow}"
        print(f"{when:<20} {r.decision.value:<8} {action:<26} {r.run_id:<36}  {_short(r.reason)}")
    print(f"{min(len(rows), args.limit)} of {len(rows)} receipt(s) in {directory}")
    return 0


def _show(args: argparse.Namespace) -> int:
    directory, _ = _locations(args)
    intent_seq = None
    for record in read_records(directory):
        if record.run_id != args.run_id:
            continue
        if isinstance(record, Receipt):
            print(render_receipt(record, intent_seq))
            return 0
        intent_seq = record.seq
    if intent_seq is not None:
        print(f"receipt {args.run_id} is in flight: its intent is seq {intent_seq}, no receipt yet", file=sys.stderr)
    else:
        print(f"no receipt {args.run_id} in {directory}", file=sys.stderr)
    return 1


def render_receipt(r: Receipt, intent_seq: int | None = None) -> str:
    out = [f"Receipt {r.run_id}  (seq {r.seq}" + (f", intent seq {intent_seq})" if intent_seq is not None else ")"),
           f"  time      {r.timestamp}",
           f"  actor     {r.actor_email}",
           f"  workflow  {r.workflow}",
           f"  action    {r.action}   mode {r.mode}",
           f"  decision  {r.decision.value}: {r.reason}"]
    if r.request is not None:
        out.append(f"  request   {r.request.method} {r.request.host}{r.request.path}")
    out.append("  payload   " + json.dumps(r.payload, ensure_ascii=False, sort_keys=True)[:2000])
    out.append("  policies")
    for p in r.policy_results:
        out.append(f"    {'pass' if p.passed else 'FAIL'}  {p.policy}: {p.reason}")
    out.append("  actions taken")
    for a in r.actions_taken:
        out.append(f"    {a.action} success={a.success} {json.dumps(a.output)[:300]}")
    if r.approval is not None:
        out.append(f"  approval  {r.approval.id} by {r.approval.approved_by}")
    if r.redacted:
        out.append(f"  redacted  {', '.join(r.redacted)}")
    sig = r.signature
    out.append(f"  signature {sig.alg if sig else None} key {sig.key_id if sig else None}; prev_hash {r.prev_hash}")
    return "\n".join(out)


def _public_key(args: argparse.Namespace, certs: Path) -> tuple[Verifier | None, str | None]:
    """--public-key, else certs/receipt-log.pub; (None, why) when there is none."""
    path = Path(args.public_key) if args.public_key else certs / LOG_PUB_FILE
    if not path.exists():
        return None, f"no public key at {path}"
    try:
        return load_verifier(path), None
    except (OSError, ValueError) as exc:
        return None, str(exc)


def _verify(args: argparse.Namespace) -> int:
    directory, certs = _locations(args)
    if not directory.is_dir():
        print(f"no receipts directory {directory}", file=sys.stderr)
        return 1
    key: ReceiptKey | None
    try:
        key = ReceiptKey.load(certs, create=False)
    except (OSError, ValueError):
        key = None
    verifier, why = _public_key(args, certs)
    if args.public_key and verifier is None:
        print(f"cannot load the public key: {why}", file=sys.stderr)
        return 1
    report = verify_log(directory, key, verifier)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"FAIL {problem.where}: {problem.what}")
    checked = ", ".join(part for part in (
        f"HMAC signatures (key {key.key_id})" if key else "",
        "the hash chain, the Merkle tree",
        "the checkpoint signatures" if verifier else "") if part)
    head = f"HEAD tree size {report.head_size}" if report.head_size is not None else "no HEAD"
    summary = (f"{report.records} record(s) ({report.receipts} receipt(s), {report.intents} intent(s)), "
               f"{report.checkpoints} checkpoint(s), {head} in {directory}")
    if report.ok:
        print(f"ok: {summary}; checked {checked}")
        return 0
    print(f"{len(report.problems)} problem(s): {summary}")
    return 1


def _prove(args: argparse.Namespace) -> int:
    from enact_proxy.receipts.prove import ProveError, prove

    directory, certs = _locations(args)
    verifier, why = _public_key(args, certs)
    if args.public_key and verifier is None:
        print(f"cannot load the public key: {why}", file=sys.stderr)
        return 1
    try:
        proof = prove(directory, args.run_id, verifier)
    except ProveError as exc:
        print(f"cannot prove {args.run_id}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(proof.as_json(), indent=2, ensure_ascii=False))
    return 0


def _when(timestamp: str) -> datetime:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _short(text: Any, width: int = 90) -> str:
    text = str(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
