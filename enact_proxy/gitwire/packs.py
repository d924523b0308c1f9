"""What a push does to each ref: the new commits, the files each one changes, fast-forward or not.

I/O-free: the pack arrives as bytes; objects the pack lacks (thin-pack delta bases, parents,
the old tips) come from an ``ObjectSource`` such as the sidecar's mirror of the upstream.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from dulwich.diff_tree import CHANGE_DELETE, CHANGE_RENAME, RenameDetector, tree_changes
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.object_store import BaseObjectStore, MemoryObjectStore, OverlayObjectStore
from dulwich.objects import Commit, ObjectID, RawObjectID, ShaFile, Tag, sha_to_hex
from dulwich.pack import PackData, PackInflater, UnresolvedDeltas

from enact_proxy.gitwire.errors import GitWireError
from enact_proxy.gitwire.receive_pack import ZERO_ID, ReceivePackRequest, RefCommand

# Ancestry walks beyond this many commits give up and report the update as forced.
MAX_ANCESTRY_WALK = 20_000
# New commits per ref beyond which the push is refused rather than judged partially.
MAX_NEW_COMMITS = 50_000


class ObjectSource(Protocol):
    """Objects the upstream already has. ``get_raw`` takes a 40-hex id and raises KeyError when absent."""

    def get_raw(self, sha: bytes) -> tuple[int, bytes]: ...


@runtime_checkable
class AncestryOracle(Protocol):
    """Optional: a source that can answer ancestry itself (e.g. ``git merge-base``); None = unknown."""

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None: ...


class EmptySource:
    """An upstream with no objects (a push to an empty repository)."""

    def get_raw(self, sha: bytes) -> tuple[int, bytes]:
        raise KeyError(sha)


@dataclass(frozen=True)
class CommitFiles:
    sha: str
    files: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()  # (old path, new path); the new path is in ``files``


@dataclass(frozen=True)
class RefAnalysis:
    command: RefCommand
    new_commits: tuple[CommitFiles, ...]  # parents before children
    force: bool  # not a fast-forward, or undecidable

    @property
    def files(self) -> list[str]:
        seen: dict[str, None] = {}
        for commit in self.new_commits:
            seen.update(dict.fromkeys(commit.files))
        return list(seen)


@dataclass(frozen=True)
class PushAnalysis:
    refs: tuple[RefAnalysis, ...]  # one per command, in command order

    def for_ref(self, ref: str) -> RefAnalysis:
        for item in self.refs:
            if item.command.ref == ref:
                return item
        raise KeyError(ref)


class _SourceStore(BaseObjectStore):
    """Adapts an ObjectSource to dulwich's object-store interface (read-only)."""

    def __init__(self, source: ObjectSource) -> None:
        super().__init__(object_format=DEFAULT_OBJECT_FORMAT)
        self._source = source

    def get_raw(self, name: ObjectID | RawObjectID) -> tuple[int, bytes]:
        return self._source.get_raw(_hex(name))

    def contains_loose(self, sha: ObjectID) -> bool:
        try:
            self._source.get_raw(_hex(sha))
        except KeyError:
            return False
        return True

    def contains_packed(self, sha: ObjectID | RawObjectID) -> bool:
        return False

    def __contains__(self, sha1: ObjectID) -> bool:
        return self.contains_loose(sha1)


def _hex(name: bytes) -> bytes:
    return sha_to_hex(cast(RawObjectID, name)) if len(name) == 20 else name


def _missing(sha: bytes | str) -> GitWireError:
    raw = sha.encode("ascii", "replace") if isinstance(sha, str) else sha
    return GitWireError(f"cannot count files: object {_hex(raw).decode('ascii', 'replace')} missing")


def inflate_pack(pack: bytes, source: ObjectSource) -> MemoryObjectStore:
    """Every object of ``pack``, thin-pack deltas resolved against ``source``."""
    store = MemoryObjectStore()
    if not pack:
        return store

    def resolve_ext_ref(sha: bytes) -> tuple[int, bytes]:
        return source.get_raw(_hex(sha))

    try:
        data = PackData.from_file(io.BytesIO(pack), DEFAULT_OBJECT_FORMAT, size=len(pack))
    except Exception as exc:  # dulwich signals bad headers with assorted exception types
        raise GitWireError(f"malformed packfile: {exc.__class__.__name__}") from exc
    try:
        try:
            data.check()
        except Exception as exc:
            raise GitWireError("packfile checksum does not match its contents") from exc
        inflater = PackInflater.for_pack_data(data, resolve_ext_ref=resolve_ext_ref)
        objects = list(inflater)
        if len(objects) != len(data):
            raise GitWireError(
                f"packfile announces {len(data)} objects but {len(objects)} could be read"
            )
    except GitWireError:
        raise
    except UnresolvedDeltas as exc:
        raise _missing(exc.shas[0]) from exc
    except Exception as exc:
        raise GitWireError(f"malformed packfile: {exc.__class__.__name__}: {exc}"[:300]) from exc
    finally:
        data.close()
    for obj in objects:
        store.add_object(obj)
    return store


