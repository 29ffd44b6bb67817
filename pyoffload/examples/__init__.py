"""Example rule files (``README.md`` here is the format's reference), installed with
pyoffload so the demo and the playground can use them from any directory."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pyoffload.errors import PyoffloadError


def example_path(name: str) -> Path:
    """The installed example rule file ``name`` (for example ``demo.yaml``)."""
    found = resources.files(__name__).joinpath(name)
    if not isinstance(found, Path) or not found.is_file():
        known = sorted(p.name for p in resources.files(__name__).iterdir()
                       if p.name.endswith((".yaml", ".json")))
        raise PyoffloadError(f"no example rule file {name!r}; the examples are: "
                             + ", ".join(known))
    return found
