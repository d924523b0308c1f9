"""Canonical bytes, HMAC signatures and the receipt key (SPEC §6)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_ENV = "ENACT_RECEIPT_KEY"
KEY_FILE = "receipt.key"


def canonical_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def receipt_hash(receipt: dict[str, Any]) -> str:
    """SHA-256 of the canonical bytes of a receipt, signature included: what ``prev_hash`` holds."""
    return hashlib.sha256(canonical_bytes(receipt)).hexdigest()


@dataclass(frozen=True)
class ReceiptKey:
    secret: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:16]

    def sign(self, unsigned: dict[str, Any]) -> dict[str, str]:
        value = hmac.new(self.secret, canonical_bytes(unsigned), hashlib.sha256).hexdigest()
        return {"alg": "HMAC-SHA256", "key_id": self.key_id, "value": value}

    def signed(self, unsigned: dict[str, Any]) -> dict[str, Any]:
        return {**unsigned, "signature": self.sign(unsigned)}

    def signed_with_bytes(self, unsigned: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The signed record and its canonical bytes, serialising the record once, not twice."""
        body = canonical_bytes(unsigned)
        value = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        signature = {"alg": "HMAC-SHA256", "key_id": self.key_id, "value": value}
        return {**unsigned, "signature": signature}, _with_signature(body, unsigned, signature)

    def verify(self, record: dict[str, Any]) -> bool:
        signature = record.get("signature")
        if not isinstance(signature, dict) or signature.get("alg") != "HMAC-SHA256":
            return False
        unsigned = {k: v for k, v in record.items() if k != "signature"}
        expected = self.sign(unsigned)["value"]
        given = signature.get("value")
        return isinstance(given, str) and hmac.compare_digest(expected, given)

    @classmethod
    def load(cls, certs_dir: Path | str, *, create: bool = True) -> ReceiptKey:
        """``ENACT_RECEIPT_KEY`` when set, else ``<certs_dir>/receipt.key`` (made 0600 on first use)."""
        from_env = os.environ.get(KEY_ENV)
        if from_env:
            return cls(from_env.encode("utf-8"))
        path = Path(certs_dir) / KEY_FILE
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no receipt key: set {KEY_ENV} or create {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"receipt key file {path} is empty")
        return cls(text.encode("utf-8"))


def _with_signature(body: bytes, unsigned: dict[str, Any], signature: dict[str, str]) -> bytes:
    """``canonical_bytes({**unsigned, "signature": signature})`` from ``body`` = canonical(unsigned).

    With sorted keys the signature goes right before the first top-level key that sorts after it.
    Keys are located from the end: every top-level value after that point is serialised on its own,
    so the slice is found by length, never by searching text that payload values could contain.
    """
    later = sorted(k for k in unsigned if k > "signature")
    tail_length = 0
    for i, key in enumerate(later):
        tail_length += len(canonical_bytes(key)) + 1 + len(canonical_bytes(unsigned[key])) + (1 if i else 0)
    sig = b'"signature":' + canonical_bytes(signature)
    if not later:
        return body[:-1] + (b"," if len(unsigned) else b"") + sig + b"}"
    cut = len(body) - 1 - tail_length  # the start of the first later key
    prefix = body[:cut]
    # prefix ends with "," (more keys before) or "{" (none): keep it, then our member, then ","
    return prefix + sig + b"," + body[cut:]
