"""Which cost model a deployment gets: measured vLLM tables where the profile has them for this
model and TP degree, else the device kind's model (roofline GPU, Duplex)."""

from __future__ import annotations

import warnings

from sim.cost.duplex import DuplexCostModel
from sim.cost.engine import EngineTerms, EngineTiming
from sim.cost.model import CostModel
from sim.cost.predictor import CalibrationWarning
from sim.cost.profiled import ProfiledCostModel
from sim.hardware.device import DeviceSpec
from sim.models.catalog import HF_NAMES
from sim.models.spec import ModelSpec
from sim.registry import Registry

# The cost model each device kind gets; a new device kind adds its line here
COST_MODELS: Registry[type[CostModel]] = Registry("cost model", {"gpu": CostModel,
                                                                  "duplex": DuplexCostModel})


def model_names(model: ModelSpec) -> set[str]:
    """Every lower-case name a measured table set may give ``model``: its own, its catalog
    entry's Hugging Face names, and the repository its spec was read from."""
    names = {model.name.lower()}
    names |= {hf for hf, name in HF_NAMES.items() if name == model.name}
    if model.source:
        names.add(model.source.split()[0].lower())
    return names


def make_cost_model(model: ModelSpec, device: DeviceSpec, tp: int = 1,
                    engine: EngineTerms | None = None, *, max_num_seqs: int = 256,
                    max_batched_tokens: int = 8192, dtype: str = "bf16") -> CostModel:
    """The cost model of ``model`` on ``tp`` devices; ``engine`` adds the serving engine's
    terms (sim/cost/engine.py). A profile with measured tables for other models or TP degrees
    falls back to the datasheet path with one warning."""
    kind = COST_MODELS.lookup(device.kind, field=f"hardware {device.name}: kind")
    timing = None
    if engine is not None and kind is CostModel:
        timing = EngineTiming(engine, max_num_seqs, max_batched_tokens)
    measured = device.measured
    if measured is not None and kind is CostModel:
        dtype_name = {1: "fp8", 2: dtype, 4: "fp32"}.get(model.dtype_bytes, dtype)
        tables = measured.find(model_names(model), tp, dtype_name)
        if tables is not None:
            return ProfiledCostModel(model, device, tp, tables, dtype, engine=timing)
        have = ", ".join(f"{e.model} tp{e.tp} {e.dtype}" for e in measured.section.entries)
        warnings.warn(f"{measured.source_path}: no measured vLLM tables for {model.name} at "
                      f"tp{tp} ({dtype_name}); it has {have}. Using the datasheet path",
                      CalibrationWarning, stacklevel=2)
    if timing is not None:
        return CostModel(model, device, tp, dtype, engine=timing)
    return kind(model, device, tp)