class _Graph:
    """Commit lookups over pack objects first, then the source."""

    def __init__(self, pack_store: MemoryObjectStore, source: ObjectSource) -> None:
        self.pack_store = pack_store
        self.source = source
        self.store = OverlayObjectStore([pack_store, _SourceStore(source)])

    def in_pack(self, sha: str) -> bool:
        return ObjectID(sha.encode("ascii")) in self.pack_store

    def object(self, sha: str) -> ShaFile:
        try:
            return self.store[ObjectID(sha.encode("ascii"))]
        except KeyError as exc:
            raise _missing(sha) from exc
        except Exception as exc:
            raise GitWireError(f"cannot read object {sha}: {exc.__class__.__name__}") from exc

    def commit(self, sha: str) -> Commit:
        obj = self.object(sha)
        for _ in range(10):  # annotated tags may point at tags; peel a few levels
            if not isinstance(obj, Tag):
                break
            obj = self.object(obj.object[1].decode("ascii"))
        if not isinstance(obj, Commit):
            raise GitWireError(f"object {sha} is a {obj.type_name.decode()}, not a commit")
        return obj

    def parents(self, sha: str) -> list[str]:
        return [p.decode("ascii") for p in self.commit(sha).parents]


def _new_commits(graph: _Graph, command: RefCommand) -> list[str]:
    """Commits of the pack reachable from ``new`` without crossing into what the upstream has."""
    tip = graph.commit(command.new).id.decode("ascii")
    found: list[str] = []
    seen: set[str] = set()
    # Iterative post-order so parents come before children.
    stack: list[tuple[str, bool]] = [(tip, False)]
    while stack:
        sha, expanded = stack.pop()
        if expanded:
            found.append(sha)
            continue
        if sha in seen or sha == command.old or not graph.in_pack(sha):
            continue
        seen.add(sha)
        if len(seen) > MAX_NEW_COMMITS:
            raise GitWireError(f"push to {command.ref} carries more than {MAX_NEW_COMMITS} new commits")
        stack.append((sha, True))
        stack.extend((parent, False) for parent in reversed(graph.parents(sha)))
    return found


def _boundary(graph: _Graph, command: RefCommand, new_commits: Iterable[str]) -> set[str]:
    """Commits the upstream already has that the new commits (or the tip) stand on."""
    tip = graph.commit(command.new).id.decode("ascii")
    members = set(new_commits)
    if tip not in members:
        return {tip}
    return {p for sha in members for p in graph.parents(sha) if p not in members}


def _is_ancestor_walk(graph: _Graph, ancestor: str, starts: set[str]) -> bool | None:
    todo = list(starts)
    seen: set[str] = set()
    while todo:
        sha = todo.pop()
        if sha == ancestor:
            return True
        if sha in seen:
            continue
        seen.add(sha)
        if len(seen) > MAX_ANCESTRY_WALK:
            return None
        try:
            todo.extend(graph.parents(sha))
        except GitWireError:
            return None
    return False


def _is_fast_forward(graph: _Graph, command: RefCommand, new_commits: list[str]) -> bool | None:
    if command.old == command.new or command.old in new_commits:
        return True
    try:
        boundary = _boundary(graph, command, new_commits)
    except GitWireError:
        return None
    if command.old in boundary:
        return True
    if isinstance(graph.source, AncestryOracle):
        answers = [graph.source.is_ancestor(command.old, sha) for sha in sorted(boundary)]
        if any(answer is True for answer in answers):
            return True
        if all(answer is False for answer in answers):
            return False
    return _is_ancestor_walk(graph, command.old, boundary)


def _path_text(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def _commit_files(graph: _Graph, sha: str) -> CommitFiles:
    commit = graph.commit(sha)
    parent_tree: ObjectID | None = None
    if commit.parents:
        parent_tree = graph.commit(commit.parents[0].decode("ascii")).tree
    files: dict[str, None] = {}
    renames: list[tuple[str, str]] = []
    detector = RenameDetector(graph.store)
    try:
        for change in tree_changes(graph.store, parent_tree, commit.tree, rename_detector=detector):
            old_path = change.old.path if change.old is not None else None
            new_path = change.new.path if change.new is not None else None
            path = old_path if change.type == CHANGE_DELETE else new_path
            if path is None:
                continue
            files[_path_text(path)] = None
            if change.type == CHANGE_RENAME and old_path is not None:
                renames.append((_path_text(old_path), _path_text(path)))
    except KeyError as exc:
        raise _missing(exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b"?") from exc
    except GitWireError:
        raise
    except Exception as exc:
        raise GitWireError(f"cannot count files of commit {sha}: {exc.__class__.__name__}") from exc
    return CommitFiles(sha=sha, files=tuple(files), renames=tuple(renames))


def analyse_push(req: ReceivePackRequest, source: ObjectSource) -> PushAnalysis:
    """For each command: its new commits with their changed files, and whether it is forced.

    Raises GitWireError when a needed object is missing or the pack is malformed.
    """
    graph = _Graph(inflate_pack(req.pack, source), source)
    counted: dict[str, CommitFiles] = {}
    results: list[RefAnalysis] = []
    for command in req.commands:
        if command.is_delete:
            results.append(RefAnalysis(command=command, new_commits=(), force=False))
            continue
        shas = _new_commits(graph, command)
        for sha in shas:
            if sha not in counted:
                counted[sha] = _commit_files(graph, sha)
        force = False
        if not command.is_create:
            force = _is_fast_forward(graph, command, shas) is not True
        results.append(
            RefAnalysis(command=command, new_commits=tuple(counted[s] for s in shas), force=force)
        )
    return PushAnalysis(refs=tuple(results))


__all__ = [
    "ZERO_ID",
    "AncestryOracle",
    "CommitFiles",
    "EmptySource",
    "ObjectSource",
    "PushAnalysis",
    "RefAnalysis",
    "analyse_push",
    "inflate_pack",
]
