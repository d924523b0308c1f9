"""``enact-proxy approvals list|approve ID|deny ID [--reason R]``: through the running sidecar's admin API.

The address is ``listen.admin`` of ``--config`` (or ``--admin HOST:PORT``); the token is ``--token``,
else ``ENACT_ADMIN_TOKEN``, else ``certs/admin.token`` of the config. Exit 0 on success, 1 when the API
refused (401, 404, 409 ...) or cannot be reached, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import requests

from enact_proxy.admin.tokens import TOKEN_FILE
from enact_proxy.config import ConfigError, load_config

TOKEN_ENV = "ENACT_ADMIN_TOKEN"


def register(sub: Any) -> None:
    approvals = sub.add_parser("approvals", help="pending approvals and decisions on them (through the admin API)")
    asub = approvals.add_subparsers(dest="approvals_command")
    for name in ("list", "approve", "deny"):
        p = asub.add_parser(name)
        if name != "list":
            p.add_argument("id")
            p.add_argument("--reason", default="")
        else:
            p.add_argument("--status", default="pending",
                           help="pending (default), approved, denied, used, expired, all")
        p.add_argument("--config", default="enact.yaml")
        p.add_argument("--admin", default=None, help="HOST:PORT of the admin listener (default: listen.admin)")
        p.add_argument("--token", default=None, help=f"admin token (default: ${TOKEN_ENV}, else certs/{TOKEN_FILE})")
        p.add_argument("--json", action="store_true", help="print the API's JSON")
        p.set_defaults(func=run)


def register_reload(sub: Any) -> None:
    # Its exit codes are documented with every other command's (enact_proxy/cli.py EXIT_CODES).
    reload = sub.add_parser("reload", help="ask the running sidecar to reload its config (exit 1 when invalid)")
    reload.add_argument("--config", default="enact.yaml")
    reload.add_argument("--admin", default=None, help="HOST:PORT of the admin listener (default: listen.admin)")
    reload.add_argument("--token", default=None, help=f"admin token (default: ${TOKEN_ENV}, else certs/{TOKEN_FILE})")
    reload.set_defaults(func=run_reload)


def run_reload(args: argparse.Namespace) -> int:
    try:
        base, token = _endpoint(args)
    except (ConfigError, OSError, ValueError) as exc:
        # An invalid new config is what reload exists to catch: name every error, as `check` does.
        print(f"enact-proxy reload: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ConfigError) else 2
    session = requests.Session()
    session.trust_env = False
    try:
        answer = session.post(f"{base}/api/reload", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except requests.RequestException as exc:
        print(f"enact-proxy reload: the admin listener at {base} cannot be reached: {type(exc).__name__}",
              file=sys.stderr)
        return 1
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code == 200:
        print(f"reloaded (config sha256 {body.get('config_sha256')})")
        return 0
    for error in body.get("errors") or [body.get("error") or f"HTTP {answer.status_code}"]:
        print(f"enact-proxy reload: {error}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        base, token = _endpoint(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"enact-proxy approvals: {exc}", file=sys.stderr)
        return 2
    session = requests.Session()
    session.trust_env = False  # the admin listener is local: never through the agent's proxy
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if args.approvals_command == "list":
            query = "" if args.status == "all" else f"?status={args.status}"
            answer = session.get(f"{base}/api/approvals{query}", headers=headers, timeout=30)
        else:
            answer = session.post(f"{base}/api/approvals/{args.id}/{args.approvals_command}",
                                  json={"reason": args.reason}, headers=headers, timeout=30)
    except requests.RequestException as exc:
        print(f"enact-proxy approvals: the admin listener at {base} cannot be reached: {type(exc).__name__}",
              file=sys.stderr)
        return 1
    try:
        body = answer.json()
    except ValueError:
        body = {"error": answer.text[:200]}
    if answer.status_code != 200:
        print(f"enact-proxy approvals: {answer.status_code}: {body.get('error', body)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    elif args.approvals_command == "list":
        _table(body.get("approvals", []))
    else:
        approval = body["approval"]
        print(f"{approval['id']} {approval['status']} by {approval['decided_by']}")
    return 0


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    config = load_config(args.config) if (args.admin is None or args.token is None) else None
    admin = args.admin or (config.raw.listen.admin if config else "off")
    if admin == "off":
        raise ValueError("listen.admin is off in the config: the sidecar serves no admin API")
    token = args.token or os.environ.get(TOKEN_ENV) or (
        (config.certs_dir / TOKEN_FILE).read_text().strip() if config else "")
    return f"http://{admin}", token


def _table(approvals: list[dict[str, Any]]) -> None:
    if not approvals:
        print("no approvals")
        return
    print(f"{'ID':36}  {'STATUS':8}  {'ACTION':24}  {'ACTOR':24}  CREATED")
    for a in approvals:
        # Agents write payloads and actions: print them as data, one line each, control characters escaped.
        action = json.dumps(a["action"], ensure_ascii=True)[1:-1][:24]
        actor = json.dumps(a["actor"], ensure_ascii=True)[1:-1][:24]
        print(f"{a['id']:36}  {a['status']:8}  {action:24}  {actor:24}  {a['created_at']}")
