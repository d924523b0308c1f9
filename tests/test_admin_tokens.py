"""enact_proxy/admin/tokens.py: named bearer tokens, made on first run, compared in constant time."""

from __future__ import annotations

import stat

import pytest

from enact_proxy.admin.tokens import AdminTokens


def test_without_configured_tokens_one_named_admin_is_made_with_mode_0600(tmp_path):
    tokens = AdminTokens.load([], tmp_path / "certs", environ={})
    path = tmp_path / "certs" / "admin.token"
    secret = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(secret) >= 32
    assert tokens.who(f"Bearer {secret}") == "admin"
    assert AdminTokens.load([], tmp_path / "certs", environ={}).who(f"Bearer {secret}") == "admin"  # kept


def test_configured_tokens_name_the_person(tmp_path):
    environ = {"ALICE": "a" * 20, "BOB": "b" * 20}
    tokens = AdminTokens.load([("alice@company.com", "ALICE"), ("bob@company.com", "BOB")], tmp_path, environ)
    assert tokens.who("Bearer " + "b" * 20) == "bob@company.com"
    for wrong in (None, "", "Bearer", "Bearer " + "a" * 19, "Basic " + "a" * 20, "bearer " + "a" * 20):
        assert tokens.who(wrong) is None
    assert not (tmp_path / "admin.token").exists()


def test_a_missing_or_short_token_stops_start_up_naming_the_variable_not_the_value(tmp_path):
    with pytest.raises(ValueError, match="ALICE") as raised:
        AdminTokens.load([("alice", "ALICE")], tmp_path, {"ALICE": "short-secret"})
    assert "short-secret" not in str(raised.value)
