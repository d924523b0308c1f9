"""``receipts prove RUN_ID``: an RFC 6962 inclusion proof of a receipt against the signed HEAD.

An audit path at 1M records must not re-hash the log, so readers keep a cache under ``<dir>/.index/``
(never trusted, only used): where each record starts, the receipt run_ids by hash bucket, and the root
of every whole aligned subtree per level. It is extended with the records added since it was last
brought up to date, and every proof is checked against the record's own bytes and HEAD's root before it
is printed; a cache that does not agree is rebuilt from the log once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enact_proxy.receipts.checkpoint import open_checkpoint
from enact_proxy.receipts.merkle import CompactRange, inclusion_path, leaf_hash, perfect_subtrees, verify_inclusion
from enact_proxy.receipts.note import NoteError, Verifier
from enact_proxy.receipts.segments import Segment, list_segments, loads, read_line_at
from enact_proxy.receipts.signing import canonical_bytes
from enact_proxy.receipts.store import HEAD

INDEX = ".index"
_OFFSET = struct.Struct(">QQ")  # segment first seq, byte offset
_ID = struct.Struct(">16sQ")  # SHA-256(run_id)[:16], seq of its receipt
BUCKETS = 256


class ProveError(Exception):
    pass


def _id_key(run_id: str) -> bytes:
    return hashlib.sha256(run_id.encode("utf-8")).digest()[:16]


class LogIndex:
    def __init__(self, directory: Path):
        self.directory = directory
        self.root = directory / INDEX

    # -- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        try:
            return (self.root / "offsets").stat().st_size // _OFFSET.size
        except FileNotFoundError:
            return 0

    def node(self, level: int, index: int) -> bytes:
        with open(self.root / f"level-{level:02d}", "rb") as fh:
            data = os.pread(fh.fileno(), 32, index * 32)
        if len(data) != 32:
            raise ProveError(f"index has no node {level}/{index}")
        return data

    def location(self, seq: int) -> tuple[int, int]:
        with open(self.root / "offsets", "rb") as fh:
            data = os.pread(fh.fileno(), _OFFSET.size, seq * _OFFSET.size)
        if len(data) != _OFFSET.size:
            raise ProveError(f"index has no record {seq}")
        first, offset = _OFFSET.unpack(data)
        return first, offset

    def receipt_seq(self, run_id: str) -> int | None:
        key = _id_key(run_id)
        try:
            data = (self.root / "ids" / f"{key[0]:02x}").read_bytes()
        except FileNotFoundError:
            return None
        found = None
        for at in range(0, len(data) - _ID.size + 1, _ID.size):
            k, seq = _ID.unpack_from(data, at)
            if k == key:
                found = seq
        return found

    # -- bringing it up to date ----------------------------------------------------------------
    def refresh(self, *, rebuild: bool = False) -> int:
        """Extend the cache to every complete record in the log; returns how many it covers."""
        self.root.mkdir(exist_ok=True)
        (self.root / "ids").mkdir(exist_ok=True)
        with open(self.root / "lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if rebuild or not self._consistent():
                self._clear()
            return self._extend()

    def _levels(self) -> list[Path]:
        return sorted(self.root.glob("level-*"))

    def _consistent(self) -> bool:
        count = self.count()
        for level in range(count.bit_length()):
            path = self.root / f"level-{level:02d}"
            if not path.exists() or path.stat().st_size < (count >> level) * 32:
                return False
        return True

    def _clear(self) -> None:
        for path in [self.root / "offsets", *self._levels(), *(self.root / "ids").glob("*")]:
            path.unlink(missing_ok=True)

    def _extend(self) -> int:
        count = self.count()
        # Drop anything past ``count`` a crash of an earlier refresh may have left.
        for level, path in enumerate(self._levels()):
            want = (count >> level) * 32
            if path.stat().st_size > want:
                os.truncate(path, want)
        tree = CompactRange(count, [self.node(level, index) for level, index in perfect_subtrees(count)])
        segments = list_segments(self.directory)
        levels: dict[int, bytearray] = {}
        offsets = bytearray()
        ids: dict[int, bytearray] = {}

        def on_node(level: int, index: int, digest: bytes) -> None:
            levels.setdefault(level, bytearray()).extend(digest)

        added = 0
        for segment, offset, data in self._lines_from(segments, count):
            seq = count + added
            offsets += _OFFSET.pack(segment.first, offset)
            tree.append(leaf_hash(data), on_node)
            try:
                record = loads(data)
            except ValueError:
                record = None
            if isinstance(record, dict) and record.get("kind") == "receipt" and isinstance(record.get("run_id"), str):
                key = _id_key(record["run_id"])
                ids.setdefault(key[0], bytearray()).extend(_ID.pack(key, seq))
            added += 1
            if len(offsets) >= 1 << 22:  # bounded memory on a first build over a long log
                self._write(offsets, levels, ids)
                offsets, levels, ids = bytearray(), {}, {}
        self._write(offsets, levels, ids)
        return count + added

    def _write(self, offsets: bytearray, levels: dict[int, bytearray], ids: dict[int, bytearray]) -> None:
        # Levels and ids first, offsets (which say how far the cache goes) last.
        for level, data in levels.items():
            with open(self.root / f"level-{level:02d}", "ab") as fh:
                fh.write(data)
        for bucket, data in ids.items():
            with open(self.root / "ids" / f"{bucket:02x}", "ab") as fh:
                fh.write(data)
        with open(self.root / "offsets", "ab") as fh:
            fh.write(offsets)

    def _lines_from(self, segments: list[Segment], count: int) -> Iterator[tuple[Segment, int, bytes]]:
        """Complete lines from record ``count`` on, with where each starts."""
        start_segment, start_offset = 0, 0
        if count:
            first, offset = self.location(count - 1)
            matches = [i for i, s in enumerate(segments) if s.first == first]
            if not matches:
                raise ProveError("the index names a segment the log no longer has")
            start_segment = matches[0]
            line = read_line_at(segments[start_segment].path, offset)
            if line is None:
                raise ProveError("the index points at no record")
            start_offset = offset + len(line) + 1
        for i in range(start_segment, len(segments)):
            segment = segments[i]
            with open(segment.path, "rb") as fh:
                fh.seek(start_offset if i == start_segment else 0)
                position = fh.tell()
                data = fh.read()
            at = 0
            while True:
                stop = data.find(b"\n", at)
                if stop < 0:
                    break
                yield segment, position + at, data[at:stop]
                at = stop + 1
            if at < len(data):
                return  # a torn or unfinished line: later records are not complete yet


@dataclass
class Proof:
    checkpoint: str
    leaf_index: int
    tree_size: int
    audit_path: list[str]
    record: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "leaf_index": self.leaf_index, "tree_size": self.tree_size,
                "audit_path": self.audit_path, "record": self.record}


def prove(directory: Path | str, run_id: str, verifier: Verifier | None = None) -> Proof:
    """The inclusion proof of ``run_id``'s receipt against HEAD (checked before it is returned)."""
    directory = Path(directory)
    try:
        note = (directory / HEAD).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProveError(f"no checkpoint to prove against: {directory / HEAD}: {exc.strerror or exc}") from exc
    try:
        checkpoint = open_checkpoint(note, verifier)
    except NoteError as exc:
        raise ProveError(f"HEAD does not verify: {exc}") from exc
    index = LogIndex(directory)
    for attempt in range(2):
        try:
            index.refresh(rebuild=attempt > 0)
            return _prove_with(index, directory, run_id, checkpoint.size, checkpoint.root, note)
        except ProveError as exc:
            if isinstance(exc, _NotThere) or attempt:
                raise
        except OSError as exc:
            if attempt:
                raise ProveError(f"cannot read the log: {exc}") from exc
    raise AssertionError("unreachable")


