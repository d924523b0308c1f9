"""Connectors: one module per guarded system. See :mod:`connectors.base` for the seam."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType


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
