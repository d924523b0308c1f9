"""``enact-proxy``: run, demo, check, test, replay, receipts list|show|verify|prove (SPEC §2)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enact_proxy.config import ConfigError, load_config
from enact_proxy.models import Receipt, parse_record
from enact_proxy.receipts.checkpoint import LOG_PUB_FILE, load_verifier
from enact_proxy.receipts.note import Verifier
from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey
from enact_proxy.receipts.verify import read_receipt_dicts, read_records, verify_log
from enact_proxy.terminal import printable

# The exit status of a command whose reader went away (`enact-proxy receipts list | head`), as a
# shell reports a process killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here for output still in the buffer
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except ConfigError as exc:  # --config of a receipts command: name the errors, no traceback
        for error in exc.errors:
            print(f"{exc.path}: {error}", file=sys.stderr)
        return 2


def _quiet_stdout() -> None:
    """The reader of stdout is gone: point stdout at /dev/null so flushing at exit cannot raise again.

    (SIGPIPE stays ignored, as Python sets it: restoring its default would let a peer closing a socket
    kill the sidecar.)"""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is no file (tests, embedding)
        pass


# Each command's exit codes, shown at the end of its --help.
EXIT_CODES = {
    "run": "exit codes: 0 stopped cleanly (Ctrl-C, SIGTERM); 1 the config is invalid or the sidecar could not start",
    "demo": "exit codes: 0 every attempt of the sample agent ended as expected; 1 one did not; 2 the demo extra "
            "is not installed (pip install -e '.[demo]')",
    "check": "exit codes: 0 the config is valid; 1 it is not (each error names the key and line)",
    "test": "exit codes: 0 every case matched; 1 a case did not match or could not be judged (an unanswered "
            "lookup); 2 a file could not be read, is no valid fixture file, or its config is invalid",
    "replay": "exit codes: 0 no decision would change; 1 some would (each is printed); 2 an error (invalid "
              "config, unreadable receipts, bad --since)",
    "receipts list": "exit codes: 0 listed (also when none match); 2 a bad --since or an invalid --config. "
                     "With --json: each record as logged, one a line (JSON Lines), newest first, no header",
    "receipts show": "exit codes: 0 shown (--json: the record as logged, on one line); 1 no such receipt (or only "
                     "its intent: in flight); 2 an invalid --config",
    "receipts verify": "exit codes: 0 the whole log holds; 1 a problem (each record named) or no log; "
                       "2 an invalid --config",
    "receipts prove": "exit codes: 0 the proof is printed (JSON); 1 no such receipt, no checkpoint covering it, "
                      "or a bad public key; 2 an invalid --config",
    "reload": "exit codes: 0 the running sidecar reloaded the config; 1 the new config is invalid (each error "
              "printed; the old one stays in force) or the sidecar cannot be reached",
    "approvals": "exit codes: 0 done; 1 the admin API refused (401, 404, 409) or cannot be reached; 2 a usage or "
                 "config error",
}
EPILOG_END = "Every command exits 141 when the reader of its output went away (| head)."


def _epilog(name: str) -> str:
    return f"{EXIT_CODES[name]}. {EPILOG_END}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enact-proxy", description="An action firewall for AI agents.",
                                     epilog="Each command's --help lists its exit codes. Documentation: docs/ "
                                            "in the repository.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="start the sidecar in the foreground", epilog=_epilog("run"))
    run.add_argument("--config", default="enact.yaml")
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="sandbox upstreams, the sidecar and a sample agent", epilog=_epilog("demo"))
    demo.add_argument("--keep", action="store_true", help="leave the sandbox and sidecar running")
    demo.add_argument("--dir", default=".enact-demo", help="where the demo keeps its config, certs, receipts")
    demo.set_defaults(func=_demo)

    check = sub.add_parser("check", help="validate the config", epilog=_epilog("check"))
    check.add_argument("--config", default="enact.yaml")
    check.set_defaults(func=_check)

    test = sub.add_parser("test", help="run policy fixtures offline (docs/operations.md)", epilog=_epilog("test"))
    test.add_argument("files", nargs="+", metavar="FILE", help="fixture files (YAML: config:, cases:)")
    test.set_defaults(func=_test)

    replay = sub.add_parser("replay", help="judge the recorded actions again under a new config, offline",
                            epilog=_epilog("replay"))
    replay.add_argument("--config", required=True, metavar="NEW", help="the config to judge them under")
    replay.add_argument("--dir", default=None, help="receipts directory (default: NEW's receipts.dir)")
    replay.add_argument("--since", default=None, help="only receipts this recent, e.g. 30m, 24h, 7d")
    replay.set_defaults(func=_replay)

    receipts = sub.add_parser("receipts", help="list, show, verify and prove receipts")
    rsub = receipts.add_subparsers(dest="receipts_command")
    for name, func in (("list", _list), ("show", _show), ("verify", _verify), ("prove", _prove)):
        p = rsub.add_parser(name, epilog=_epilog(f"receipts {name}"))
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
        if name in ("list", "show"):
            p.add_argument("--json", action="store_true",
                           help="JSON Lines for scripts: each record as it stands in the log, one a line")
        if name in ("verify", "prove"):
            p.add_argument("--public-key", default=None,
                           help=f"the log's verifier key (default: {LOG_PUB_FILE} in the certs folder)")
        if name == "verify":
            p.add_argument("--certs-dir", default=None, help=f"where receipt.key lives unless {KEY_ENV} is set")
    from enact_proxy.admin.cli import register as register_approvals
    from enact_proxy.admin.cli import register_reload

    register_approvals(sub)
    register_reload(sub)
    _document_exit_codes(parser)
    return parser


def _document_exit_codes(parser: argparse.ArgumentParser, root: str = "enact-proxy") -> None:
    """Every (sub)command without an epilog gets its exit codes from EXIT_CODES (``approvals deny`` from
    ``approvals``), so a command registered elsewhere documents them too."""
    for p in _subparsers(parser):
        name = p.prog.removeprefix(root).strip()
        key = name if name in EXIT_CODES else name.split(" ")[0]
        if p.epilog is None and key in EXIT_CODES:
            p.epilog = _epilog(key)
        _document_exit_codes(p, root)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [p for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for p in action.choices.values()]


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


def _test(args: argparse.Namespace) -> int:
    from enact_proxy.fixtures import run_files

    return run_files(args.files)


def _replay(args: argparse.Namespace) -> int:
    from enact_proxy.replay import run_replay

    return run_replay(args.config, directory=args.dir, since=args.since)


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


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30m``, ``1h``, ``2d`` ... as the moment that long ago; ValueError for anything else."""
    if not text:
        return None
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"--since takes a number and s, m, h or d (e.g. 1h), not {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})


