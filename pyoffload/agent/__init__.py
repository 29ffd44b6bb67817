"""The host agent: serves each VNIC's guest channel, compiles and installs
its rules on the P4 target, and keeps them there across target restarts."""

from pyoffload.agent.config import HostConfig, QuotaConfig, TargetConfig, VnicConfig
from pyoffload.agent.core import Agent, ApplyOutcome
from pyoffload.agent.errors import AgentError

__all__ = [
    "Agent",
    "AgentError",
    "ApplyOutcome",
    "HostConfig",
    "QuotaConfig",
    "TargetConfig",
    "VnicConfig",
]
