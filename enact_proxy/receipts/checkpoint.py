"""The log's signing key (``certs/receipt-log.key`` / ``ENACT_LOG_KEY``) and C2SP tlog-checkpoints.

A checkpoint is the signed note of ``<origin>\\n<tree size>\\n<base64 root hash>\\n``; the origin and the
key's name are both ``enact-proxy/<first 16 hex of SHA-256 of the public key>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from enact_proxy.receipts.note import NoteError, Signer, Verifier, open_note

LOG_KEY_ENV = "ENACT_LOG_KEY"
LOG_KEY_FILE = "receipt-log.key"
LOG_PUB_FILE = "receipt-log.pub"


def origin_for(public: bytes) -> str:
    return "enact-proxy/" + hashlib.sha256(public).hexdigest()[:16]


def load_log_signer(certs_dir: Path | str, *, create: bool = True) -> Signer:
    """``ENACT_LOG_KEY`` when set, else ``<certs_dir>/receipt-log.key`` (made 0600 on first use);
    ``receipt-log.pub`` beside it is (re)written whenever it does not hold this key's verifier."""
    certs = Path(certs_dir)
    text = os.environ.get(LOG_KEY_ENV, "").strip()
    path = certs / LOG_KEY_FILE
    if not text:
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no log signing key: set {LOG_KEY_ENV} or create {path}")
            certs.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(Signer.generate(origin_for).text + "\n")
        text = path.read_text(encoding="utf-8").strip()
    try:
        signer = Signer.parse(text)
    except NoteError as exc:
        raise ValueError(f"log signing key ({LOG_KEY_ENV if os.environ.get(LOG_KEY_ENV) else path}): {exc}") from exc
    if signer.name != origin_for(signer.public):
        raise ValueError(f"log signing key: its name must be {origin_for(signer.public)}, not {signer.name}")
    pub = certs / LOG_PUB_FILE
    wanted = signer.verifier.text + "\n"
    try:
        current = pub.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != wanted and (create or current is None) and certs.is_dir():
        pub.write_text(wanted, encoding="utf-8")
    return signer


def load_verifier(path: Path | str) -> Verifier:
    try:
        return Verifier.parse(Path(path).read_text(encoding="utf-8"))
    except NoteError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str


def sign_checkpoint(signer: Signer, size: int, root: bytes) -> str:
    return signer.sign_note(checkpoint_text(signer.name, size, root))


def open_checkpoint(note: str, verifier: Verifier | None) -> Checkpoint:
    """Parse a checkpoint; with a verifier its signature must hold (NoteError otherwise)."""
    if verifier is not None:
        text = open_note(note, verifier)
    else:
        text, sep, _ = note.rpartition("\n\n")
        if not sep:
            raise NoteError("not a signed note")
        text += "\n"
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0] or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise NoteError("not a checkpoint (origin, tree size, root hash)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    if verifier is not None and lines[0] != verifier.name:
        raise NoteError(f"checkpoint origin {lines[0]!r} is not the key's name {verifier.name!r}")
    return Checkpoint(lines[0], int(lines[1]), root, note)
