"""git push through the sidecar: the GitHub wire's receive-pack hooks, built on ``gitwire``.

``attach(wire, cache_dir, environ)`` gives a ``connectors.github.Wire``:

- ``git_push_recogniser``: parses the push, analyses its pack against a local mirror of the upstream
  repository (fetched through the sidecar's own connection, with the configured token), and names
  one or two actions per ref. git's 4-byte probe POST is ``github.read`` and is forwarded.
- ``git_push_refuser`` / ``refuse_verdicts``: the refusal as report-status (HTTP 200, side-band when
  asked), one ``ng`` line per ref, so git prints ``! [remote rejected] <ref> (Blocked by Enact: ...)``.
  With verdicts, each ref names its own reasons; a client that asked for no report-status would not
  show them, so it gets an HTTP 403 instead.
- ``outcome``: the upstream's per-ref report for the receipt (``{"refs": {ref: "ok" | "ng ..."}}``).

Refs and actions are linked through the payload (``branch``, ``tag``, ``ref`` or ``refs``), so no
state is kept between recognising a push and answering it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.base import HttpAnswer, HttpCall, Refusal
from enact_proxy.engine import BLOCK_PREFIX, block_message
from enact_proxy.gitwire import (
    RESULT_CONTENT_TYPE,
    GitWireError,
    ReceivePackRequest,
    analyse_push,
    client_reads_report,
    is_probe_request,
    parse_receive_pack,
    parse_report_status,
    ref_actions_for_push,
    refusal_body,
)
from enact_proxy.gitwire.mirror import GitMirror
from enact_proxy.gitwire.pktline import PktReader, encode_lines
from enact_proxy.gitwire.report import sideband_wrap
from enact_proxy.models import ActionRequest, Decision, RequestSummary

SYSTEM = "github"
# Decide's reason for an action refused only because a sibling of its request was refused.
COLLATERAL_PREFIX = "refused with the rest of this request"
_HEADS = "refs/heads/"
_TAGS = "refs/tags/"
_TEXT = {"content-type": "text/plain; charset=utf-8"}


class Mirrors:
    """One ``GitMirror`` per upstream repository (and credential), made on first use."""

    def __init__(self, cache_dir: str | os.PathLike[str], git_upstream: str, *, timeout: float = 120.0):
        self.cache_dir = Path(cache_dir)
        self.git_upstream = git_upstream.rstrip("/")
        self.timeout = timeout
        self._mirrors: dict[tuple[str, str | None], GitMirror] = {}
        self._guard = threading.Lock()

    def url(self, owner: str, repo: str) -> str:
        return f"{self.git_upstream}/{owner}/{repo}.git"

    def get(self, owner: str, repo: str, token: str | None) -> GitMirror:
        key = (self.url(owner, repo), token)
        with self._guard:
            mirror = self._mirrors.get(key)
            if mirror is None:
                mirror = GitMirror(self.cache_dir, key[0], token=token, timeout=self.timeout)
                self._mirrors[key] = mirror
            return mirror


class GitPush:
    """The hooks :func:`attach` installs; usable on their own in tests."""

    def __init__(self, mirrors: Mirrors, token_for: Callable[[HttpCall], str | None]):
        self.mirrors = mirrors
        self._token_for = token_for

    # -- recognising ---------------------------------------------------------------------------
    def recognise(self, call: HttpCall, owner: str, repo: str) -> list[ActionRequest]:
        summary = RequestSummary(method=call.method, host=call.host, path=call.path)
        if is_probe_request(call.body):
            # git asks whether a large chunked push may start; it carries no ref update.
            payload = {"owner": owner, "repo": repo, "path": call.path, "probe": True}
            return [ActionRequest(system=SYSTEM, action="read", payload=payload, request=summary)]
        try:
            req = parse_receive_pack(call.body)
        except GitWireError as exc:
            unknown = ActionRequest(system=SYSTEM, action="unknown",
                                    payload={"owner": owner, "repo": repo, "path": call.path}, request=summary)
            raise Refusal(f"git push could not be read: {exc.reason}", action=unknown) from exc
        try:
            mirror = self.mirrors.get(owner, repo, self._token_for(call))
            analysis = analyse_push(req, mirror.source(fetch_on_miss=True))
        except GitWireError as exc:
            raise Refusal(f"git push could not be judged: {exc.reason}",
                          action=_unjudged_action(req, owner, repo, summary)) from exc
        return [action for _, action in ref_actions_for_push(req, analysis, owner, repo, summary)]

    # -- refusing ------------------------------------------------------------------------------
    def refuse(self, call: HttpCall, message: str, status: int) -> HttpAnswer:
        """Every ref refused with ``message`` (no per-action verdicts at hand)."""
        return self._answer(call, lambda refs: {ref: message for ref in refs}, message, status)

    def refuse_verdicts(self, call: HttpCall, verdicts: Sequence[Any], status: int) -> HttpAnswer:
        """Every ref refused, each with the reasons of its own actions' verdicts."""
        message = block_message(verdicts)
        return self._answer(call, lambda refs: reasons_by_ref(refs, verdicts), message, status)

    def _answer(self, call: HttpCall, reasons_for: Callable[[list[str]], dict[str, str]], message: str,
                status: int) -> HttpAnswer:
        refs, capabilities = _commands_and_capabilities(call.body)
        if not client_reads_report(capabilities):
            # Without report-status git cannot show per-ref refusals; an HTTP error at least fails it.
            return HttpAnswer(status=status if status >= 400 else 403, headers=dict(_TEXT),
                              body=(message + "\n").encode("utf-8"))
        headers = {"content-type": RESULT_CONTENT_TYPE, "cache-control": "no-cache"}
        if not refs:
            # Nothing readable to report per ref: a failed unpack makes git say why and exit non-zero.
            return HttpAnswer(status=200, headers=headers, body=unpack_failure_body(message, capabilities))
        return HttpAnswer(status=200, headers=headers,
                          body=refusal_body(refs, reasons_for(refs), capabilities, collateral_reason=message))

    # -- the receipt's outcome -----------------------------------------------------------------
    def outcome(self, call: HttpCall | None, status: int, body: bytes) -> dict[str, Any]:
        if call is None or is_probe_request(call.body):
            return {"probe": True} if call is not None else {}
        if status >= 400:
            return {"success": False}
        _, capabilities = _commands_and_capabilities(call.body)
        if not client_reads_report(capabilities):
            return {"refs": None, "report": "not requested by the client"}
        try:
            refs = parse_report_status(body)
        except GitWireError as exc:
            # Asked for and not readable: nothing confirms the refs moved.
            return {"refs": None, "report_error": exc.reason, "success": False}
        return {"refs": refs, "success": all(result == "ok" for result in refs.values())}


