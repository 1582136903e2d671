"""Schedulers: ``SCHEDULERS`` maps the name used in YAML (``scheduler.name``) to the class; each
class carries its ``Config`` dataclass, against which the scenario's ``scheduler:`` section is
validated."""

from sim.registry import Registry
from sim.scheduling.base import BatchPlan, EngineConfig, Scheduler
from sim.scheduling.batchllm import BatchLlmScheduler
from sim.scheduling.aggressive import AggressiveScheduler
from sim.scheduling.conservative import ConservativeScheduler
from sim.scheduling.fcfs import FcfsScheduler
from sim.scheduling.oracle import OracleScheduler
from sim.scheduling.past_future import PastFutureScheduler

SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler", {
    "fcfs": FcfsScheduler,
    "aggressive": AggressiveScheduler,
    "conservative": ConservativeScheduler,
    "past_future": PastFutureScheduler,
    "oracle": OracleScheduler,
    "batchllm": BatchLlmScheduler,
})

__all__ = ["SCHEDULERS", "Scheduler", "BatchPlan", "EngineConfig", "FcfsScheduler"]
