"""Canonical bytes, HMAC signatures and the receipt key (SPEC §6)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

KEY_ENV = "ENACT_RECEIPT_KEY"
KEY_FILE = "receipt.key"


# The canonical form is json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

try:  # ~6x faster, and byte-identical for plain JSON without floats (see _plain and its tests)
    import orjson

    _FAST: Any = orjson.dumps
    _FAST_OPTIONS = orjson.OPT_SORT_KEYS
except ImportError:  # pragma: no cover - orjson is optional
    _FAST = None
    _FAST_OPTIONS = 0


def _plain(obj: Any) -> bool:
    """Only dicts, lists, str, int, bool and None, of exactly those types. Everything else — floats
    (whose text differs between the encoders), str or int subclasses, any other object — goes
    through the standard encoder, which defines the canonical bytes."""
    stack = [obj]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        else:
            return False
    return True


def _encode(obj: Any, *, plain: bool | None = None) -> bytes:
    """Canonical bytes; ``plain=True`` when the caller knows ``obj`` holds only plain JSON types."""
    if _FAST is not None and (plain if plain is not None else _plain(obj)):
        try:
            return bytes(_FAST(obj, option=_FAST_OPTIONS))
        except TypeError:  # non-str keys, integers past 64 bits, lone surrogates: the standard encoder decides
            pass
    return _ENCODE(obj).encode("utf-8")


def canonical_bytes(obj: Any) -> bytes:
    return _encode(obj)


def receipt_hash(receipt: dict[str, Any]) -> str:
    """SHA-256 of the canonical bytes of a receipt, signature included: what ``prev_hash`` holds."""
    return hashlib.sha256(canonical_bytes(receipt)).hexdigest()


@dataclass(frozen=True)
class ReceiptKey:
    secret: bytes

    @cached_property
    def key_id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:16]

    def sign(self, unsigned: dict[str, Any]) -> dict[str, str]:
        value = hmac.digest(self.secret, canonical_bytes(unsigned), "sha256").hex()
        return {"alg": "HMAC-SHA256", "key_id": self.key_id, "value": value}

    def signed(self, unsigned: dict[str, Any]) -> dict[str, Any]:
        return {**unsigned, "signature": self.sign(unsigned)}

    def signed_with_bytes(self, unsigned: dict[str, Any],
                          free: tuple[str, ...] | None = None) -> tuple[dict[str, Any], bytes]:
        """The signed record and its canonical bytes, serialising the record once, not twice.

        With sorted keys the signature member sits between the keys that sort before ``"signature"``
        and those after, so both canonical forms (without it, to sign; with it, to write) are joined
        from the two halves' serialisations. ``free`` names the members that may hold arbitrary values
        when the caller knows every other member holds only str, int, bool, None, lists and dicts."""
        if "signature" in unsigned:
            signed = self.signed(unsigned)
            return signed, canonical_bytes(signed)
        plain = None if free is None else all(_plain(unsigned.get(name)) for name in free)
        if plain and _FAST is not None:
            spliced = self._spliced(unsigned)
            if spliced is not None:
                return spliced
        head_keys = {k: v for k, v in unsigned.items() if k < "signature"}
        tail_keys = {k: v for k, v in unsigned.items() if k > "signature"}
        # ``free``: the only members that may hold arbitrary values (the rest are typed by the caller), so
        # only they are walked for types the fast encoder would write differently.
        head = _encode(head_keys, plain=plain)[1:-1] if head_keys else b""
        tail = _encode(tail_keys, plain=plain)[1:-1] if tail_keys else b""
        body = b"{" + head + (b"," if head and tail else b"") + tail + b"}"
        value = hmac.digest(self.secret, body, "sha256").hex()  # the one-shot C path: no HMAC object
        signature = {"alg": "HMAC-SHA256", "key_id": self.key_id, "value": value}
        member = b'"signature":{"alg":"HMAC-SHA256","key_id":"%s","value":"%s"}' % (
            self.key_id.encode("ascii"), value.encode("ascii"))
        line = b"{" + b",".join(part for part in (head, member, tail) if part) + b"}"
        return {**unsigned, "signature": signature}, line

    def _spliced(self, unsigned: dict[str, Any]) -> tuple[dict[str, Any], bytes] | None:
        """A log record's line from one serialisation: the signature member goes right after ``seq``.

        Only when that is provably the right place: ``seq`` is an int (digits, no quote), and every
        member sorting after it sorts after ``"signature"`` too and holds a str or None, so no later
        ``"seq":`` can occur (inside a JSON string a quote is always escaped). Else None."""
        if type(unsigned.get("seq")) is not int:
            return None
        for name, value in unsigned.items():
            if type(name) is not str:
                return None
            if name > "seq" and not (name > "signature" and (type(value) is str or value is None)):
                return None
        try:
            body = bytes(_FAST(unsigned, option=_FAST_OPTIONS))
        except TypeError:
            return None
        end = body.find(b",", body.rindex(b'"seq":'))
        if end < 0:
            end = len(body) - 1  # seq is the last member: the signature goes before the closing brace
        value = hmac.digest(self.secret, body, "sha256").hex()
        member = b',"signature":{"alg":"HMAC-SHA256","key_id":"%s","value":"%s"}' % (
            self.key_id.encode("ascii"), value.encode("ascii"))
        signature = {"alg": "HMAC-SHA256", "key_id": self.key_id, "value": value}
        return {**unsigned, "signature": signature}, body[:end] + member + body[end:]

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