class _NotThere(ProveError):
    pass


def _prove_with(index: LogIndex, directory: Path, run_id: str, size: int, root: bytes, note: str) -> Proof:
    seq = index.receipt_seq(run_id)
    if seq is None:
        raise _NotThere(f"no receipt {run_id} in {directory}")
    if seq >= size:
        raise _NotThere(f"receipt {run_id} (seq {seq}) is newer than HEAD (tree size {size}); "
                        "the next checkpoint covers it, try again in a moment")
    first, offset = index.location(seq)
    segment = next((s for s in list_segments(directory) if s.first == first), None)
    line = read_line_at(segment.path, offset) if segment is not None else None
    if line is None:
        raise ProveError("the index does not point at the record")
    record = loads(line)
    leaf = leaf_hash(line)
    if not isinstance(record, dict) or record.get("run_id") != run_id or record.get("seq") != seq \
            or index.node(0, seq) != leaf:
        raise ProveError("the index does not match the log")
    path = inclusion_path(seq, size, index.node)
    if not verify_inclusion(seq, size, leaf, path, root):
        raise ProveError("the proof does not reach HEAD's root: the log does not match HEAD "
                         "(run `enact-proxy receipts verify`)")
    return Proof(note, seq, size, [p.hex() for p in path], record)


def check_proof(proof: dict[str, Any], verifier: Verifier) -> bool:
    """What a third party does with a proof: the checkpoint's signature, then the path to its root."""
    try:
        checkpoint = open_checkpoint(proof["checkpoint"], verifier)
        leaf = leaf_hash(_canonical(proof["record"]))
        path = [bytes.fromhex(p) for p in proof["audit_path"]]
    except (NoteError, KeyError, ValueError, TypeError):
        return False
    return checkpoint.size == proof["tree_size"] and verify_inclusion(
        proof["leaf_index"], checkpoint.size, leaf, path, checkpoint.root)


def _canonical(obj: Any) -> bytes:
    return canonical_bytes(obj)