def attach(wire: Any, cache_dir: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> GitPush:
    """Install git push judging on a ``connectors.github.Wire``; returns the hooks' owner."""
    del environ  # the wire already holds the configured token; kept for the sidecar's call signature
    mirrors = Mirrors(cache_dir, wire.config.git_upstream)
    push = GitPush(mirrors, token_for=wire.git_token_for)
    wire.git_push_recogniser = push.recognise
    wire.git_push_refuser = push.refuse

    def refuse_verdicts(call: HttpCall, verdicts: Sequence[Any], status: int) -> HttpAnswer:
        if wire.is_git_push(call):
            return push.refuse_verdicts(call, verdicts, status)
        return wire.refuse(call, block_message(verdicts), status)

    def outcome(call: HttpCall | None, status: int, body: bytes) -> dict[str, Any] | None:
        if call is None or not wire.is_git_push(call):
            return None  # the sidecar's generic reading applies
        return push.outcome(call, status, body)

    wire.refuse_verdicts = refuse_verdicts
    wire.outcome = outcome
    return push


# --- pure helpers ------------------------------------------------------------------------------



def refs_of_action(action: ActionRequest | None) -> list[str]:
    """The refs an action of a push stands for, read back from its payload."""
    if action is None:
        return []
    payload = action.payload
    refs = payload.get("refs")
    if isinstance(refs, list):
        return [r for r in refs if isinstance(r, str)]
    if isinstance(payload.get("ref"), str):
        return [payload["ref"]]
    if action.action in ("create_branch", "push_commit", "delete_branch") and isinstance(payload.get("branch"), str):
        return [_HEADS + payload["branch"]]
    if action.action == "push_tag" and isinstance(payload.get("tag"), str):
        return [_TAGS + payload["tag"]]
    return []


def reasons_by_ref(refs: Iterable[str], verdicts: Sequence[Any]) -> dict[str, str]:
    """``ref -> "Blocked by Enact: ..."`` from the refused verdicts of that ref's actions.

    A ref refused on its own account names only its own reasons; one refused only because another
    ref was refused names that. Refs no verdict speaks for are left to the collateral reason.
    """
    wanted = set(refs)
    found: dict[str, list[str]] = {}
    for verdict in verdicts:
        if verdict.decision is not Decision.BLOCK:
            continue
        for ref in refs_of_action(verdict.action):
            if ref in wanted and verdict.reason not in found.setdefault(ref, []):
                found[ref].append(verdict.reason)
    result: dict[str, str] = {}
    for ref, reasons in found.items():
        own = [r for r in reasons if not r.startswith(COLLATERAL_PREFIX)]
        result[ref] = BLOCK_PREFIX + "; ".join(own or reasons)
    return result


def unpack_failure_body(message: str, capabilities: Iterable[str]) -> bytes:
    flat = " ".join(message.replace("\0", " ").split())[:2000]
    return sideband_wrap(encode_lines([f"unpack {flat}\n".encode()]), capabilities)


def _commands_and_capabilities(body: bytes) -> tuple[list[str], frozenset[str]]:
    """Refs (command order) and capabilities; a push too damaged to parse yields what can be read."""
    try:
        req = parse_receive_pack(body)
    except GitWireError:
        return [], _first_line_capabilities(body)
    return [cmd.ref for cmd in req.commands], req.capabilities


def _first_line_capabilities(body: bytes) -> frozenset[str]:
    try:
        reader = PktReader(body)
        while not reader.at_end():
            pkt = reader.read()
            if not isinstance(pkt, bytes):
                return frozenset()
            if pkt.startswith(b"shallow "):
                continue
            _, nul, caps = pkt.partition(b"\0")
            if not nul:
                return frozenset()
            return frozenset(c for c in caps.decode("utf-8", "replace").strip().split(" ") if c)
    except GitWireError:
        pass
    return frozenset()


def _unjudged_action(req: ReceivePackRequest, owner: str, repo: str, summary: RequestSummary) -> ActionRequest:
    """What a push we could not analyse would have done, named by its first ref (all refs listed)."""
    first = req.commands[0]
    payload: dict[str, Any] = {"owner": owner, "repo": repo, "refs": [cmd.ref for cmd in req.commands]}
    if first.ref.startswith(_HEADS):
        payload["branch"] = first.ref[len(_HEADS):]
        action = "delete_branch" if first.is_delete else "create_branch" if first.is_create else "push_commit"
        if action == "push_commit":
            payload.update(files=None, force=True)
    elif first.ref.startswith(_TAGS):
        action = "push_tag"
        payload["tag"] = first.ref[len(_TAGS):]
    else:
        action = "unknown"
    return ActionRequest(system=SYSTEM, action=action, payload=payload, request=summary)


__all__ = ["GitPush", "Mirrors", "attach", "reasons_by_ref", "refs_of_action"]
