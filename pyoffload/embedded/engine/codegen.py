"""Turning generated Python source into functions, once, at pipeline load.

The engine compiles every parser state, action and control node of the JSON to
Python source, so a packet runs straight-line code over list slots instead of
walking JSON trees. Only numbers and names minted here reach the source text;
anything taken from the JSON (names, strings) is passed as a bound constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import runtime


class Namespace:
    """The globals that generated functions see: runtime helpers plus bound constants."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {name: getattr(runtime, name) for name in runtime.__all__}
        self._ids: dict[int, str] = {}
        self._keep: list[Any] = []
        self._count = 0

    def const(self, obj: Any, hint: str = "k") -> str:
        """Bind `obj` under a fresh identifier and return that identifier."""
        key = id(obj)
        if key in self._ids:
            return self._ids[key]
        self._count += 1
        name = f"_{hint}{self._count}"
        self.globals[name] = obj
        self._ids[key] = name
        self._keep.append(obj)
        return name

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"_{hint}{self._count}"

    def compile_function(
        self, name: str, params: str, body: list[str], label: str
    ) -> Callable[..., Any]:
        """Compile `def name(params): body` and return the function."""
        lines = [f"def {name}({params}):"] + (["    " + ln for ln in body] or ["    pass"])
        src = "\n".join(lines) + "\n"
        code = compile(src, f"<p4:{label}>", "exec")
        exec(code, self.globals)
        fn: Callable[..., Any] = self.globals.pop(name)
        return fn


def indent(lines: list[str], n: int = 1) -> list[str]:
    """Indent generated source lines by `n` levels."""
    pad = "    " * n
    return [pad + line for line in lines]
