"""docs/ and README: a newcomer needs nothing outside the repository, and the reference keeps up with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import connectors
from enact_proxy.config import ConfigFile
from policies import BUILTIN

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.name} links to {target}: no such heading"


def test_the_readme_sends_no_one_outside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "SPEC" not in text and "shared folder" not in text
    for name in ("configuration", "actions", "agent-view", "receipts", "approvals", "operations"):
        assert f"docs/{name}.md" in text


def _keys(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_the_configuration_reference_names_every_key_and_policy():
    text = (ROOT / "docs" / "configuration.md").read_text()
    keys = set(ConfigFile.model_fields)
    for field in ConfigFile.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation)
    for module in connectors.available().values():
        keys |= _keys(module.Config)
    keys |= {"email", "roles", "tokens", "name", "token_env"}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/configuration.md does not describe {missing}"
    undocumented = sorted(p for p in BUILTIN if f"`{p}`" not in text)
    assert not undocumented, f"docs/configuration.md does not describe the policies {undocumented}"


def test_the_actions_page_lists_every_semantic_action():
    text = (ROOT / "docs" / "actions.md").read_text()
    for system in ("github", "hubspot"):
        for action in connectors.available()[system].SEMANTIC_ACTIONS:
            assert f"{system}.{action}" in text or f"/ `{action}`" in text or f"`{action}`" in text, action
    for action in connectors.available()["postgres"].ACTIONS:
        assert action in text
