"""Connectors: one module per guarded system. See :mod:`connectors.base` for the seam."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from functools import cache
from types import ModuleType

_ROUTE_FORM = re.compile(r"^\s*(get|head|post|put|patch|delete)\s*[-: ]\s*(/\S*)\s*$", re.IGNORECASE)


@cache
def available() -> dict[str, ModuleType]:
    """Every connector module in this package, by its ``SYSTEM`` name."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        system = getattr(module, "SYSTEM", None)
        if isinstance(system, str):
            found[system] = module
    return found


def actions(system: str) -> frozenset[str]:
    """Every action name a workflow may list for ``system`` (semantic and generated), ``unknown`` too."""
    return frozenset(available()[system].ACTIONS) | {"unknown"}


def suggest(system: str, action: str) -> str:
    """What to tell someone who wrote ``<system>.<action>``, an action that does not exist.

    An operation that is one of the semantic actions names that action; a route written as
    ``POST /path/{param}`` (any version) names the operation it is; otherwise the nearest names.
    """
    from connectors import _routes  # the tables load only when a connector with routes is used

    known = actions(system)
    table = _routes.table(system) if (_routes.ROUTES_DIR / f"{system}.json").is_file() else None
    if table is not None:
        semantic = table.semantic_names.get(action)
        route_form = _ROUTE_FORM.match(action)
        if semantic is None and route_form is not None:
            method, path = route_form.group(1).upper(), route_form.group(2)
            if system == "hubspot":
                path = _routes.hubspot_object_path(path)
            found = table.match(method, path) or table.semantic_match(method, path)
            if found is not None and found.route.semantic:
                semantic = found.route.semantic
            elif found is not None:
                return f"that route is the action {system}.{found.route.action}"
            elif system == "hubspot":
                action = _routes.hubspot_name(method, path)  # compare in the shape names have
        if semantic is not None:
            return (f"that operation is always recognised as {' and '.join(f'{system}.{s}' for s in semantic)}; "
                    f"name that instead")
    close = difflib.get_close_matches(action, sorted(known), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"{system}.{c}" for c in close) + "?"
    module = available()[system]
    if table is None:
        return f"{system} has {', '.join(sorted(known))}"
    return (f"no {system} action is named like it; {system} has {', '.join(sorted(module.SEMANTIC_ACTIONS))}, "
            f"unknown, and one action per documented operation (README, Actions)")
