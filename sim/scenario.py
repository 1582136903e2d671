"""Scenario: a YAML file validated into frozen dataclasses, resolved before the first event.

Every section is checked against the dataclass of the part it configures (the scheduler section
against ``SCHEDULERS[name].Config``, and so on); an error names the file and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sim.cluster.autoscaler import AutoscalerConfig
from sim.cluster.failures import FailureConfig
from sim.cluster.router import ROUTERS
from sim.config import parse, read_text, require
from sim.cost.engine import EngineTerms
from sim.errors import LlmsimError, ScenarioError, did_you_mean
from sim.hardware.duplex import RoutingSection
from sim.scheduling import SCHEDULERS
from sim.scheduling.base import EngineConfig
from sim.scheduling.overload import OverloadConfig
from sim.scheduling.speculative import SpeculativeConfig
from sim.workload.workload import WorkloadConfig

# Example scenarios ship in the package (the repository's scenarios/ is a link to them); a
# scenario argument that is not a file may name one of them (``llmsim run quickstart``).
SCENARIO_DIR = Path(str(resources.files("sim") / "data" / "scenarios")).resolve()
DEFAULT_SCENARIO = SCENARIO_DIR / "quickstart.yaml"


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_path(path: str | Path) -> Path:
    """``path`` itself, or the shipped scenario it names (``quickstart``, ``quickstart.yaml``)."""
    path = Path(path)
    if path.is_file() or len(path.parts) != 1:
        return path
    shipped = SCENARIO_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path}.yaml")
    return shipped if shipped.is_file() else path


@dataclass(frozen=True)
class HardwareConfig:
    name: str = "h100-sxm"
    overrides: dict = field(default_factory=dict)   # parts of the profile YAML, deep-merged


def _check_tp(tp: int, field: str) -> None:
    require(0 < tp <= 1024 and tp & (tp - 1) == 0, field, "a power of two in [1, 1024]", tp)


def _check_pp(pp: int, field: str) -> None:
    require(0 < pp <= 256, field, "an integer in [1, 256] (pipeline stages)", pp)


@dataclass(frozen=True)
class PoolConfig:
    """One pool of identical replicas (``cluster.pools``). ``prefill`` replicas hand each
    request to a ``decode`` replica once its prompt is prefilled (its first token out), the KV
    cache sent over the prefill replica's links; ``colocated`` replicas serve requests whole.
    Unset fields take the cluster's (tensor_parallel, router) or the scenario's (hardware)."""

    role: Literal["prefill", "decode", "colocated"]
    replicas: int = 1
    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    # a profile name, or {name: ..., <overrides>}; read into a HardwareConfig
    hardware: str | dict | HardwareConfig | None = None
    router: str | None = None                # decode pools: which decode replica a request gets

    def __post_init__(self):
        require(0 < self.replicas <= 100_000, "replicas", "an integer in [1, 100000]",
                self.replicas)
        if self.tensor_parallel is not None:
            _check_tp(self.tensor_parallel, "tensor_parallel")
        if self.pipeline_parallel is not None:
            _check_pp(self.pipeline_parallel, "pipeline_parallel")
        if isinstance(self.hardware, dict):
            name = self.hardware.get("name", HardwareConfig.name)
            require(isinstance(name, str), "hardware.name", "a profile name or path", name)
            rest = {k: v for k, v in self.hardware.items() if k != "name"}
            object.__setattr__(self, "hardware", HardwareConfig(name, copy.deepcopy(rest)))
        elif isinstance(self.hardware, str):
            object.__setattr__(self, "hardware", HardwareConfig(self.hardware))
        if self.router is not None:
            ROUTERS.require(self.router, "router")


@dataclass(frozen=True)
class KvTransferConfig:
    """The links prefill replicas send KV caches on: per device and direction (each device of
    a replica sends its shard on its own link; concurrent transfers from a replica share them).
    400 Gb/s InfiniBand NDR: 50 GB/s; 200 Gb/s Ethernet: 25; NVLink inside a node: 450."""

    bandwidth_gb_s: float = 50.0
    latency_us: float = 10.0       # per transfer: connection setup and the first byte

    def __post_init__(self):
        require(self.bandwidth_gb_s > 0, "bandwidth_gb_s", "a number > 0", self.bandwidth_gb_s)
        require(self.latency_us >= 0, "latency_us", "a number >= 0", self.latency_us)


@dataclass(frozen=True)
class ClusterConfig:
    replicas: int = 1
    tensor_parallel: int = 1
    # layers split over this many stages of tensor_parallel devices, micro-batched as vLLM's
    # virtual engines (sim/cost/pipeline.py); a replica uses tensor_parallel x pipeline_parallel
    pipeline_parallel: int = 1
    router: str = "round-robin"
    # vLLM's enable_expert_parallel (MoE models; no effect on dense ones, as in vLLM). With
    # several replicas: data-parallel ranks whose experts are spread over all of them, stepping
    # in lockstep (sim/cluster/lockstep.py). With one: the experts spread over the replica's
    # tensor_parallel devices, whole experts per device, tokens dispatched and combined by
    # all-to-all, each device as busy as its experts' routed tokens make it (moe_routing)
    expert_parallel: bool = False
    moe_routing: RoutingSection = RoutingSection()
    # prefill/decode disaggregation: pools of replicas by role (replaces ``replicas``)
    pools: tuple[PoolConfig, ...] = ()
    kv_transfer: KvTransferConfig = KvTransferConfig()

    def __post_init__(self):
        require(0 < self.replicas <= 100_000, "replicas", "an integer in [1, 100000]",
                self.replicas)
        _check_tp(self.tensor_parallel, "tensor_parallel")
        _check_pp(self.pipeline_parallel, "pipeline_parallel")
        ROUTERS.require(self.router, "router")
        require(self.pipeline_parallel == 1 or not self.expert_parallel, "pipeline_parallel",
                "1 with expert_parallel (data-parallel ranks step in lockstep)",
                self.pipeline_parallel)
        if not self.pools:
            return
        roles = {p.role for p in self.pools}
        require(self.replicas == 1, "replicas", "no value with pools (set replicas per pool)",
                self.replicas)
        require(not self.expert_parallel, "expert_parallel", "false with pools",
                self.expert_parallel)
        require("decode" in roles or "prefill" not in roles, "pools",
                "a decode pool beside the prefill pool (prefill replicas hand requests to one)",
                sorted(roles))
        require("prefill" in roles or "decode" not in roles, "pools",
                "a prefill pool beside the decode pool (decode replicas take requests from one)",
                sorted(roles))

    @property
    def num_replicas(self) -> int:
        return sum(p.replicas for p in self.pools) if self.pools else self.replicas


GOODPUT_TOKENS = ("output", "prompt+output")


@dataclass(frozen=True)
class SloTargets:
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    max_tpot_s: float | None = None   # largest gap between two consecutive tokens of a request

    def __post_init__(self):
        for name in ("ttft_s", "tpot_s", "e2e_s", "max_tpot_s"):
            value = getattr(self, name)
            require(value is None or value > 0, name, "a number > 0 or null", value)


@dataclass(frozen=True)
class SloConfig(SloTargets):
    """Default targets, and per-``slo_class`` targets that replace them for that class."""

    classes: dict[str, SloTargets] = field(default_factory=dict)
    # the tokens goodput counts, of requests that met their targets: "output" (vLLM's
    # benchmark) or "prompt+output" (Past-Future's evaluation)
    goodput_tokens: str = "output"

    def __post_init__(self):
        super().__post_init__()
        require(self.goodput_tokens in GOODPUT_TOKENS, "goodput_tokens",
                " or ".join(GOODPUT_TOKENS), self.goodput_tokens)

    def targets(self, slo_class: str) -> SloTargets:
        return self.classes.get(slo_class, self)


def _invariants_by_default() -> bool:
    # LLMSIM_CHECK_INVARIANTS=1 turns the checks on for every run that does not set them (the
    # test suite does: tests/conftest.py)
    return os.environ.get("LLMSIM_CHECK_INVARIANTS", "") == "1"


@dataclass(frozen=True)
class SimulationConfig:
    fast_forward: bool = True        # decode fast-forward (exactly equal to stepping)
    horizon_s: float | None = None   # stop the clock here; unfinished requests are reported
    # assert KV, queue and per-request invariants at every iteration (see Replica._check)
    check_invariants: bool = field(default_factory=_invariants_by_default)
    # Long runs: write the request and iteration tables to Parquet block by block as rows
    # complete (memory bounded whatever the run's length) instead of keeping them in memory;
    # keep every iteration row, none, or every iteration_sample_every-th (the summary's
    # iteration figures are over every iteration either way)
    stream_outputs: bool = False
    iteration_rows: Literal["all", "none", "sampled"] = "all"
    iteration_sample_every: int = 100
    # split the replicas over this many worker processes (sim/cluster/partition.py): for
    # routers that pick from the arrival sequence alone; results as in one process
    partitions: int = 1

    def __post_init__(self):
        require(self.horizon_s is None or self.horizon_s > 0, "horizon_s", "a number > 0 or null",
                self.horizon_s)
        require(self.iteration_sample_every >= 1, "iteration_sample_every", "an integer >= 1",
                self.iteration_sample_every)
        require(self.partitions >= 1, "partitions", "an integer >= 1", self.partitions)


# bits per linear-layer weight and bytes per cached value of each precision name
WEIGHT_BITS = {"bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "fp4": 4, "int4": 4}
KV_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


@dataclass(frozen=True)
class PrecisionConfig:
    """``precision``: the weights' and the KV cache's number formats. ``auto``: the model's own
    (a checkpoint's quantization_config, else its dtype). FP8 weights run their GEMMs at the
    device's FP8 rate (W8A8); 4-bit weights move a quarter of the bytes and compute in bf16
    (W4A16). Embeddings, norms and the MoE router stay in the model's dtype."""

    weights: Literal["auto", "bf16", "fp16", "fp8", "int8", "fp4", "int4"] = "auto"
    kv_cache: Literal["auto", "bf16", "fp16", "fp8"] = "auto"

    @property
    def is_default(self) -> bool:
        return self.weights == "auto" and self.kv_cache == "auto"

    def apply(self, model):
        """``model`` with these formats (a ModelSpec)."""
        changes = {}
        if self.weights != "auto":
            bits = WEIGHT_BITS[self.weights]
            changes["weight_bits"] = 0 if bits == 8 * model.dtype_bytes else bits
        if self.kv_cache != "auto":
            size = KV_BYTES[self.kv_cache]
            changes["kv_dtype_bytes"] = 0 if size == model.dtype_bytes else size
        return dataclasses.replace(model, **changes) if changes else model


@dataclass(frozen=True)
class KvCompressionConfig:
    """``kv_compression``: a compressed KV cache, as bytes per cached value and work per read.

    ``bits``: stored bits per value (KIVI-style quantisation; 16: none). ``merge_from``: the
    depth fraction from which adjacent layers share one merged cache (MiniCache merges from the
    middle, 0.5; 1.0: no merging), keeping ``retained`` of the tokens unmerged in each merged
    layer. ``flops_per_value``: dequantisation work per cached value read. The cache's bytes
    scale by ``bits / 16 x (merge_from + (1 - merge_from) x (1/2 + retained))``."""

    bits: int = 16
    merge_from: float = 1.0
    retained: float = 0.0
    flops_per_value: float = 0.0

    def __post_init__(self):
        require(self.bits in (2, 3, 4, 8, 16), "bits", "one of 2, 3, 4, 8, 16", self.bits)
        require(0 <= self.merge_from <= 1, "merge_from", "a fraction in [0, 1]",
                self.merge_from)
        require(0 <= self.retained <= 0.5, "retained", "a fraction in [0, 0.5]", self.retained)
        require(self.flops_per_value >= 0, "flops_per_value", "a number >= 0",
                self.flops_per_value)

    @property
    def is_default(self) -> bool:
        return self == KvCompressionConfig()

    @property
    def ratio(self) -> float:
        """Compressed bytes over 16-bit bytes."""
        merged = self.merge_from + (1 - self.merge_from) * (0.5 + self.retained)
        return self.bits / 16 * merged

    def apply(self, model):
        if self.is_default:
            return model
        # (the bits replace the cache's own element size)
        factor = self.ratio * 2 / (model.kv_dtype_bytes or model.dtype_bytes)
        return dataclasses.replace(model, kv_compression=factor,
                                   kv_compression_flops_per_value=self.flops_per_value)


_TOP_KEYS = ("name", "seed", "model", "hardware", "cluster", "scheduler", "engine", "workload",
             "slo", "simulation", "description", "failures", "overload", "precision",
             "speculative", "kv_compression", "autoscaler")


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    model: str
    hardware: HardwareConfig
    cluster: ClusterConfig
    scheduler: EngineConfig
    workload: WorkloadConfig
    slo: SloConfig
    simulation: SimulationConfig
    description: str = ""
    failures: tuple[FailureConfig, ...] = ()    # what-ifs: sim/cluster/failures.py
    engine: EngineTerms = field(default_factory=EngineTerms)   # vLLM time terms: sim/cost/engine.py
    overload: OverloadConfig = field(default_factory=OverloadConfig)   # aborts and retries
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)  # weights, KV formats
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig)   # drafts
    kv_compression: KvCompressionConfig = field(default_factory=KvCompressionConfig)
    autoscaler: AutoscalerConfig | None = None      # an elastic fleet: sim/cluster/autoscaler.py
    path: str | None = field(default=None, compare=False)
    base_dir: Path | None = field(default=None, compare=False)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> "Scenario":
        path = scenario_path(path)
        if not path.is_file():
            raise ScenarioError(str(path), None, "an existing scenario file, or a shipped "
                                "scenario's name (" + ", ".join(shipped_scenarios()) + ")",
                                hint="file not found")
        try:
            data = yaml.safe_load(read_text(path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "?"
            raise ScenarioError(str(path), where, "valid YAML",
                                hint=str(getattr(exc, "problem", exc))) from None
        if overrides:
            data = apply_overrides(data if isinstance(data, dict) else {}, overrides, str(path))
        return cls.from_dict(data, path=str(path), base_dir=path.resolve().parent)

    @classmethod
    def from_dict(cls, data: Any, path: str | None = None,
                  base_dir: Path | None = None) -> "Scenario":
        if not isinstance(data, dict):
            raise ScenarioError(path, None, "a mapping of sections at the top level", data)
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            raise ScenarioError(path, str(unknown[0]), None,
                                hint=f"unknown key; {did_you_mean(str(unknown[0]), _TOP_KEYS)}")
        for key in ("model", "workload"):
            if key not in data:
                raise ScenarioError(path, key, "a value (required)")
        name = data.get("name", Path(path).stem if path else "scenario")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ScenarioError(path, "seed", "an integer >= 0", seed)
        if not isinstance(name, str):
            raise ScenarioError(path, "name", "a string", name)
        model = data["model"]
        if not isinstance(model, str):
            raise ScenarioError(path, "model", "a catalog name or a path to a config.json/YAML",
                                model)
        cluster = parse(ClusterConfig, data.get("cluster"), path=path, field="cluster")
        slo = parse(SloConfig, data.get("slo"), path=path, field="slo")
        return cls(
            name=name, seed=seed, model=model,
            hardware=_parse_hardware(data.get("hardware", "h100-sxm"), path),
            cluster=cluster,
            scheduler=_parse_scheduler(data.get("scheduler"), path),
            workload=parse(WorkloadConfig, data["workload"], path=path, field="workload"),
            slo=slo,
            simulation=parse(SimulationConfig, data.get("simulation"), path=path,
                             field="simulation"),
            description=str(data.get("description", "")),
            failures=_parse_failures(data.get("failures"), cluster.num_replicas, path,
                                     cluster.expert_parallel),
            engine=parse(EngineTerms, data.get("engine"), path=path, field="engine"),
            overload=parse(OverloadConfig, data.get("overload"), path=path, field="overload"),
            precision=parse(PrecisionConfig, data.get("precision"), path=path,
                            field="precision"),
            speculative=_parse_speculative(data.get("speculative"), cluster, path),
            kv_compression=parse(KvCompressionConfig, data.get("kv_compression"), path=path,
                                 field="kv_compression"),
            autoscaler=_parse_autoscaler(data.get("autoscaler"), cluster, slo, path),
            path=path, base_dir=base_dir)

    def to_dict(self) -> dict:
        """The resolved scenario, every default filled in (written as ``scenario.yaml``)."""
        out = {"name": self.name, "seed": self.seed, "model": self.model}
        hw = {"name": self.hardware.name}
        hw.update(self.hardware.overrides)
        out["hardware"] = hw
        for key in ("cluster", "scheduler", "engine", "workload", "slo", "simulation"):
            out[key] = _drop_none(dataclasses.asdict(getattr(self, key)))
        if not self.cluster.pools:      # scenarios without pools keep their echo
            del out["cluster"]["pools"], out["cluster"]["kv_transfer"]
        if self.cluster.moe_routing == RoutingSection():
            del out["cluster"]["moe_routing"]
        for pool in out["cluster"].get("pools", []):
            if "hardware" in pool:
                pool["hardware"] = {"name": pool["hardware"]["name"],
                                    **pool["hardware"].get("overrides", {})}
        if self.cluster.pipeline_parallel == 1:        # (nor pipeline parallelism)
            del out["cluster"]["pipeline_parallel"]
        if self.description:
            out["description"] = self.description
        if self.failures:     # only when set, so scenarios without failures keep their echo
            out["failures"] = [_drop_none(dataclasses.asdict(f)) for f in self.failures]
        if not self.overload.is_default:     # (and so do scenarios without overload controls)
            out["overload"] = _drop_none(dataclasses.asdict(self.overload))
        if not self.precision.is_default:
            out["precision"] = dataclasses.asdict(self.precision)
        if not self.kv_compression.is_default:
            out["kv_compression"] = dataclasses.asdict(self.kv_compression)
        if self.speculative.enabled:
            out["speculative"] = _drop_none(dataclasses.asdict(self.speculative))
        if self.autoscaler is not None:
            out["autoscaler"] = _drop_none(dataclasses.asdict(self.autoscaler))
        return out


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, tuple) and value and isinstance(value[0], dict):
        return [_drop_none(v) for v in value]
    return value


def _parse_speculative(value: Any, cluster: ClusterConfig, path: str | None) -> SpeculativeConfig:
    spec = parse(SpeculativeConfig, value, path=path, field="speculative")
    if spec.enabled and (cluster.expert_parallel or cluster.pipeline_parallel > 1):
        raise ScenarioError(path, "speculative.num_tokens",
                            "0 with expert_parallel or pipeline_parallel (not modelled together)",
                            spec.num_tokens)
    return spec


def _parse_autoscaler(value: Any, cluster: ClusterConfig, slo: SloConfig,
                      path: str | None) -> AutoscalerConfig | None:
    if value is None:
        return None
    cfg = parse(AutoscalerConfig, value, path=path, field="autoscaler")
    if not cfg.min_replicas <= cluster.replicas <= cfg.max_replicas:
        raise ScenarioError(path, "cluster.replicas", f"the replicas up at the start, between "
                            f"autoscaler.min_replicas ({cfg.min_replicas}) and max_replicas "
                            f"({cfg.max_replicas})", cluster.replicas)
    if cluster.pools:
        raise ScenarioError(path, "autoscaler", "no autoscaler with cluster.pools (scaling "
                            "disaggregated pools is not modelled)", "set")
    if cluster.expert_parallel and cfg.max_replicas > 1:
        raise ScenarioError(path, "autoscaler", "no autoscaler with cluster.expert_parallel "
                            "across replicas (ranks step together)", "set")
    if cfg.policy == "slo" and slo.targets("default").ttft_s is None:
        raise ScenarioError(path, "autoscaler.policy", "a policy other than 'slo' without a "
                            "TTFT target (slo.ttft_s)", cfg.policy)
    return cfg


def _parse_hardware(value: Any, path: str | None, field: str = "hardware") -> HardwareConfig:
    """A ``hardware`` value: a profile name or path, or ``{name: ..., <overrides>}``."""
    if isinstance(value, str):
        return HardwareConfig(name=value)
    if isinstance(value, dict):
        value = {"name": HardwareConfig.name, **value}
        if not isinstance(value["name"], str):
            raise ScenarioError(path, f"{field}.name", "a profile name or path", value["name"])
        rest = {k: v for k, v in value.items() if k != "name"}
        return HardwareConfig(name=value["name"], overrides=copy.deepcopy(rest))
    raise ScenarioError(path, field, "a profile name, a path, or {name: ..., <overrides>}",
                        value)


def _parse_failures(value: Any, replicas: int, path: str | None,
                    expert_parallel: bool = False) -> tuple[FailureConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScenarioError(path, "failures", "a list of {kind: replica_down|straggler, replica, "
                            "at_s, duration_s[, factor]}", value)
    failures = tuple(parse(FailureConfig, item, path=path, field=f"failures[{i}]")
                     for i, item in enumerate(value))
    if failures and expert_parallel:
        raise ScenarioError(path, "failures", "no failures with cluster.expert_parallel (a "
                            "lost rank stops its whole expert-parallel group; not modelled)",
                            value)
    for i, f in enumerate(failures):
        if f.replica >= replicas:
            raise ScenarioError(path, f"failures[{i}].replica",
                                f"a replica index < cluster.replicas ({replicas})", f.replica)
    return failures


def _parse_scheduler(value: Any, path: str | None) -> EngineConfig:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ScenarioError(path, "scheduler", "a mapping like {name: fcfs, ...}", value)
    scheduler = SCHEDULERS.lookup(value.get("name", "fcfs"), path, "scheduler.name")
    return parse(scheduler.Config, value, path=path, field="scheduler")


def apply_overrides(data: dict, overrides: list[str], path: str | None = None) -> dict:
    """Apply ``--set a.b=value`` overrides (values parsed as YAML) to a raw scenario mapping."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(path, item, "--set KEY.PATH=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part == "hardware":
                child = {"name": child}
            if not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


__all__ = ["Scenario", "ClusterConfig", "SloConfig", "SloTargets", "HardwareConfig",
           "SimulationConfig", "apply_overrides", "DEFAULT_SCENARIO", "LlmsimError"]
