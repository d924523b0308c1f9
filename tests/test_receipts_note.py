"""enact_proxy/receipts/note.py and checkpoint.py against Go's golang.org/x/mod/sumdb/note test data.

The PeterNeumann keys and the signed note below are from ``sumdb/note/note_test.go`` (TestNewVerifier,
TestNewSigner, TestSign), https://github.com/golang/mod/blob/fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db/sumdb/note/note_test.go
"""

from __future__ import annotations

import os
import stat

import pytest

from enact_proxy.receipts.checkpoint import (
    LOG_KEY_ENV,
    load_log_signer,
    load_verifier,
    open_checkpoint,
    origin_for,
    sign_checkpoint,
)
from enact_proxy.receipts.note import NoteError, Signer, Verifier, open_note

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
           "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_go_signer_key_signs_exactly_the_go_note():
    signer = Signer.parse(GO_SKEY)
    assert signer.text == GO_SKEY
    assert signer.verifier.text == GO_VKEY
    assert signer.sign_note(GO_TEXT) == GO_NOTE  # Ed25519 is deterministic: byte for byte


def test_go_note_opens_with_the_go_verifier_key():
    assert open_note(GO_NOTE, Verifier.parse(GO_VKEY)) == GO_TEXT


@pytest.mark.parametrize("bad", [
    GO_VKEY.replace("c74f20a3", "c74f20a4"),  # key hash does not match
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length (Go's case)
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm (Go's case)
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3",
])
def test_mangled_verifier_keys_are_refused(bad: str):
    with pytest.raises(NoteError):
        Verifier.parse(bad)


def test_a_changed_text_or_signature_does_not_open():
    verifier = Verifier.parse(GO_VKEY)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("answer", "ANSWER"), verifier)
    other = Signer.generate("PeterNeumann")
    with pytest.raises(NoteError, match="no signature by"):
        open_note(other.sign_note(GO_TEXT), verifier)


def test_checkpoint_format_is_c2sp_tlog_checkpoint(tmp_path):
    signer = load_log_signer(tmp_path)
    note = sign_checkpoint(signer, 42, b"\x01" * 32)
    body, _, sig = note.partition("\n\n")
    assert body.split("\n") == [origin_for(signer.public), "42", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]
    assert sig.startswith(f"\u2014 {origin_for(signer.public)} ") and sig.endswith("\n")
    checkpoint = open_checkpoint(note, load_verifier(tmp_path / "receipt-log.pub"))
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (signer.name, 42, b"\x01" * 32)


def test_log_key_made_on_first_run_0600_with_its_public_half(tmp_path):
    signer = load_log_signer(tmp_path)
    key_file = tmp_path / "receipt-log.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip().startswith(f"PRIVATE+KEY+enact-proxy/{origin_for(signer.public)[12:]}+")
    assert (tmp_path / "receipt-log.pub").read_text().strip() == signer.verifier.text
    assert load_log_signer(tmp_path) == signer  # the same key on the next start


def test_log_key_from_the_environment(tmp_path, monkeypatch):
    made = Signer.generate(origin_for)
    monkeypatch.setenv(LOG_KEY_ENV, made.text)
    assert load_log_signer(tmp_path) == made
    assert not (tmp_path / "receipt-log.key").exists()
    monkeypatch.setenv(LOG_KEY_ENV, GO_SKEY)  # a valid key, but not named for its origin
    with pytest.raises(ValueError, match="its name must be enact-proxy/"):
        load_log_signer(tmp_path)
    os.environ.pop(LOG_KEY_ENV)
