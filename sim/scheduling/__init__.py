"""Schedulers: ``SCHEDULERS`` maps the name used in YAML (``scheduler.name``) to the class; each
class carries its ``Config`` dataclass, against which the scenario's ``scheduler:`` section is
validated."""

from sim.scheduling.base import BatchPlan, EngineConfig, Scheduler
from sim.scheduling.fcfs import FcfsScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {
    "fcfs": FcfsScheduler,
}

__all__ = ["SCHEDULERS", "Scheduler", "BatchPlan", "EngineConfig", "FcfsScheduler"]
