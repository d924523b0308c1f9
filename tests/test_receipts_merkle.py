"""enact_proxy/receipts/merkle.py against published RFC 6962 vectors.

- Tree hashes: transparency-dev/merkle ``testonly/constants.go`` (LeafInputs, RootHashes, NodeHashes),
  https://github.com/transparency-dev/merkle/blob/417fb0c314750d94e53942e9f92e79b6d35915db/testonly/constants.go
- Inclusion proofs: transparency-dev/merkle ``testdata/inclusion/`` (copied to tests/testdata/merkle, see its README).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enact_proxy.receipts.merkle import (
    EMPTY_ROOT,
    CompactRange,
    inclusion_path,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_of,
    verify_inclusion,
)

LEAF_INPUTS = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                          "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [bytes.fromhex(h) for h in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
VECTORS = sorted((Path(__file__).parent / "testdata" / "merkle" / "inclusion").rglob("*.json"))


def test_root_hashes_of_the_reference_trees():
    leaves = [leaf_hash(d) for d in LEAF_INPUTS]
    assert ROOTS[0] == EMPTY_ROOT
    for size in range(len(ROOTS)):
        assert root_of(leaves[:size]) == ROOTS[size]
        tree = CompactRange()
        for leaf in leaves[:size]:
            tree.append(leaf)
        assert tree.root() == ROOTS[size], size


def test_node_hashes_reported_while_appending():
    # NodeHashes()[1][0], [2][0], [3][0] of the same constants.
    seen: dict[tuple[int, int], bytes] = {}
    tree = CompactRange()
    for d in LEAF_INPUTS:
        tree.append(leaf_hash(d), lambda level, index, h: seen.__setitem__((level, index), h))
    assert seen[(1, 0)].hex() == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
    assert seen[(2, 1)].hex() == "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
    assert seen[(3, 0)] == ROOTS[8]
    assert len(seen) == 8 + 4 + 2 + 1


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_published_inclusion_vectors(path: Path):
    case = json.loads(path.read_text())
    b64 = lambda v: base64.b64decode(v) if v else b""  # noqa: E731
    ok = verify_inclusion(case["leafIdx"], case["treeSize"], b64(case["leafHash"]),
                          [b64(p) for p in case["proof"] or []], b64(case["root"]))
    assert ok is not case["wantErr"], case["desc"]


def test_our_paths_for_the_reference_tree_verify_and_match_the_published_ones():
    leaves = [leaf_hash(d) for d in LEAF_INPUTS]
    nodes: dict[tuple[int, int], bytes] = {}
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf, lambda level, index, h: nodes.__setitem__((level, index), h))
    for case_path in VECTORS:
        case = json.loads(case_path.read_text())
        if case["wantErr"] or case["treeSize"] > 8 or case["desc"] != "happy path":
            continue
        ours = inclusion_path(case["leafIdx"], case["treeSize"], lambda lv, ix: nodes[(lv, ix)])
        assert [base64.b64encode(p).decode() for p in ours] == (case["proof"] or [])
    for size in range(1, 9):
        for index in range(size):
            path = inclusion_path(index, size, lambda lv, ix: nodes[(lv, ix)])
            assert verify_inclusion(index, size, leaves[index], path, ROOTS[size])


@given(st.integers(min_value=1, max_value=300), st.data())
def test_any_size_any_leaf(size: int, data: st.DataObject):
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    nodes: dict[tuple[int, int], bytes] = {}
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf, lambda level, index, h: nodes.__setitem__((level, index), h))
    assert tree.root() == root_of(leaves)
    assert CompactRange(size, [nodes[n] for n in perfect_subtrees(size)]).root() == tree.root()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = inclusion_path(index, size, lambda lv, ix: nodes[(lv, ix)])
    assert verify_inclusion(index, size, leaves[index], path, tree.root())
    assert not verify_inclusion(index, size, node_hash(leaves[index], leaves[index]), path, tree.root())
