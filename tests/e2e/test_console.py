"""End to end: the console in a real browser (Debian's chromium driven by playwright) against a real sidecar.

A person signs in with the admin token, sees the approval a real agent request is held for, approves it
in the page, and sees the agent's retry pass: in the live list and in the one-receipt view with its
verification status. What agents wrote (a ``<script>`` title, a branch name built to break out of an
attribute) renders as text. A wrong token shows an error and no data. The test takes the screenshot the
README shows (docs/console.png), writing it when it is missing or with ENACT_UPDATE_SCREENSHOT=1.

Never ``playwright install`` (it downloads browsers): the test drives ``/usr/bin/chromium``. Without
chromium or playwright it skips, saying why, except under CI=true, where it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.sandbox import SandboxGitHub
from tests.e2e.harness import RunningSidecar, wait_until
from tests.e2e.test_approvals import GITHUB, Admin, agent, merge, open_pull

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-proxy-server"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
TIMEOUT_MS = 20_000
CHECKPOINTS = importlib.util.find_spec("enact_proxy.receipts.prove") is not None  # the Merkle-checkpointed log

SCRIPT_TITLE = "<script>alert(1)</script> please merge"
EVIL_BRANCH = 'agent/"><img src=x onerror=alert(2)>'
WORKFLOWS = {"agent_git": ["github.read", "github.create_branch", "github.create_pr", "github.merge_pr"]}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the console tests must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    opened.dialogs = []  # every alert/confirm/prompt a page opened: an escaped console opens none
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()


@pytest.fixture
def approving(sidecar_factory: Callable[..., RunningSidecar], github: SandboxGitHub) -> RunningSidecar:
    return sidecar_factory(systems={"github": {"upstream": github.url, "git_upstream": github.url}},
                           workflows=WORKFLOWS,
                           policies=[{"require_approval": {"actions": ["github.create_pr", "github.merge_pr"]}}])


def sign_in(page: Any, sidecar: RunningSidecar, token: str) -> None:
    page.goto(f"http://{sidecar.admin}/")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")


def test_sign_in_approve_a_held_merge_and_see_its_receipt(approving: RunningSidecar, github: SandboxGitHub,
                                                          page: Any) -> None:
    admin, session = Admin(approving), agent(approving)
    # What agents write: a branch name crafted to break out of an attribute, a <script> in a title.
    main = github.branch_sha("acme", "app", "main")
    created = session.post(f"{GITHUB}/repos/acme/app/git/refs", json={"ref": f"refs/heads/{EVIL_BRANCH}", "sha": main},
                           timeout=30)
    assert created.status_code == 201, created.text
    held_pr = session.post(f"{GITHUB}/repos/acme/app/pulls",
                           json={"head": EVIL_BRANCH, "base": "main", "title": SCRIPT_TITLE}, timeout=30)
    assert held_pr.status_code == 403 and "is pending" in held_pr.json()["message"]
    number = open_pull(github, "agent/release-notes")
    held = merge(session, number)
    assert held.status_code == 403 and "is pending" in held.json()["message"]
    assert len(admin.pending()) == 2

    sign_in(page, approving, admin.token)
    approvals = page.locator("#approvals li.approval")
    approvals.nth(1).wait_for()
    assert approvals.count() == 2
    assert page.locator("#whoami").inner_text() == "signed in as admin"  # the token's name, the approver
    assert page.title() == "(2) Enact console"
    merge_row = approvals.filter(has_text="github.merge_pr")
    pr_row = approvals.filter(has_text="github.create_pr")
    assert '"number": ' + str(number) in merge_row.locator("pre").inner_text()
    # Agent-written text is shown as text, nowhere as markup.
    assert SCRIPT_TITLE in pr_row.locator("pre").inner_text()
    branch_cell = page.locator("#receipts td.target", has_text=EVIL_BRANCH)
    branch_cell.first.wait_for()
    assert branch_cell.first.inner_text() == EVIL_BRANCH
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0

    shot = page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("ENACT_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():  # not on every run: it is tracked
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot)

    merge_row.locator("input.reason").fill("release notes only <b>ok</b>")
    merge_row.locator("button.approve").click()
    merge_row.wait_for(state="detached")  # no longer pending
    assert [a["action"] for a in admin.pending()] == ["github.create_pr"]

    passed = merge(session, number)
    assert passed.status_code == 200 and passed.headers["X-Enact-Decision"] == "PASS", passed.text
    run_id = passed.headers["X-Enact-Receipt"]
    row = page.locator(f'#receipts tr[data-run-id="{run_id}"]')
    row.wait_for()  # the live list picked it up without a reload
    assert "approved by admin" in row.inner_text() and "github.merge_pr" in row.inner_text()
    approve_row = page.locator("#receipts tr", has_text="enact.approve")
    assert "admin" in approve_row.first.inner_text()

    if CHECKPOINTS:  # the log publishes signed checkpoints: wait until one covers the receipt
        wait_until(lambda: admin.get(f"/api/receipts/{run_id}").json()["verification"].get("inclusion") is True,
                   what="a checkpoint covering the receipt")
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"/receipts/{run_id}$"))
    signature = page.locator("#verification li.check", has_text="signature")
    signature.wait_for()
    assert "check ok" in (signature.get_attribute("class") or "") and "holds" in signature.inner_text()
    if CHECKPOINTS:
        included = page.locator("#verification li.check", has_text="inclusion")
        assert "check ok" in (included.get_attribute("class") or "") and "holds" in included.inner_text()
        assert "tree size" in page.locator("#verification li.check", has_text="checkpoint").inner_text()
    assert page.locator("#run-id").inner_text() == run_id
    summary = page.locator("#summary").inner_text()
    assert "approved by admin" in summary and "github.merge_pr" in summary
    assert page.locator("#decision").inner_text() == "PASS"

    # The one-receipt view of what the crafted branch name made: shown as text there too.
    page.goto(f"http://{approving.admin}/receipts/{created.headers['X-Enact-Receipt']}")
    page.locator("#summary dd").first.wait_for()
    assert EVIL_BRANCH in json.loads(page.locator("#payload").inner_text())["branch"]
    assert page.locator("img").count() == 0

    # Deny the other one from the list, with a reason the agent then reads.
    page.goto(f"http://{approving.admin}/")  # still signed in: the token is in this tab's sessionStorage
    pr_row = page.locator("#approvals li.approval", has_text="github.create_pr")
    pr_row.locator("input.reason").fill("no <script> in titles")
    pr_row.locator("button.deny").click()
    pr_row.wait_for(state="detached")
    retry = session.post(f"{GITHUB}/repos/acme/app/pulls",
                         json={"head": EVIL_BRANCH, "base": "main", "title": SCRIPT_TITLE}, timeout=30)
    assert retry.status_code == 403 and "was denied by admin: no <script> in titles" in retry.json()["message"]
    assert page.dialogs == []


def test_a_wrong_token_shows_an_error_and_no_data(approving: RunningSidecar, github: SandboxGitHub,
                                                  page: Any) -> None:
    session = agent(approving)
    assert session.get(f"{GITHUB}/repos/acme/app", timeout=30).status_code == 200  # a receipt exists
    merge(session, open_pull(github, "agent/secret-plan"))  # and a pending approval
    sign_in(page, approving, "not-the-admin-token")
    error = page.locator("#error")
    error.wait_for()
    assert "refused" in error.inner_text()
    assert page.locator("#content").is_hidden() and page.locator("#signin-panel").is_visible()
    assert page.locator("#receipts tr").count() == 0 and page.locator("#approvals li").count() == 0
    assert "agent/secret-plan" not in page.content() and "github.read" not in page.content()
    assert page.evaluate("() => sessionStorage.length") == 0  # the refused token is not kept

    sign_in(page, approving, Admin(approving).token)  # the right one then works
    page.locator("#approvals li.approval").first.wait_for()
    assert page.locator("#error").is_hidden()
    wait_until(lambda: page.locator("#receipts tr").count() >= 1, what="receipts listed", timeout=10)
    assert page.dialogs == []


def test_an_edited_receipt_shows_as_failing_verification(approving: RunningSidecar, github: SandboxGitHub,
                                                         page: Any) -> None:
    admin, session = Admin(approving), agent(approving)
    read = session.get(f"{GITHUB}/repos/acme/app", timeout=30)
    assert read.status_code == 200
    run_id = read.headers["X-Enact-Receipt"]
    wait_until(lambda: admin.get(f"/api/receipts/{run_id}").status_code == 200, what="the receipt written")
    if CHECKPOINTS:
        wait_until(lambda: admin.get(f"/api/receipts/{run_id}").json()["verification"].get("inclusion") is True,
                   what="a checkpoint covering the receipt")
    edited = False
    for path in approving.receipts_dir.rglob("*.json*"):  # one file per receipt, or segments of JSON Lines
        data = path.read_bytes()
        if run_id.encode() in data and b'"repo":"app"' in data:
            path.write_bytes(data.replace(b'"repo":"app"', b'"repo":"apq"'))  # same length: nothing else moves
            edited = True
    assert edited
    verification = admin.get(f"/api/receipts/{run_id}").json()["verification"]
    assert verification["signature"] is False
    if CHECKPOINTS:
        assert verification["inclusion"] is False and verification["inclusion_problem"]

    sign_in(page, approving, admin.token)
    page.goto(f"http://{approving.admin}/receipts/{run_id}")
    signature = page.locator("#verification li.check", has_text="signature")
    signature.wait_for()
    assert "check bad" in (signature.get_attribute("class") or "") and "FAILS" in signature.inner_text()
