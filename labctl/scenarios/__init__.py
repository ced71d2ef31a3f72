"""The lab's scenarios: one module each, each with a name, a title, a summary and run(lab).

A scenario module opens with a docstring that says what it demonstrates and
what to look for in the capture, declares the checks it makes, and keeps its
logic small: the shared steps live in labctl.runner.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UsageError

# In the order `labctl run all` runs them: the story goes from clear to protected.
NAMES = ("plaintext", "tls", "tls12", "verify", "mitm", "dns-spoof", "downgrade", "traffic-analysis", "forward-secrecy")


def load(name: str) -> ModuleType:
    if name not in NAMES:
        raise UsageError(f"unknown scenario {name!r}; the scenarios are: {', '.join(NAMES)} (or 'all')")
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")


def all_modules() -> list[ModuleType]:
    return [load(name) for name in NAMES]
