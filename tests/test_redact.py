"""enact_proxy/redact.py: secrets never reach disk; the masked paths are listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest, ActionResult, RequestSummary
from enact_proxy.policy import passed
from enact_proxy.redact import MASK, Redactor, is_secret_name

BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.S1gn4tur3"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PASSWORD = "hunter2-Corr3ct-Horse"
HUBSPOT_PAT = "pat-na1-0f0e0d0c-1234-5678-9abc-def012345678"
SECRETS = [BEARER, GHP, PASSWORD, HUBSPOT_PAT]

PAYLOAD = {
    "email": "jane@acme.com",
    "headers": {"Authorization": f"Bearer {BEARER}", "X-Trace": "ok"},
    "properties": {"note": f"push with {GHP} please", "password": PASSWORD},
    "steps": [{"config": {"api_key": HUBSPOT_PAT}}, {"auth": f"bearer {BEARER}"}],
    "dsn": f"host=db user=app password={PASSWORD} dbname=crm",
    "url": f"postgresql://app:{PASSWORD}@db:5432/app",
    "bare": GHP,
    "json_text": f'{{"password": "{PASSWORD}"}}',
}
EXPECTED_PATHS = {"headers.Authorization", "properties.note", "properties.password", "steps[0].config.api_key",
                  "steps[1].auth", "dsn", "url", "bare", "json_text"}


def test_redact_masks_by_name_shape_and_text_and_lists_paths():
    clean, masked = Redactor().redact(PAYLOAD, "payload")
    assert set(masked) == {f"payload.{p}" for p in EXPECTED_PATHS}
    text = repr(clean)
    for secret in SECRETS:
        assert secret not in text
    assert clean["email"] == "jane@acme.com"
    assert clean["headers"]["X-Trace"] == "ok"
    assert clean["properties"]["password"] == MASK
    assert clean["properties"]["note"] == f"push with {MASK} please"
    assert clean["url"] == f"postgresql://app:{MASK}@db:5432/app"


@pytest.mark.parametrize("name", ["Authorization", "cookie", "Set-Cookie", "access_token", "hubspot_token",
                                  "API_KEY", "x-api-key", "PGPASSWORD", "db_password", "client_secret"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["email", "company", "tokens_used", "dealname", "branch"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_known_secrets_are_scrubbed_from_text():
    redactor = Redactor(known_secrets=["sidecar-upstream-pw"])
    assert "sidecar-upstream-pw" not in redactor.scrub_text("login failed with sidecar-upstream-pw")


def test_ordinary_text_is_untouched():
    clean, masked = Redactor().redact({"note": "the bearer of bad news; no password here", "n": 3})
    assert clean == {"note": "the bearer of bad news; no password here", "n": 3}
    assert masked == []


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


def test_secrets_never_reach_any_file_under_the_receipts_dir(store, clock, receipt_dir):
    def echoing(ctx):  # a careless policy that repeats the payload in its reason
        return passed("echoing", f"saw {ctx.payload}")

    engine = Engine(policies=[echoing], workflows={"w": ["hubspot.create_contact"]}, actor_email="a@b.c",
                    receipts=store, clock=clock)
    action = ActionRequest(system="hubspot", action="create_contact", payload=PAYLOAD,
                           request=RequestSummary(method="POST", host="api.hubapi.com",
                                                  path=f"/crm/v3/objects/contacts?hapikey={HUBSPOT_PAT}"))
    verdict = engine.judge(action)
    ticket = engine.open(verdict).result(timeout=10)
    signed = engine.close(ticket, [ActionResult(action="create_contact", system="hubspot", success=False,
                                                output={"error": f"401 for Bearer {BEARER}"})]).result(timeout=10)
    blocked = engine.record(engine.refuse(action, f"bad token {GHP}")).result(timeout=10)
    store.close()
    on_disk = _all_bytes(receipt_dir)
    assert b"jane@acme.com" in on_disk  # the receipts are there
    for secret in SECRETS:
        assert secret.encode() not in on_disk, secret
    assert {f"payload.{p}" for p in EXPECTED_PATHS} <= set(signed.redacted)
    assert "actions_taken[0].output.error" in signed.redacted
    assert {f"payload.{p}" for p in EXPECTED_PATHS} <= set(blocked.redacted)
