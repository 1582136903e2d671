"""Duplex-family devices: an xPU and an optional PIM processor sharing one device's HBM stacks.

``kind: duplex`` in a profile. The base :class:`~sim.hardware.device.DeviceSpec` fields describe
the xPU and its external HBM path (``memory.bandwidth_gb_s``); the ``duplex:`` section adds the
processor in memory (Logic-PIM on the HBM logic die, BankGroup-PIM or Bank-PIM on the DRAM dies),
the bank bundles both processors stream from, the placement policy, co-processing switches, MoE
routing and the node topology. With ``pim: null`` the device is the xPU alone: the paper's GPU
baseline, costed by the same model so every baseline shares routing, topology and energy rules.

Reference: Yun et al., "Duplex: A Device for Large Language Models with Mixture of Experts,
Grouped Query Attention, and Continuous Batching", MICRO 2024 (arXiv 2409.01141).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from sim.config import require
from sim.hardware.device import DeviceSpec

_TERA, _GIGA, _MICRO = 1e12, 1e9, 1e-6

PIM_LOCATIONS = ("logic_die", "bank_group", "bank")
PLACEMENT_POLICIES = ("paper", "fastest", "fastest_allowed", "threshold")
ASSUMPTIONS = ("realistic", "paper")
ROUTING_KINDS = ("balanced", "uniform", "zipf", "fixed")
# op kinds the threshold policy may send to the PIM (sim.cost.ops.OP_KINDS without collectives)
PLACEABLE_KINDS = ("gemm", "attn_prefill", "attn_decode", "moe_expert", "elementwise")


# -- YAML sections (datasheet units) ------------------------------------------------------------
@dataclass(frozen=True)
class PimEfficiencySection:
    """Achieved fractions for the PIM. Defaults equal the xPU's defaults: the paper gives no
    measured PIM efficiency, and using the same fractions keeps the comparison neutral."""

    compute: float = 0.70
    memory: float = 0.85
    kernel_launch_us: float = 2.0     # per PIM kernel: command issue + completion signal

    def check(self, at: str) -> None:
        for name in ("compute", "memory"):
            value = getattr(self, name)
            require(0 < value <= 1, f"{at}.{name}", "a fraction in (0, 1]", value)
        require(self.kernel_launch_us >= 0, f"{at}.kernel_launch_us", "a number >= 0",
                self.kernel_launch_us)


@dataclass(frozen=True)
class PimSection:
    """The processor in memory, per device (all its HBM stacks together)."""

    location: Literal["logic_die", "bank_group", "bank"]
    fp16_tflops: float                 # dense peak (FP16/BF16 MACs x 2)
    bandwidth_gb_s: float              # the DRAM bandwidth it streams at (internal, TSV/bank side)
    pj_per_hbm_byte: float             # DRAM access energy on the PIM's path
    # Whether the xPU can stream from HBM while the PIM runs. Logic-PIM: yes, over different bank
    # bundles. Bank/BankGroup-PIM compute in the DRAM banks in an all-bank mode that locks the
    # xPU out, so their work serialises with the xPU's.
    concurrent_with_xpu: bool
    efficiency: PimEfficiencySection = PimEfficiencySection()

    def check(self, at: str) -> None:
        require(self.fp16_tflops > 0, f"{at}.fp16_tflops", "a number > 0", self.fp16_tflops)
        require(self.bandwidth_gb_s > 0, f"{at}.bandwidth_gb_s", "a number > 0",
                self.bandwidth_gb_s)
        require(self.pj_per_hbm_byte > 0, f"{at}.pj_per_hbm_byte", "a number > 0",
                self.pj_per_hbm_byte)
        self.efficiency.check(f"{at}.efficiency")


@dataclass(frozen=True)
class PlacementSection:
    """Which processor runs each op (see sim/cost/placement.py).

    ``paper``: decode attention, and the MoE experts of decode-only iterations, on the PIM; all
    else on the xPU. ``fastest``: each op where its roofline time is smaller.
    ``fastest_allowed``: ops of a kind in ``pim_kinds`` where their roofline time is smaller,
    every other op on the xPU (the paper authors' simulator, with dense layers and the MoE gate
    forced onto the xPU). ``threshold``: ops of a kind in ``pim_kinds`` whose Op/B (FLOPs per
    byte) is at most ``pim_max_op_b``."""

    policy: Literal["paper", "fastest", "fastest_allowed", "threshold"] = "paper"
    pim_max_op_b: float = 32.0
    pim_kinds: tuple[str, ...] = ("attn_decode", "moe_expert")

    def check(self, at: str) -> None:
        require(self.pim_max_op_b > 0, f"{at}.pim_max_op_b", "a number > 0", self.pim_max_op_b)
        for kind in self.pim_kinds:
            require(kind in PLACEABLE_KINDS, f"{at}.pim_kinds",
                    "op kinds among " + ", ".join(PLACEABLE_KINDS), kind)


@dataclass(frozen=True)
class CoprocessingSection:
    """Both processors busy at once. ``attention``: prefill attention on the xPU while decode
    attention runs on the PIM (mixed iterations). ``experts``: the experts of a MoE layer split
    between the two, least-loaded experts to the PIM.

    ``expert_split``: how the split is chosen. ``optimal``: of all splits (the j least-loaded
    experts on the PIM, j = 0..E), the one with the smallest stage time. ``greedy`` (the paper
    authors' heuristic): start with every expert on the PIM and move the most-loaded to the xPU,
    in ``expert_groups`` equal groups when a device holds more experts than that, while the
    stage time keeps falling."""

    attention: bool = False
    experts: bool = False
    expert_split: Literal["optimal", "greedy"] = "optimal"
    expert_groups: int = 4

    def check(self, at: str) -> None:
        require(self.expert_groups >= 1, f"{at}.expert_groups", "an integer >= 1",
                self.expert_groups)


@dataclass(frozen=True)
class RoutingSection:
    """Tokens per expert in each iteration (sim/cost/moe_routing.py).

    ``balanced``: the expectation, ``num_tokens * top_k`` spread evenly (deterministic).
    ``uniform`` / ``zipf`` / ``fixed``: random counts with each routed slot going to expert i
    with probability 1/E, proportional to 1/(i+1)**zipf_s, or ``probabilities[i]``; ``draws``
    pre-drawn count vectors per token count, picked per iteration by a hash of the batch shape,
    so a decode run fast-forwarded in one call sees the same draws as stepping would."""

    kind: Literal["balanced", "uniform", "zipf", "fixed"] = "balanced"
    zipf_s: float | None = None
    probabilities: tuple[float, ...] | None = None
    seed: int = 0
    draws: int = 64

    def check(self, at: str) -> None:
        require((self.zipf_s is not None) == (self.kind == "zipf"), f"{at}.zipf_s",
                "a number > 0 with kind zipf (and only then)", self.zipf_s)
        if self.zipf_s is not None:
            require(self.zipf_s > 0 and math.isfinite(self.zipf_s), f"{at}.zipf_s",
                    "a number > 0", self.zipf_s)
        require((self.probabilities is not None) == (self.kind == "fixed"),
                f"{at}.probabilities", "a list of per-expert probabilities with kind fixed "
                "(and only then)", self.probabilities)
        if self.probabilities is not None:
            require(len(self.probabilities) > 0 and all(p >= 0 for p in self.probabilities)
                    and sum(self.probabilities) > 0, f"{at}.probabilities",
                    "numbers >= 0 with a positive sum", self.probabilities)
        require(1 <= self.draws <= 4096, f"{at}.draws", "an integer in [1, 4096]", self.draws)


@dataclass(frozen=True)
class TopologySection:
    """Devices per node (NVLink, the profile's ``interconnect``) and the link between nodes."""

    devices_per_node: int = 8
    inter_node_name: str = "InfiniBand"
    # per device, per direction: 8 x 400 Gb/s ConnectX-7 = 400 GB/s per 8-device node
    inter_node_gb_s: float = 50.0
    inter_node_latency_us: float = 5.0
    # ``hierarchical``: ring all-reduce inside each node, then across nodes on the inter-node
    # link; all-to-all traffic on the link it crosses. ``paper``: the authors' simulator's
    # formulas (sim/cost/parallel.py)
    collectives: Literal["hierarchical", "paper"] = "hierarchical"

    def check(self, at: str) -> None:
        require(self.devices_per_node >= 1, f"{at}.devices_per_node", "an integer >= 1",
                self.devices_per_node)
        require(self.inter_node_gb_s > 0, f"{at}.inter_node_gb_s", "a number > 0",
                self.inter_node_gb_s)
        require(self.inter_node_latency_us >= 0, f"{at}.inter_node_latency_us", "a number >= 0",
                self.inter_node_latency_us)


@dataclass(frozen=True)
class DuplexSection:
    """The ``duplex:`` section of a ``kind: duplex`` profile."""

    # ``realistic``: the profile's numbers as written. ``paper``: the Duplex authors' simulator
    # (PAPER_ASSUMPTIONS below is laid over the profile before the scenario's own overrides)
    assumptions: Literal["realistic", "paper"] = "realistic"
    pim: PimSection | None = None
    # Bank bundles per device: groups of banks with their own data paths. The PIM's bandwidth is
    # the sum over bundles; a bundle is shared by whichever processors stream from it.
    bank_bundles: int = 2
    # 0.909 nJ per row activation (paper) / 1 KiB HBM3 page: paid per byte streamed on any path
    row_activation_pj_per_byte: float = 0.0
    # Whether co-processed streams share the bank bundles' bandwidth (sim/hardware/bundles.py);
    # false: each processor runs at its own rate, the stage takes the longer of the two
    bundle_contention: bool = True
    # false: the embedding lookup and the LM head cost nothing (the authors' simulator)
    embedding_and_lm_head: bool = True
    # MoE layers: ``tensor`` (ET) splits every expert over the devices of a node, experts divided
    # among nodes; ``expert`` (EP) gives each device whole experts
    expert_parallel: Literal["tensor", "expert"] = "tensor"
    placement: PlacementSection = PlacementSection()
    coprocessing: CoprocessingSection = CoprocessingSection()
    routing: RoutingSection = RoutingSection()
    topology: TopologySection = TopologySection()

    def check(self, at: str) -> None:
        if self.pim is not None:
            self.pim.check(f"{at}.pim")
        require(self.bank_bundles >= 1, f"{at}.bank_bundles", "an integer >= 1",
                self.bank_bundles)
        require(self.row_activation_pj_per_byte >= 0, f"{at}.row_activation_pj_per_byte",
                "a number >= 0", self.row_activation_pj_per_byte)
        self.placement.check(f"{at}.placement")
        self.coprocessing.check(f"{at}.coprocessing")
        self.routing.check(f"{at}.routing")
        self.topology.check(f"{at}.topology")

    def spec_fields(self) -> dict:
        """The DuplexSpec fields this section sets (SI units)."""
        t = self.topology
        return dict(
            assumptions=self.assumptions,
            pim=None if self.pim is None else PimSpec.of(self.pim),
            bank_bundles=self.bank_bundles, bundle_contention=self.bundle_contention,
            embedding_and_lm_head=self.embedding_and_lm_head,
            row_activation_pj_per_byte=self.row_activation_pj_per_byte,
            expert_parallel=self.expert_parallel, placement=self.placement,
            coprocessing=self.coprocessing, routing=self.routing,
            devices_per_node=t.devices_per_node,
            inter_node_bandwidth=t.inter_node_gb_s * _GIGA,
            inter_node_latency_s=t.inter_node_latency_us * _MICRO, collectives=t.collectives)


# -- the paper's assumptions ------------------------------------------------------------------
# The Duplex authors' simulator (an analytic roofline): what ``assumptions: paper`` lays over a
# profile, before the scenario's own overrides (which therefore still win). Each line is one of
# its rules; the numbers are its presets.
PAPER_ASSUMPTIONS: dict = {
    # 100% of peak FLOP/s, bandwidth and link rate; no kernel-launch or per-iteration cost
    "efficiency": {"compute": 1.0, "memory": 1.0, "interconnect": 1.0, "kernel_launch_us": 0.0,
                   "iteration_overhead_ms": 0.0},
    "power": {"idle_w": 0.0},                      # dynamic energy only
    "interconnect": {"bandwidth_gb_s": 450.0, "latency_us": 0.8},     # NVLink per direction
    "duplex": {
        "bundle_contention": False,                # two time tracks joined by a max
        "embedding_and_lm_head": False,            # both cost nothing
        # each op on the faster unit, except dense layers and the MoE gate (on the xPU)
        "placement": {"policy": "fastest_allowed",
                      "pim_kinds": ["attn_decode", "attn_prefill", "moe_expert"]},
        # heaviest experts to the xPU, in 4 groups, while the estimate falls
        "coprocessing": {"expert_split": "greedy", "expert_groups": 4},
        # 400 Gb/s NDR InfiniBand per device; ring all-reduce at NVLink parameters
        "topology": {"inter_node_gb_s": 50.0, "inter_node_latency_us": 0.13,
                     "collectives": "paper"},
    },
}
_PAPER_PIM = {"efficiency": {"compute": 1.0, "memory": 1.0, "kernel_launch_us": 0.0}}


def assumptions_of(profile: dict) -> object:
    """The ``duplex.assumptions`` a raw profile mapping asks for (``None`` when unset)."""
    section = profile.get("duplex")
    return section.get("assumptions") if isinstance(section, dict) else None


def paper_overlay(profile: dict) -> dict:
    """:data:`PAPER_ASSUMPTIONS` for this raw profile mapping: its PIM, if it has one, at 100%
    of its peaks and without launch cost too."""
    section = profile.get("duplex")
    if isinstance(section, dict) and isinstance(section.get("pim"), dict):
        return {**PAPER_ASSUMPTIONS,
                "duplex": {**PAPER_ASSUMPTIONS["duplex"], "pim": _PAPER_PIM}}
    return PAPER_ASSUMPTIONS


# -- specs (SI units) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PimSpec:
    location: str
    flops: float                       # FLOP/s, dense FP16/BF16 peak
    bandwidth: float                   # bytes/s
    energy_pj_per_hbm_byte: float
    concurrent_with_xpu: bool
    compute_efficiency: float = 0.70
    memory_efficiency: float = 0.85
    kernel_launch_s: float = 2e-6

    @classmethod
    def of(cls, s: PimSection) -> "PimSpec":
        return cls(location=s.location, flops=s.fp16_tflops * _TERA,
                   bandwidth=s.bandwidth_gb_s * _GIGA, energy_pj_per_hbm_byte=s.pj_per_hbm_byte,
                   concurrent_with_xpu=s.concurrent_with_xpu,
                   compute_efficiency=s.efficiency.compute, memory_efficiency=s.efficiency.memory,
                   kernel_launch_s=s.efficiency.kernel_launch_us * _MICRO)

    @property
    def ridge_op_b(self) -> float:
        """Op/B at which the PIM turns from memory- to compute-bound (paper: 8 for Logic-PIM)."""
        return self.flops / self.bandwidth


@dataclass(frozen=True)
class DuplexSpec(DeviceSpec):
    """A device of kind ``duplex``: the DeviceSpec fields are the xPU and its HBM path."""

    assumptions: str = "realistic"
    pim: PimSpec | None = None
    bank_bundles: int = 2
    bundle_contention: bool = True
    embedding_and_lm_head: bool = True
    row_activation_pj_per_byte: float = 0.0
    expert_parallel: str = "tensor"
    placement: PlacementSection = field(default_factory=PlacementSection)
    coprocessing: CoprocessingSection = field(default_factory=CoprocessingSection)
    routing: RoutingSection = field(default_factory=RoutingSection)
    devices_per_node: int = 8
    inter_node_bandwidth: float = 50e9
    inter_node_latency_s: float = 5e-6
    collectives: str = "hierarchical"

    @classmethod
    def from_device(cls, device: DeviceSpec) -> "DuplexSpec":
        """A plain GPU as an xPU without PIM (ET, balanced routing, 8 per node)."""
        if isinstance(device, DuplexSpec):
            return device
        return cls(**{f.name: getattr(device, f.name) for f in fields(DeviceSpec)})
