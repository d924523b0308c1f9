"""End to end: ``admin.webhook_url`` gets one notice per new pending approval made by a real agent request."""

from __future__ import annotations

from pathlib import Path

import yaml

from enact_proxy.sandbox import SandboxGitHub
from tests.e2e.harness import RunningSidecar, start_sidecar, wait_until, write_config
from tests.e2e.test_approvals import WORKFLOWS, Admin, agent, merge, open_pull
from tests.test_admin_webhook import Receiver, receiver  # noqa: F401 - the fixture


def test_each_new_pending_approval_is_posted_once(tmp_path: Path, github: SandboxGitHub,
                                                  receiver: Receiver) -> None:  # noqa: F811
    config = write_config(tmp_path, systems={"github": {"upstream": github.url, "git_upstream": github.url}},
                          workflows=WORKFLOWS, policies=[{"require_approval": {"actions": ["github.merge_pr"]}}])
    raw = yaml.safe_load(config.read_text())
    raw["admin"] = {"webhook_url": receiver.url}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    sidecar: RunningSidecar = start_sidecar(tmp_path)
    try:
        session, admin = agent(sidecar), Admin(sidecar)
        number = open_pull(github, "agent/notify")
        assert merge(session, number).status_code == 403
        wait_until(lambda: len(receiver.bodies) == 1, what="the webhook notice")
        (pending,) = admin.pending()
        text = receiver.bodies[0]["text"]
        assert pending["id"] in text and "github.merge_pr" in text and "agent@company.com" in text
        assert admin.token not in str(receiver.bodies) and receiver.url not in "".join(sidecar.output)

        assert merge(session, number).status_code == 403  # the same approval, still pending: no new notice
        assert admin.decide(pending["id"], "approve").status_code == 200
        assert merge(session, number).status_code == 200
        other = open_pull(github, "agent/notify-2")
        assert merge(session, other).status_code == 403  # a new approval: a new notice
        wait_until(lambda: len(receiver.bodies) == 2, what="the second notice")
        assert [b["approval"]["id"] for b in receiver.bodies][0] == pending["id"]
        assert len(receiver.bodies) == 2
    finally:
        sidecar.stop()


