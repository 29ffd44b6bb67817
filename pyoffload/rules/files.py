"""Rule files straight into the model, through the shim's own parser.

The guest's ``guest-shim apply --check`` and the host's loading of the same
file must agree on what it means, so pyoffload does not parse rule files
itself: the shim turns the file into the channel's message, ``from_proto``
turns that into the model. Errors of both steps come out as ``RuleError``.
"""

from __future__ import annotations

from pathlib import Path

from guest_shim.errors import RuleFileError

from guest_shim import rulefile
from pyoffload.rules.convert import from_proto
from pyoffload.rules.errors import RuleError
from pyoffload.rules.model import OffloadRequest


def _from_file_error(exc: RuleFileError) -> RuleError:
    return RuleError(
        exc.reason, source=exc.source, flow=exc.flow, rule=exc.rule, field=exc.field
    )


def load_file(path: str | Path) -> OffloadRequest:
    """A YAML (or ``.json``) rule file as a checked request."""
    try:
        message = rulefile.parse_file(path)
    except RuleFileError as exc:
        raise _from_file_error(exc) from None
    try:
        return from_proto(message)
    except RuleError as exc:
        raise RuleError(
            exc.reason, source=str(path), flow=exc.flow, rule=exc.rule, field=exc.field
        ) from None


def load_text(text: str, *, fmt: str = "yaml", source: str | None = None) -> OffloadRequest:
    """Rule-file text (``fmt`` yaml or json) as a checked request."""
    try:
        message = rulefile.parse_text(text, fmt=fmt, source=source)
    except RuleFileError as exc:
        raise _from_file_error(exc) from None
    try:
        return from_proto(message)
    except RuleError as exc:
        raise RuleError(
            exc.reason, source=source, flow=exc.flow, rule=exc.rule, field=exc.field
        ) from None


def load_data(data: object) -> OffloadRequest:
    """Already-loaded rule data (dicts and lists) as a checked request."""
    try:
        return from_proto(rulefile.parse_data(data))
    except RuleFileError as exc:
        raise _from_file_error(exc) from None
