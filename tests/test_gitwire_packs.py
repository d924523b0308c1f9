"""Pack analysis on pushes captured from the real git client."""
# ruff: noqa: F811 - pytest fixtures imported from tests.gitwire_fixtures are redefined as arguments

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enact_proxy.gitwire import EmptySource, GitWireError, analyse_push, parse_receive_pack
from enact_proxy.gitwire.packs import inflate_pack
from enact_proxy.gitwire.receive_pack import ReceivePackRequest, RefCommand
from tests.gitwire_fixtures import (  # noqa: F401 - pytest fixtures
    GitHttpServer,
    RepoSource,
    Workspace,
    capture_push,
    git,
    git_server,
    workspace,
)


def _seed(ws: Workspace) -> str:
    base = ws.commit("initial", {"README.md": "hello\n", "src/app.py": "print('a')\n"})
    ws.publish("main")
    return base


def _analyse(ws: Workspace, body: bytes):
    req = parse_receive_pack(body)
    return req, analyse_push(req, RepoSource(ws.bare))


def test_new_branch_lists_each_new_commit_and_its_files(workspace: Workspace, git_server: GitHttpServer) -> None:
    base = _seed(workspace)
    git(workspace.work, "checkout", "--quiet", "-b", "agent/feature")
    first = workspace.commit("one", {"src/a.py": "a\n"})
    second = workspace.commit("two", {"src/b.py": "b\n", "README.md": "changed\n"})

    req, analysis = _analyse(workspace, capture_push(workspace, git_server, "agent/feature"))

    item = analysis.for_ref("refs/heads/agent/feature")
    assert item.command.old == "0" * 40 and item.command.new == second
    assert [c.sha for c in item.new_commits] == [first, second]
    assert item.new_commits[0].files == ("src/a.py",)
    assert set(item.new_commits[1].files) == {"src/b.py", "README.md"}
    assert base not in [c.sha for c in item.new_commits]
    assert item.force is False


def test_fast_forward_update_is_not_forced(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    tip = workspace.commit("more", {"src/app.py": "print('b')\n"})

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "main"))

    item = analysis.for_ref("refs/heads/main")
    assert item.force is False
    assert [(c.sha, c.files) for c in item.new_commits] == [(tip, ("src/app.py",))]


def test_rewritten_history_is_forced(workspace: Workspace, git_server: GitHttpServer) -> None:
    base = _seed(workspace)
    workspace.commit("published", {"src/app.py": "v2\n"})
    workspace.publish("main")
    git(workspace.work, "reset", "--quiet", "--hard", base)
    replacement = workspace.commit("rewritten", {"src/app.py": "v3\n"})

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "--force", "main"))

    item = analysis.for_ref("refs/heads/main")
    assert item.force is True
    assert [c.sha for c in item.new_commits] == [replacement]


def test_force_push_to_an_older_commit_carries_no_commits_and_is_forced(
    workspace: Workspace, git_server: GitHttpServer
) -> None:
    base = _seed(workspace)
    workspace.commit("published", {"src/app.py": "v2\n"})
    workspace.publish("main")
    git(workspace.work, "reset", "--quiet", "--hard", base)

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "--force", "main"))

    item = analysis.for_ref("refs/heads/main")
    assert item.force is True and item.new_commits == ()


def test_delete_has_no_pack_and_no_commits(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    workspace.publish("main:refs/heads/old")

    req, analysis = _analyse(workspace, capture_push(workspace, git_server, ":old"))

    assert req.pack == b""
    item = analysis.for_ref("refs/heads/old")
    assert item.command.is_delete and item.new_commits == () and item.force is False


def test_annotated_tag_on_a_new_commit(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    tagged = workspace.commit("release", {"VERSION": "1.0\n"})
    git(workspace.work, "tag", "-a", "v1.0", "-m", "release 1.0")

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "refs/tags/v1.0"))

    item = analysis.for_ref("refs/tags/v1.0")
    assert item.command.new != tagged  # the tag object, not the commit
    assert [(c.sha, c.files) for c in item.new_commits] == [(tagged, ("VERSION",))]


def test_twenty_five_file_commit_counts_twenty_five(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    workspace.files_commit("bulk", 25, "bulk")

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "main"))

    (commit,) = analysis.for_ref("refs/heads/main").new_commits
    assert len(commit.files) == 25
    assert sorted(commit.files) == sorted(f"bulk/f{i}.txt" for i in range(25))


def test_each_commit_of_a_series_is_counted_on_its_own(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    small1 = workspace.files_commit("small", 1, "one")
    large = workspace.files_commit("large", 25, "many")
    small2 = workspace.files_commit("small again", 2, "two")

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "main"))

    item = analysis.for_ref("refs/heads/main")
    assert [(c.sha, len(c.files)) for c in item.new_commits] == [(small1, 1), (large, 25), (small2, 2)]
    assert len(item.files) == 28


def test_deletions_renames_and_mode_changes_are_counted(workspace: Workspace, git_server: GitHttpServer) -> None:
    workspace.commit(
        "initial",
        {
            "gone1.txt": "one\n",
            "gone2.txt": "two\n",
            "old/name.txt": "a file that keeps its content while moving\n" * 20,
            "run.sh": "echo hi\n",
        },
    )
    workspace.publish("main")
    git(workspace.work, "rm", "--quiet", "gone1.txt", "gone2.txt")
    git(workspace.work, "mv", "old/name.txt", "new-name.txt")
    (workspace.work / "run.sh").chmod(0o755)
    changed = workspace.commit("tidy")

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "main"))

    (commit,) = analysis.for_ref("refs/heads/main").new_commits
    assert commit.sha == changed
    assert sorted(commit.files) == ["gone1.txt", "gone2.txt", "new-name.txt", "run.sh"]
    assert commit.renames == (("old/name.txt", "new-name.txt"),)


