"""``receipts verify``: check the whole log (SPEC §6) and name every record that does not hold.

One pass over the segments in ``seq`` order: each line must parse, ``seq`` must run 0, 1, 2, ... without
gap or repeat, ``prev_hash`` must be the SHA-256 of the line before, the HMAC must verify (when the key
is at hand), every intent must have exactly one later receipt. The same pass builds the RFC 6962 tree,
so every kept checkpoint and HEAD are compared with the root of the records they cover, and their
Ed25519 signatures are checked against the log's public key.

What is named, and how: *edited* (signature fails under our key id), *forged* (signed under another
key), *removed* (a gap in ``seq``; a checkpoint covering more records than there are: *truncated*),
*inserted* / *replayed* (a repeated ``seq`` or run_id), *reordered* (``seq`` going backwards), a broken
link (``prev_hash``), *HEAD altered*, and checkpoints inconsistent with the log or with each other. A
torn last line is a note, not a failure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enact_proxy.models import Intent, Receipt, parse_record
from enact_proxy.receipts.checkpoint import Checkpoint, open_checkpoint
from enact_proxy.receipts.merkle import CompactRange, leaf_hash
from enact_proxy.receipts.note import NoteError, Verifier
from enact_proxy.receipts.segments import Line, Torn, iter_lines, list_segments, loads
from enact_proxy.receipts.signing import ReceiptKey
from enact_proxy.receipts.store import CHECKPOINTS, HEAD, is_live

SHARED = frozenset({"receipt_version", "run_id", "timestamp", "actor_email", "workflow", "system", "action",
                    "payload", "request", "policy_results", "decision", "reason", "mode", "redacted",
                    "config_sha256", "kind", "seq", "prev_hash", "signature"})
REQUIRED = {"intent": SHARED, "receipt": SHARED | {"actions_taken"}}
_SIG_MARK = b',"signature":{'


@dataclass(frozen=True)
class Problem:
    where: str  # "seq 12 (run_id ...)", a segment line, HEAD, checkpoints/N
    what: str


@dataclass
class VerifyReport:
    records: int = 0
    receipts: int = 0
    intents: int = 0
    checkpoints: int = 0
    head_size: int | None = None
    live: bool = False
    signatures_checked: bool = False
    checkpoints_checked: bool = False
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def checked(self) -> int:
        return self.records

    def add(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))


def unsigned_bytes(line: bytes) -> bytes | None:
    """A record's canonical bytes without its ``signature`` member, cut out of the line itself.

    With sorted keys the top-level signature is followed only by ``system``, ``timestamp`` and
    ``workflow``, whose values are strings (no raw quote or brace inside), so the last occurrence of
    the marker is the top-level member; in a line not written by the writer a wrong cut only makes
    the HMAC fail, which is the right answer for it."""
    start = line.rfind(_SIG_MARK)
    if start < 0:
        return None
    end = line.find(b"}", start + len(_SIG_MARK))
    if end < 0:
        return None
    return line[:start] + line[end + 1:]


def _where(seq: Any, record: Any, line: Line) -> str:
    run_id = record.get("run_id") if isinstance(record, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool):
        return f"seq {seq}" + (f" ({run_id})" if isinstance(run_id, str) else "") + f" [{line.where}]"
    return line.where


def _seq_of(line: Line) -> Any:
    try:
        return loads(line.data).get("seq")
    except (ValueError, AttributeError):
        return None


def verify_log(directory: Path | str, key: ReceiptKey | None, verifier: Verifier | None, *,
               live: bool | None = None) -> VerifyReport:
    directory = Path(directory)
    report = VerifyReport(live=is_live(directory) if live is None else live,
                          signatures_checked=key is not None, checkpoints_checked=verifier is not None)
    checkpoints = _load_checkpoints(directory, verifier, report)
    wanted_sizes = {c.size for c in checkpoints.values()}
    roots: dict[int, bytes] = {0: CompactRange().root()} if 0 in wanted_sizes else {}
    tree = CompactRange()
    segments = list_segments(directory)
    torn: list[Torn] = []
    prev_line: bytes | None = None
    prev_seq = -1
    seen_seqs: dict[int, int] = {}
    backwards: list[tuple[int, str]] = []
    open_intents: dict[str, Line] = {}  # run_id -> where its intent is
    receipts_seen: set[str] = set()
    key_id = key.key_id if key is not None else None
    secret = key.secret if key is not None else b""
    first_in_segment: dict[Path, int | None] = {}
    sha256 = hashlib.sha256
    new_hmac = hmac.new
    for line in iter_lines(segments, torn):
        data = line.data
        report.records += 1
        tree.append(leaf_hash(data))
        if tree.size in wanted_sizes:
            roots[tree.size] = tree.root()
        expected_prev = sha256(prev_line).hexdigest() if prev_line is not None else None
        prev_line = data
        try:
            record = loads(data)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            report.add(line.where, "not a record: the line does not parse as a JSON object (edited or corrupted)")
            first_in_segment.setdefault(line.segment.path, None)
            continue
        seq = record.get("seq")
        first_in_segment.setdefault(line.segment.path, seq if isinstance(seq, int) else None)
        kind = record.get("kind")
        missing = REQUIRED.get(kind, SHARED) - record.keys() if isinstance(kind, str) else SHARED
        if kind not in REQUIRED:
            report.add(_where(seq, record, line), f"unknown record kind {kind!r} (edited or inserted)")
        elif missing:
            report.add(_where(seq, record, line), f"lacks {', '.join(sorted(missing))} (edited)")
        # order
        if not isinstance(seq, int) or isinstance(seq, bool):
            report.add(_where(seq, record, line), "has no integer seq (edited)")
        else:
            seen_seqs[seq] = seen_seqs.get(seq, 0) + 1
            if seq <= prev_seq:
                backwards.append((seq, _where(seq, record, line)))
            prev_seq = seq if seq > prev_seq else prev_seq
        # chain
        if record.get("prev_hash") != expected_prev:
            report.add(_where(seq, record, line), "prev_hash does not match the record before it: the record "
                                                  "before it was edited, removed, inserted or reordered")
        # signature
        signature = record.get("signature")
        if not isinstance(signature, dict) or signature.get("alg") != "HMAC-SHA256":
            report.add(_where(seq, record, line), "has no HMAC-SHA256 signature (forged)")
        elif key is not None:
            if signature.get("key_id") != key_id:
                report.add(_where(seq, record, line),
                           f"forged: signed with another key (key_id {signature.get('key_id')})")
            else:
                body = unsigned_bytes(data)
                given = signature.get("value")
                if body is None or not isinstance(given, str) or not hmac.compare_digest(
                        new_hmac(secret, body, "sha256").hexdigest(), given):
                    report.add(_where(seq, record, line), "edited: its signature does not verify")
        # intents and receipts
        run_id = record.get("run_id")
        if not isinstance(run_id, str):
            report.add(_where(seq, record, line), "has no run_id (edited)")
        elif kind == "intent":
            report.intents += 1
            if run_id in open_intents or run_id in receipts_seen:
                report.add(_where(seq, record, line), f"a second intent for {run_id} (inserted or replayed)")
            else:
                open_intents[run_id] = line
        elif kind == "receipt":
            report.receipts += 1
            if run_id in receipts_seen:
                report.add(_where(seq, record, line), f"a second receipt for {run_id} (inserted or replayed)")
            receipts_seen.add(run_id)
            open_intents.pop(run_id, None)
    _check_order(report, seen_seqs, backwards)
    _check_segments(report, segments, first_in_segment)
    for piece in torn:
        if piece is torn[-1] and segments and piece.segment == segments[-1]:
            report.notes.append(f"torn write at the end of {piece.segment.path.parent.name}/"
                                f"{piece.segment.path.name} ({len(piece.data)} bytes without a newline): "
                                "not a record; the writer cuts it off when it starts")
        else:
            report.add(f"{piece.segment.path.parent.name}/{piece.segment.path.name}",
                       "the segment ends inside a record (cut off), and later segments follow")
    for run_id, at in open_intents.items():
        where = _where(_seq_of(at), {"run_id": run_id}, at)
        if report.live:
            report.notes.append(f"{where}: intent for {run_id} is in flight (no receipt yet)")
        else:
            report.add(where, f"intent for {run_id} has no receipt (its receipt was removed)")
    _check_checkpoints(directory, report, checkpoints, roots)
    if key is None:
        report.notes.append("HMAC signatures were not checked: no receipt key (ENACT_RECEIPT_KEY or "
                            "certs/receipt.key); the Merkle tree and the signed checkpoints were")
    if verifier is None:
        report.notes.append("checkpoint signatures were not checked: no public key (--public-key or "
                            "certs/receipt-log.pub)")
    return report


def _check_order(report: VerifyReport, seen: dict[int, int], backwards: list[tuple[int, str]]) -> None:
    for seq, where in backwards:
        if seen.get(seq, 0) > 1:
            report.add(where, f"seq {seq} appears {seen[seq]} times: inserted or replayed")
        else:
            report.add(where, f"seq {seq} comes after a higher seq: reordered")
    if not seen:
        return
    top = max(seen)
    missing = [n for n in range(top + 1) if n not in seen] if len(seen) <= top else []
    for first, last in _ranges(missing):
        span = f"seq {first}" if first == last else f"seq {first}..{last}"
        report.add(span, f"{last - first + 1} record(s) removed (a gap in seq)")


def _ranges(numbers: list[int]) -> Iterator[tuple[int, int]]:
    if not numbers:
        return
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n != prev + 1:
            yield start, prev
            start = n
        prev = n
    yield start, prev


def _check_segments(report: VerifyReport, segments: list[Any], first: dict[Path, int | None]) -> None:
    for segment in segments:
        starts = first.get(segment.path)
        if starts is not None and starts != segment.first:
            report.add(f"{segment.path.parent.name}/{segment.path.name}",
                       f"named for seq {segment.first} but its first record is seq {starts} "
                       "(records removed, inserted or moved between segments)")


def _load_checkpoints(directory: Path, verifier: Verifier | None, report: VerifyReport) -> dict[str, Checkpoint]:
    """Every checkpoint whose note parses (and verifies, with a public key), by name; the rest are named."""
    found: dict[str, Checkpoint] = {}
    paths = sorted((directory / CHECKPOINTS).glob("*"), key=lambda p: (len(p.name), p.name))
    for path in [*paths, directory / HEAD]:
        if path.name.startswith("."):
            continue
        name = HEAD if path.name == HEAD else f"{CHECKPOINTS}/{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            report.add(name, f"unreadable: {exc}")
            continue
        try:
            checkpoint = open_checkpoint(text, verifier)
        except NoteError as exc:
            report.add(name, f"altered or forged: {exc}")
            continue
        if name != HEAD and path.name != str(checkpoint.size):
            report.add(name, f"holds tree size {checkpoint.size}, not the size its name says (moved)")
            continue
        found[name] = checkpoint
    return found


def _check_checkpoints(directory: Path, report: VerifyReport, checkpoints: dict[str, Checkpoint],
                       roots: dict[int, bytes]) -> None:
    count = report.records
    head = checkpoints.pop(HEAD, None)
    kept = sorted(checkpoints.items(), key=lambda item: item[1].size)
    report.checkpoints = len(kept)
    if head is None:
        if count and not (directory / HEAD).exists():
            report.add(HEAD, "HEAD is missing (removed)")
    else:
        report.head_size = head.size
        copy = checkpoints.get(f"{CHECKPOINTS}/{head.size}")
        if copy is None or copy.note != head.note:
            report.add(HEAD, f"HEAD is not a copy of {CHECKPOINTS}/{head.size} (altered)")
        newer = [c for _, c in kept if c.size > head.size]
        if newer:
            report.add(HEAD, f"HEAD (tree size {head.size}) is older than {CHECKPOINTS}/{newer[-1].size} "
                             "(rolled back)")
    matching: list[Checkpoint] = []
    for name, checkpoint in [*kept, *([(HEAD, head)] if head is not None else [])]:
        if checkpoint.size > count:
            report.add(name, f"covers {checkpoint.size} records but the log holds {count}: "
                             f"seq {count}..{checkpoint.size - 1} removed (truncated)")
        elif roots.get(checkpoint.size) != checkpoint.root:
            report.add(name, f"its root is not the root of the first {checkpoint.size} records: a record "
                             "it covers was edited, removed, inserted or reordered, or the checkpoint was altered")
        elif name != HEAD:
            matching.append(checkpoint)
    # Checkpoints that disagree with each other: same size, different roots, or an older one that no
    # longer matches the log while a newer one does (the covered history was rewritten after it was signed).
    by_size: dict[int, bytes] = {}
    for _, checkpoint in kept:
        other = by_size.setdefault(checkpoint.size, checkpoint.root)
        if other != checkpoint.root:
            report.add(f"{CHECKPOINTS}/{checkpoint.size}", "two checkpoints of one size with different roots")
    good = {c.size for c in matching}
    for _, checkpoint in kept:
        if checkpoint.size in good or checkpoint.size > count:
            continue
        newer_good = [s for s in good if s > checkpoint.size]
        if newer_good:
            report.add(f"{CHECKPOINTS}/{checkpoint.size}",
                       f"inconsistent with {CHECKPOINTS}/{min(newer_good)}: the newer checkpoint does not extend it")
    if head is not None and head.size < count:
        if report.live:
            report.notes.append(f"seq {head.size}..{count - 1} are newer than HEAD (the next checkpoint covers them)")
        else:
            report.notes.append(f"seq {head.size}..{count - 1} are not covered by a signed checkpoint "
                                "(the writer did not stop cleanly; its next start checkpoints them)")


# -- reading the log for people (list, show, demo) ---------------------------------------------
def read_records(directory: Path | str) -> Iterator[Intent | Receipt]:
    """Every record that parses as one, in log order (verification is ``verify_log``'s job)."""
    for line in iter_lines(list_segments(Path(directory))):
        try:
            yield parse_record(loads(line.data))
        except ValueError:
            continue


def read_receipts(directory: Path | str) -> list[Receipt]:
    return [r for r in read_records(directory) if isinstance(r, Receipt)]


def read_receipt_dicts(directory: Path | str) -> Iterator[dict[str, Any]]:
    """Every receipt record as parsed JSON, in log order: cheap to filter; type only what is shown
    (``parse_record``), since building a model per record of a long log costs minutes."""
    for line in iter_lines(list_segments(Path(directory))):
        try:
            record = loads(line.data)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") == "receipt":
            yield record
