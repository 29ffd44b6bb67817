"""One root for every error the library reports, and no two error classes of one name
(a caller catching ``P4RuntimeError`` must get the one it means)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pyoffload
from pyoffload.errors import PyoffloadError

INTERNAL = {
    "pyoffload.embedded.engine.runtime.ParserErr",
    "pyoffload.embedded.engine.runtime.PipelineAbort",
    "pyoffload.agent.installer._Refused",
}
"""Exceptions that steer control flow inside one module and never reach a caller."""


def error_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(pyoffload.__path__, "pyoffload."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("pyoffload"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_error_derives_from_the_root() -> None:
    strays = [f"{c.__module__}.{c.__qualname__}" for c in error_classes()
              if not issubclass(c, PyoffloadError)
              and f"{c.__module__}.{c.__qualname__}" not in INTERNAL]
    assert not strays, f"errors outside PyoffloadError: {strays}"


def test_no_two_errors_share_a_name() -> None:
    by_name: dict[str, list[str]] = {}
    for c in error_classes():
        by_name.setdefault(c.__name__, []).append(f"{c.__module__}.{c.__qualname__}")
    shared = {name: where for name, where in by_name.items() if len(where) > 1}
    assert not shared, shared
