"""Check an Enact receipt's inclusion proof with nothing but the log's public key (docs/receipts.md).

    enact-proxy receipts prove RUN_ID > proof.json
    python verify_proof.py receipt-log.pub proof.json        # exit 0: proven; 1: not

Independent of Enact's code on purpose: the standard library and ``cryptography`` (for Ed25519), and
the formats as docs/receipts.md states them — a C2SP signed-note checkpoint, an RFC 6962 Merkle tree,
a record's canonical JSON bytes. Anyone holding ``certs/receipt-log.pub`` can run it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class NotProven(Exception):
    pass


def canonical(record: Any) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def open_checkpoint(note: str, verifier_key: str) -> tuple[int, bytes]:
    """(tree size, root hash) of a checkpoint signed by ``verifier_key`` (``<name>+<hash>+<base64 key>``)."""
    name, key_hash, encoded = verifier_key.strip().split("+", 2)
    key = base64.b64decode(encoded)
    if len(key) != 33 or key[0] != 0x01:
        raise NotProven("the public key is not an Ed25519 signed-note verifier key")
    if hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() != key_hash:
        raise NotProven("the public key's hash does not match its name and key")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise NotProven("the checkpoint has no signature lines")
    text += "\n"
    for line in signatures.splitlines():
        signer, _, blob = line.removeprefix("\u2014 ").partition(" ")
        signature = base64.b64decode(blob)
        if signer != name or signature[:4].hex() != key_hash:
            continue  # someone else's signature (a witness): not ours to check
        try:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(signature[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NotProven("the checkpoint's signature does not verify") from None
        origin, size, root = text.split("\n")[:3]
        if origin != name:
            raise NotProven(f"the checkpoint's origin {origin!r} is not the key's name {name!r}")
        return int(size), base64.b64decode(root)
    raise NotProven(f"the checkpoint carries no signature by {name}")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: fold the audit path from the leaf up to the root."""
    if not 0 <= index < size:
        raise NotProven(f"leaf {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise NotProven("the audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise NotProven("the audit path is shorter than the tree is deep")
    return r


def verify(proof: dict[str, Any], verifier_key: str) -> str:
    size, root = open_checkpoint(proof["checkpoint"], verifier_key)
    if size != proof["tree_size"]:
        raise NotProven(f"the proof says tree size {proof['tree_size']}, its checkpoint {size}")
    leaf = hashlib.sha256(b"\x00" + canonical(proof["record"])).digest()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    if root_from_inclusion(proof["leaf_index"], size, leaf, path) != root:
        raise NotProven("the record and audit path do not lead to the checkpoint's root")
    record = proof["record"]
    return (f"ok: {record.get('kind')} {record.get('run_id')} ({record.get('action')}, {record.get('decision')}) "
            f"is record {proof['leaf_index']} of the {size} the log's key signed")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: verify_proof.py RECEIPT-LOG.PUB PROOF.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as key_file, open(argv[1], encoding="utf-8") as proof_file:
        key, proof = key_file.read(), json.load(proof_file)
    try:
        print(verify(proof, key))
    except (NotProven, KeyError, TypeError, ValueError) as exc:
        print(f"NOT PROVEN: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
