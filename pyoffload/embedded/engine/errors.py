"""Exceptions raised by the engine; every failure is an `EngineError`, never `None`."""

from __future__ import annotations

from pyoffload.errors import PyoffloadError


class EngineError(PyoffloadError):
    """Base class of every error the engine raises."""


class PipelineLoadError(EngineError):
    """The BMv2 JSON is malformed or inconsistent; nothing was loaded."""


class UnsupportedConstruct(PipelineLoadError):
    """The JSON uses a construct the engine does not execute; refused at load time.

    Refusing is better than executing a program subtly differently from BMv2.
    """

    def __init__(self, construct: str, where: str = "") -> None:
        self.construct = construct
        self.where = where
        msg = f"unsupported construct: {construct}"
        if where:
            msg += f" (at {where})"
        super().__init__(msg)


class NotFound(EngineError):
    """A named object or an entry does not exist."""


class AlreadyExists(EngineError):
    """An entry with the same key (and priority) is already installed."""


class TableFull(EngineError):
    """A table, profile or group is full."""


class InvalidValue(EngineError):
    """A control-plane value is out of range or does not fit the object's schema."""
