"""Python functions that mapping files name (``fn:``), registered on import.

Touches: nothing (each module says what it reads).

Every module of this package is imported when the first mapping is loaded,
so a new function is one module (or one more function in a module) using
``@mappings.mapping_function("name")``, with its tests; see ``docs/mappings.md``.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
