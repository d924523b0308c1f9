"""From ref updates to the github actions the engine judges."""

from __future__ import annotations

from enact_proxy.gitwire import actions_for_push, ref_actions_for_push
from enact_proxy.gitwire.packs import CommitFiles, PushAnalysis, RefAnalysis
from enact_proxy.gitwire.receive_pack import ReceivePackRequest, RefCommand
from enact_proxy.models import RequestSummary

Z = "0" * 40
A, B, C = "a" * 40, "b" * 40, "c" * 40
WHERE = RequestSummary(method="POST", host="github.com", path="/acme/app.git/git-receive-pack")


def _push(*items: RefAnalysis) -> tuple[ReceivePackRequest, PushAnalysis]:
    req = ReceivePackRequest(commands=[i.command for i in items], capabilities=frozenset())
    return req, PushAnalysis(refs=items)


def test_each_kind_of_ref_update() -> None:
    commits = (
        CommitFiles(sha=B, files=("a.py", "b.py")),
        CommitFiles(sha=C, files=("b.py", "new.py"), renames=(("old.py", "new.py"),)),
    )
    req, analysis = _push(
        RefAnalysis(RefCommand(Z, C, "refs/heads/agent/x"), commits, force=False),
        RefAnalysis(RefCommand(A, C, "refs/heads/main"), commits, force=True),
        RefAnalysis(RefCommand(A, Z, "refs/heads/old"), (), force=False),
        RefAnalysis(RefCommand(Z, B, "refs/heads/empty"), (), force=False),
        RefAnalysis(RefCommand(Z, A, "refs/tags/v1"), (), force=False),
        RefAnalysis(RefCommand(Z, A, "refs/notes/commits"), (), force=False),
    )

    pairs = ref_actions_for_push(req, analysis, "acme", "app", WHERE)

    summary = [(ref, a.action) for ref, a in pairs]
    assert summary == [
        ("refs/heads/agent/x", "create_branch"),
        ("refs/heads/agent/x", "push_commit"),
        ("refs/heads/main", "push_commit"),
        ("refs/heads/old", "delete_branch"),
        ("refs/heads/empty", "create_branch"),
        ("refs/tags/v1", "push_tag"),
        ("refs/notes/commits", "unknown"),
    ]
    actions = [a for _, a in pairs]
    assert all(a.system == "github" and a.request == WHERE for a in actions)
    assert actions[0].payload == {"owner": "acme", "repo": "app", "branch": "agent/x", "sha": C}
    assert actions[1].payload["files"] == ["a.py", "b.py", "new.py"]
    assert actions[1].payload["force"] is False
    assert actions[1].payload["commits"] == [
        {"sha": B, "files": ["a.py", "b.py"], "renames": []},
        {"sha": C, "files": ["b.py", "new.py"], "renames": [["old.py", "new.py"]]},
    ]
    assert actions[2].payload["force"] is True and actions[2].payload["branch"] == "main"
    assert actions[3].payload == {"owner": "acme", "repo": "app", "branch": "old"}
    assert actions[5].payload == {"owner": "acme", "repo": "app", "tag": "v1", "sha": A, "files": [], "commits": []}
    assert actions[6].payload == {"owner": "acme", "repo": "app", "ref": "refs/notes/commits"}
    assert actions_for_push(req, analysis, "acme", "app", WHERE) == actions