def _list(args: argparse.Namespace) -> int:
    directory, _ = _locations(args)
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    found = [r for r in read_receipt_dicts(directory)
             if (not args.decision or r.get("decision") == args.decision)
             and (not args.action or args.action in (r.get("action"), str(r.get("action") or "").split(".")[-1]))
             and (since is None or _when(str(r.get("timestamp", ""))) >= since)]
    found.sort(key=lambda r: (str(r.get("timestamp", "")), r.get("seq") or 0), reverse=True)
    rows = []  # typed only what is shown: a long log holds far more than a screen
    for raw in found[: args.limit]:
        with contextlib.suppress(ValueError):
            record = parse_record(raw)
            if isinstance(record, Receipt):
                rows.append(record)
    if args.json:
        for r in rows[: args.limit]:
            print(_json_line(r))
        return 0
    print(f"{'TIME (UTC)':<20} {'DECISION':<8} {'ACTION':<26} {'RUN ID':<36}  REASON")
    for r in rows[: args.limit]:
        when = printable(r.timestamp[:19].replace("T", " "))
        action = printable(r.action or f"workflow {r.workflow}")
        print(f"{when:<20} {r.decision.value:<8} {action:<26} {printable(r.run_id):<36}  {_short(r.reason)}")
    print(f"{len(rows)} of {len(found)} receipt(s) in {directory}")
    return 0


def _show(args: argparse.Namespace) -> int:
    directory, _ = _locations(args)
    intent_seq = None
    for record in read_records(directory):
        if record.run_id != args.run_id:
            continue
        if isinstance(record, Receipt):
            print(_json_line(record) if args.json else render_receipt(record, intent_seq))
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
           f"  actor     {printable(r.actor_email)}",
           f"  workflow  {printable(r.workflow)}",
           f"  action    {printable(r.action)}   mode {r.mode}",
           f"  decision  {r.decision.value}: {printable(r.reason)}"]
    if r.request is not None:
        out.append("  request   " + printable(f"{r.request.method} {r.request.host}{r.request.path}"))
    out.append("  payload   " + printable(json.dumps(r.payload, ensure_ascii=False, sort_keys=True)))
    out.append("  policies")
    for p in r.policy_results:
        out.append(f"    {'pass' if p.passed else 'FAIL'}  {printable(p.policy)}: {printable(p.reason)}")
    out.append("  actions taken")
    for a in r.actions_taken:
        out.append(f"    {printable(a.action)} success={a.success} {printable(json.dumps(a.output), 300)}")
    if r.approval is not None:
        out.append(f"  approval  {printable(r.approval.id)} by {printable(r.approval.approved_by)}")
    if r.redacted:
        out.append(f"  redacted  {printable(', '.join(r.redacted))}")
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


def _json_line(record: Receipt) -> str:
    """The record as it stands in the log (its canonical form), on one line."""
    return json.dumps(record.record_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _when(timestamp: str) -> datetime:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _short(text: Any, width: int = 90) -> str:
    text = printable(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