def test_branch_based_on_another_branch_counts_only_its_own_commits(
    workspace: Workspace, git_server: GitHttpServer
) -> None:
    _seed(workspace)
    git(workspace.work, "checkout", "--quiet", "-b", "develop")
    workspace.files_commit("develop work", 5, "dev")
    workspace.publish("develop")
    git(workspace.work, "checkout", "--quiet", "-b", "agent/on-develop")
    mine = workspace.files_commit("mine", 3, "mine")

    _, analysis = _analyse(workspace, capture_push(workspace, git_server, "agent/on-develop"))

    item = analysis.for_ref("refs/heads/agent/on-develop")
    assert [(c.sha, len(c.files)) for c in item.new_commits] == [(mine, 3)]
    assert all(path.startswith("mine/") for path in item.files)


def test_thin_pack_needs_the_upstream_objects(workspace: Workspace, git_server: GitHttpServer) -> None:
    big = "".join(f"line {i} of a long file that git will want to delta against\n" for i in range(2000))
    workspace.commit("big", {"big.txt": big})
    workspace.publish("main")
    workspace.commit("tweak", {"big.txt": big.replace("line 1000 ", "LINE 1000 ")})

    body = capture_push(workspace, git_server, "main")
    req = parse_receive_pack(body)

    assert len(req.pack) < 4000  # a delta, not the whole file
    with pytest.raises(GitWireError, match=r"cannot count files: object [0-9a-f]{40} missing"):
        inflate_pack(req.pack, EmptySource())
    source = RepoSource(workspace.bare)
    (commit,) = analyse_push(req, source).for_ref("refs/heads/main").new_commits
    assert commit.files == ("big.txt",)
    assert source.requested  # the base came from the upstream's objects


def test_missing_parent_refuses_with_the_missing_id(workspace: Workspace, git_server: GitHttpServer) -> None:
    base = _seed(workspace)
    workspace.commit("more", {"x.txt": "x\n"})
    req = parse_receive_pack(capture_push(workspace, git_server, "main"))

    with pytest.raises(GitWireError, match=f"cannot count files: object {base} missing"):
        analyse_push(req, EmptySource())


def test_unknown_old_id_is_treated_as_forced(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    workspace.commit("more", {"x.txt": "x\n"})
    req = parse_receive_pack(capture_push(workspace, git_server, "main"))
    cmd = req.commands[0]
    unknown_old = ReceivePackRequest(
        commands=[RefCommand(old="1" * 40, new=cmd.new, ref=cmd.ref)],
        capabilities=req.capabilities,
        pack=req.pack,
    )

    item = analyse_push(unknown_old, RepoSource(workspace.bare)).refs[0]

    assert item.force is True
    assert len(item.new_commits) == 1


def test_corrupted_pack_is_refused(workspace: Workspace, git_server: GitHttpServer) -> None:
    _seed(workspace)
    workspace.commit("more", {"x.txt": "x\n"})
    req = parse_receive_pack(capture_push(workspace, git_server, "main"))
    damaged = bytearray(req.pack)
    damaged[20] ^= 0xFF
    bad = ReceivePackRequest(commands=req.commands, capabilities=req.capabilities, pack=bytes(damaged))

    with pytest.raises(GitWireError, match="checksum"):
        analyse_push(bad, RepoSource(workspace.bare))


def _small_pack() -> tuple[bytes, str]:
    import io

    from dulwich.object_store import MemoryObjectStore
    from dulwich.objects import Blob, Commit, Tree
    from dulwich.pack import write_pack_objects

    blob = Blob.from_string(b"content\n" * 50)
    tree = Tree()
    tree.add(b"file.txt", 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"A <a@b>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"m"
    store = MemoryObjectStore()
    for obj in (blob, tree, commit):
        store.add_object(obj)
    out = io.BytesIO()
    write_pack_objects(out.write, [(o, None) for o in (blob, tree, commit)], object_format=store.object_format)
    return out.getvalue(), commit.id.decode()


_PACK, _TIP = _small_pack()


def test_generated_pack_is_analysed() -> None:
    req = ReceivePackRequest(commands=[RefCommand("0" * 40, _TIP, "refs/heads/x")], capabilities=frozenset(),
                             pack=_PACK)
    assert analyse_push(req, EmptySource()).refs[0].new_commits[0].files == ("file.txt",)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_PACK) - 21), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_packs_only_raise_gitwireerror(flips: list[tuple[int, int]]) -> None:
    import hashlib

    body = bytearray(_PACK[:-20])
    for pos, value in flips:
        body[pos] = value
    pack = bytes(body) + hashlib.sha1(bytes(body)).digest()  # valid checksum: reach the object parser
    req = ReceivePackRequest(commands=[RefCommand("0" * 40, _TIP, "refs/heads/x")], capabilities=frozenset(),
                             pack=pack)
    with contextlib.suppress(GitWireError):
        analyse_push(req, EmptySource())
