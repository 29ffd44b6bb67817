"""A benchmark's end: its report printed, its figures written as JSON when asked."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def publish(lines: Iterable[str], figures: Any, json_path: Path | None) -> int:
    """Print ``lines``; write ``figures`` to ``json_path`` (if given). 0, for ``main``."""
    print("\n".join(lines))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return 0
