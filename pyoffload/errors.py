"""The root of every error pyoffload raises to its users.

Catching ``PyoffloadError`` catches everything the library reports on purpose
(bad rules, a refused request, a target that cannot start, an incomplete
installation...), so a caller needs one ``except`` and never a list of types.
Each error's message says what was wrong and how to fix it.
"""

from __future__ import annotations


class PyoffloadError(Exception):
    """Base class of every error pyoffload reports to its users."""
