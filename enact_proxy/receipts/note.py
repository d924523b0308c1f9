"""C2SP signed notes with Ed25519 keys, in the text forms of Go's ``golang.org/x/mod/sumdb/note``.

- signer key:   ``PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 || 32-byte seed)>``
- verifier key: ``<name>+<8 hex key hash>+<base64(0x01 || 32-byte public key)>``
- key hash:     the first 4 bytes (big-endian) of SHA-256(name || "\\n" || 0x01 || public key)
- a note:       text (ending in "\\n"), a blank line, then lines ``— <name> <base64(key hash || signature)>``
                where the Ed25519 signature is over the text's bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 1
SIG_PREFIX = "\u2014 "  # an em dash and a space


class NoteError(ValueError):
    """A key or a note that is malformed, or a signature that does not verify."""


def key_hash(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what}: not base64") from exc


@dataclass(frozen=True)
class Verifier:
    name: str
    hash: int
    public: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # the base64 key may hold "+" itself
        if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
            raise NoteError("verifier key: expected <name>+<8 hex>+<base64 key>")
        name, hex_hash, data = parts
        try:
            claimed = int(hex_hash, 16)
        except ValueError as exc:
            raise NoteError("verifier key: the key hash is not hex") from exc
        raw = _unb64(data, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key: not an Ed25519 key (0x01 and 32 bytes)")
        if key_hash(name, raw[1:]) != claimed:
            raise NoteError("verifier key: the key hash does not match the name and key")
        return cls(name, claimed, raw[1:])

    @property
    def text(self) -> str:
        return f"{self.name}+{self.hash:08x}+{_b64(bytes([ALG_ED25519]) + self.public)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    hash: int
    seed: bytes

    @classmethod
    def generate(cls, name_for: object = None) -> Signer:
        """A fresh key; its name is ``name_for(public key)`` when given (the origin depends on the key)."""
        seed = os.urandom(32)
        public = _public(seed)
        name = name_for(public) if callable(name_for) else str(name_for or "enact-proxy")
        return cls(name, key_hash(name, public), seed)

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key: expected PRIVATE+KEY+<name>+<8 hex>+<base64 key>")
        name, hex_hash, data = parts[2:]
        if not _valid_name(name) or len(hex_hash) != 8:
            raise NoteError("signer key: bad name or key hash")
        raw = _unb64(data, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key: not an Ed25519 key (0x01 and a 32-byte seed)")
        public = _public(raw[1:])
        if key_hash(name, public) != int(hex_hash, 16):
            raise NoteError("signer key: the key hash does not match the name and key")
        return cls(name, int(hex_hash, 16), raw[1:])

    @property
    def public(self) -> bytes:
        return _public(self.seed)

    @property
    def text(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.hash:08x}+{_b64(bytes([ALG_ED25519]) + self.seed)}"

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.hash, self.public)

    def sign_note(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        if not text.endswith("\n"):
            raise NoteError("note text must end in a newline")
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(text.encode("utf-8"))
        return f"{text}\n{SIG_PREFIX}{self.name} {_b64(struct.pack('>I', self.hash) + signature)}\n"


def _public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` if it carries a valid signature by ``verifier``; NoteError otherwise."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note (no blank line before signature lines)")
    text += "\n"
    found = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:60]!r}")
        name, _, data = line[len(SIG_PREFIX):].partition(" ")
        raw = _unb64(data, "signature line")
        if len(raw) < 5:
            raise NoteError("signature line too short")
        if name != verifier.name or struct.unpack(">I", raw[:4])[0] != verifier.hash:
            continue
        found = True
        if not verifier.verify(text.encode("utf-8"), raw[4:]):
            raise NoteError(f"the signature by {name} does not verify")
    if not found:
        raise NoteError(f"no signature by {verifier.name}+{verifier.hash:08x}")
    return text
