"""enact_proxy/receipts/signing.py: canonical bytes, HMAC signatures, key id, the receipt key."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enact_proxy.receipts.signing import KEY_ENV, ReceiptKey, canonical_bytes, receipt_hash
from tests.conftest import draft


def test_canonical_bytes_are_sorted_compact_utf8():
    assert canonical_bytes({"b": 1, "a": {"z": "Zoë", "y": [1, 2]}}) == '{"a":{"y":[1,2],"z":"Zoë"},"b":1}'.encode()


def test_signature_is_hmac_sha256_over_canonical_bytes_without_signature():
    key = ReceiptKey(b"k" * 64)
    body = draft(1, payload={"name": "Zoë ✓"})
    signed = key.signed(body)
    unsigned = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert signed["signature"] == {
        "alg": "HMAC-SHA256",
        "key_id": hashlib.sha256(b"k" * 64).hexdigest()[:16],
        "value": hmac.new(b"k" * 64, unsigned, hashlib.sha256).hexdigest(),
    }
    assert {k: v for k, v in signed.items() if k != "signature"} == body


def test_key_id_is_first_16_hex_of_sha256_of_key():
    assert ReceiptKey(b"secret").key_id == hashlib.sha256(b"secret").hexdigest()[:16]
    assert len(ReceiptKey(b"secret").key_id) == 16


def test_receipt_hash_covers_the_signature():
    signed = ReceiptKey(b"k").signed(draft())
    assert receipt_hash(signed) == hashlib.sha256(canonical_bytes(signed)).hexdigest()
    assert receipt_hash(signed) != receipt_hash({k: v for k, v in signed.items() if k != "signature"})


def test_verify_accepts_own_and_rejects_tampered_or_foreign():
    key = ReceiptKey(b"k1")
    signed = key.signed(draft())
    assert key.verify(signed)
    assert not key.verify({**signed, "decision": "BLOCK"})
    assert not ReceiptKey(b"k2").verify(signed)
    assert not key.verify({k: v for k, v in signed.items() if k != "signature"})
    assert not key.verify({**signed, "signature": {**signed["signature"], "alg": "HMAC-SHA1"}})
    assert not key.verify({**signed, "signature": {**signed["signature"], "value": None}})


def test_key_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, "from-the-env ")
    key = ReceiptKey.load(tmp_path / "certs")
    assert key.secret == b"from-the-env "  # the env value is used as given
    assert not (tmp_path / "certs" / "receipt.key").exists()


def test_key_file_created_0600_with_64_hex_chars(tmp_path):
    certs = tmp_path / "certs"
    key = ReceiptKey.load(certs)
    path = certs / "receipt.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", text.strip())
    assert key.secret == text.strip().encode()
    assert ReceiptKey.load(certs) == key  # the second load reads the same key


def test_key_file_whitespace_is_stripped(tmp_path):
    (tmp_path / "receipt.key").write_text("  abc123\n\n")
    assert ReceiptKey.load(tmp_path).secret == b"abc123"


def test_missing_key_without_create_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        ReceiptKey.load(tmp_path, create=False)
    assert not (tmp_path / "receipt.key").exists()


def test_empty_key_file_raises(tmp_path):
    (tmp_path / "receipt.key").write_text("  \n")
    with pytest.raises(ValueError):
        ReceiptKey.load(tmp_path)


def test_signed_with_bytes_equals_serialising_the_signed_record_again() -> None:
    import random
    import string

    from enact_proxy.receipts.signing import canonical_bytes

    key = ReceiptKey(b"splice-key")
    rng = random.Random(7)

    def value(depth: int = 0) -> object:
        roll = rng.random()
        if depth > 2 or roll < 0.3:
            return rng.choice([None, True, 1.5, 3, "".join(rng.choice(string.printable + 'é"\\') for _ in range(6))])
        if roll < 0.6:
            return [value(depth + 1) for _ in range(3)]
        return {rng.choice(["system", "signature", "t", "workflow", "x"]): value(depth + 1) for _ in range(3)}

    records = [{}, {"a": 1}, {"system": "github", "payload": {"system": ',"system":'}, "workflow": None}]
    keys = ["system", "timestamp", "workflow", "actions_taken", "run_id", "signaturf", "sz"]
    records += [{rng.choice(keys): value() for _ in range(rng.randint(0, 8))} for _ in range(2000)]
    for record in records:
        signed, body = key.signed_with_bytes(record)
        assert signed == key.signed(record)
        assert body == canonical_bytes(signed)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(JSON)
def test_canonical_bytes_are_exactly_those_of_json_dumps_for_any_json_value(value: object) -> None:
    # The fast encoder may only be used where it is byte-identical to SPEC §6's definition.
    try:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no canonical bytes either way
        with pytest.raises(UnicodeEncodeError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def test_canonical_bytes_of_the_edge_cases_the_fast_encoder_differs_on() -> None:
    for value in [1e16, 1.5e-7, float("inf"), 2**70, {1: "a"}, {"x": [0.1, -0.0]}, "\x7f\x1f\u2028"]:
        assert canonical_bytes(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                                    ensure_ascii=False).encode("utf-8")


def test_a_log_records_line_spliced_after_seq_equals_serialising_the_signed_record() -> None:
    # The log writer's path: typed records with an int seq, the signature member put in right after it.
    import random
    import string

    from enact_proxy.receipts.signing import canonical_bytes

    key = ReceiptKey(b"splice-key")
    rng = random.Random(11)
    tricky = ['"seq":1,', ',"seq":', '"signature":', "\\", '"', "é", "}", "{"]

    def text() -> str:
        return "".join(rng.choice([*string.printable, *tricky]) for _ in range(rng.randint(0, 8)))

    def value(depth: int = 0) -> object:
        roll = rng.random()
        if depth > 2 or roll < 0.4:
            return rng.choice([None, True, 3, -7, text()])
        if roll < 0.7:
            return [value(depth + 1) for _ in range(3)]
        return {rng.choice(["seq", "system", "signature", "x", text()]): value(depth + 1) for _ in range(3)}

    names = ["action", "payload", "prev_hash", "run_id", "system", "timestamp", "workflow", "sequel", "sf", "sz",
             "server", "t"]
    spliced = 0
    for _ in range(3000):
        record = {rng.choice(names): rng.choice([value(), text(), None]) for _ in range(rng.randint(0, 7))}
        record["seq"] = rng.choice([0, 5, 123456, -1, "7", None])
        free = tuple(record)  # every member walked: the property must hold for any value
        signed, line = key.signed_with_bytes(record, free)
        assert signed == key.signed(record)
        assert line == canonical_bytes(signed)
        spliced += key._spliced(record) is not None
    assert spliced > 300  # the fast path was exercised, not only the fallback
