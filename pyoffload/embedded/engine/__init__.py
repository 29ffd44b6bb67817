"""pyoffload's embedded P4 engine: executes p4c's BMv2 JSON for v1model programs.

See ../API.md for the contract. The JSON is compiled at load time into Python
functions; `Pipeline.process` runs one packet the way BMv2 simple_switch does.
"""

from .errors import (
    AlreadyExists,
    EngineError,
    InvalidValue,
    NotFound,
    PipelineLoadError,
    TableFull,
    UnsupportedConstruct,
)
from .externs import MeterConfig
from .keys import Exact, KeyValue, Lpm, Optional_, Range, Ternary, Wildcard
from .pipeline import Pipeline, ProcessResult
from .state import PipelineState
from .tables import Entry, EntryId, TableState

__all__ = [
    "AlreadyExists",
    "EngineError",
    "Entry",
    "EntryId",
    "Exact",
    "InvalidValue",
    "KeyValue",
    "Lpm",
    "MeterConfig",
    "NotFound",
    "Optional_",
    "Pipeline",
    "PipelineLoadError",
    "PipelineState",
    "ProcessResult",
    "Range",
    "TableFull",
    "TableState",
    "Ternary",
    "UnsupportedConstruct",
    "Wildcard",
]
