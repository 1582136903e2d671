"""DeviceSpec: one accelerator's datasheet numbers plus the efficiency it achieves in practice."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # only for the annotations: loading a profile's tables needs pandas
    from sim.hardware.calibration.data import CalibrationData
    from sim.hardware.calibration.layers import MeasuredLayers


@dataclass(frozen=True)
class Efficiency:
    """Achievable fractions of peak and fixed overheads, applied on top of the roofline.

    Explicit because datasheet peaks are never reached: a large bf16 GEMM reaches ~60-75% of peak
    FLOP/s, a streaming kernel ~80-90% of HBM bandwidth, collectives ~70-85% of link bandwidth.
    Overridable per scenario (``hardware: {name: h100-sxm, efficiency: {memory: 0.9}}``); replaced
    by measured tables once a profile has calibration data.
    """

    compute: float = 0.70              # fraction of dense peak FLOP/s achieved
    memory: float = 0.85               # fraction of HBM bandwidth achieved
    interconnect: float = 0.80         # fraction of link bandwidth achieved by collectives
    kernel_launch_s: float = 2e-6      # fixed cost per kernel (launch + tail), with CUDA graphs
    iteration_overhead_s: float = 4e-4  # per-iteration framework cost (scheduling, sampling, I/O)


@dataclass(frozen=True)
class DeviceSpec:
    """One device. Bandwidths are bytes/s in one direction; FLOP/s are dense (no sparsity)."""

    name: str
    kind: str                          # "gpu" (DEVICE_KINDS key)
    vendor: str
    bf16_flops: float
    fp16_flops: float
    fp8_flops: float
    fp32_flops: float
    hbm_bytes: float                   # memory capacity
    hbm_bandwidth: float               # bytes/s
    interconnect_bandwidth: float      # bytes/s per direction per device (NVLink, Infinity Fabric, or PCIe)
    interconnect_latency_s: float
    pcie_bandwidth: float              # bytes/s per direction, host <-> device (swap)
    tdp_w: float
    idle_w: float
    energy_pj_per_flop: float
    energy_pj_per_hbm_byte: float
    price_usd_per_hour: float
    efficiency: Efficiency = field(default_factory=Efficiency)
    description: str = field(default="", compare=False)
    sources: tuple[str, ...] = field(default=(), compare=False)
    # Measured kernel tables and fitted efficiency curves; None: the roofline above.
    # Hashable and compared by a digest of its contents.
    calibration: CalibrationData | None = None
    # vLLM layer tables measured on this GPU, per model and TP degree (calibration/layers.py);
    # a model they cover is costed from them (sim.cost.profiled). Compared by a digest.
    measured: MeasuredLayers | None = None

    def peak_flops(self, dtype: str = "bf16") -> float:
        try:
            return {"bf16": self.bf16_flops, "fp16": self.fp16_flops, "fp8": self.fp8_flops,
                    "fp32": self.fp32_flops}[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; expected bf16, fp16, fp8 or fp32") from None

    def with_efficiency(self, **overrides: float) -> "DeviceSpec":
        return replace(self, efficiency=replace(self.efficiency, **overrides))
