"""Processors and placement: which of the xPU and the PIM runs an op, by arithmetic intensity.

Each op knows its Op/B (FLOPs per DRAM byte). A processor is a set of rates for the one cost
function (:func:`sim.cost.roofline.op_seconds`); its roofline turns from memory- to
compute-bound at its ridge, peak FLOP/s / bandwidth: ~240 Op/B for an H100-class xPU at the
profile's efficiencies, 8 for Logic-PIM, 1 for Bank-PIM. Ops well below the PIM's ridge (decode
attention ~ GQA group size, an expert ~ the tokens routed to it) run faster on the PIM's wider
path; ops with many tokens (projections of a big batch, prefill) belong on the xPU.

Policies (``PLACEMENTS``, the names a profile's ``duplex.placement.policy`` takes):

- ``paper``: the Duplex paper's rule: decode attention always on the PIM; the MoE experts on the
  PIM in decode-only iterations (in iterations with prefill they have many tokens each); all
  else on the xPU.
- ``fastest``: each op on the processor whose roofline time is smaller.
- ``fastest_allowed``: as ``fastest`` for the kinds in ``pim_kinds``; every other op on the xPU
  (the Duplex authors' simulator keeps dense layers and the MoE gate on the xPU).
- ``threshold``: ops of a kind in ``pim_kinds`` with Op/B <= ``pim_max_op_b`` on the PIM.

Policies decide with numpy on arrays (one decision per decode step of a fast-forwarded run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.cost.energy import EnergyPath
from sim.cost.ops import ATTN_DECODE, MOE_EXPERT
from sim.cost.roofline import Rates, op_seconds
from sim.hardware.duplex import PlacementSection

XPU, PIM = "xpu", "pim"


@dataclass(frozen=True)
class Processor:
    """One processor sharing the HBM: its rates (peak x efficiency, DRAM bandwidth x
    efficiency, launch cost) and its energy path."""

    name: str
    rates: Rates
    energy: EnergyPath

    def seconds(self, flops, nbytes):
        """Roofline time of one kernel (elementwise on numpy arrays)."""
        return op_seconds(flops, nbytes, self.rates)

    def busy_seconds(self, flops, nbytes):
        """The roofline without the launch (parts of a fused kernel)."""
        return op_seconds(flops, nbytes, self.rates, launch=False)

    @property
    def launch_s(self) -> float:
        return self.rates.launch_s

    @property
    def ridge_op_b(self) -> float:
        return self.rates.ridge_op_b


# A policy answers "on the PIM?" for one op kind: (kind, intensity, decode_only, t_xpu, t_pim,
# config) -> bool or a bool array. Intensity and times may be arrays.
Policy = Callable[[str, object, bool, object, object, PlacementSection], object]


def _paper(kind, intensity, decode_only, t_xpu, t_pim, cfg):
    return kind == ATTN_DECODE or (kind == MOE_EXPERT and decode_only)


def _fastest(kind, intensity, decode_only, t_xpu, t_pim, cfg):
    return t_pim < t_xpu


def _fastest_allowed(kind, intensity, decode_only, t_xpu, t_pim, cfg):
    return kind in cfg.pim_kinds and t_pim < t_xpu


def _threshold(kind, intensity, decode_only, t_xpu, t_pim, cfg):
    if kind not in cfg.pim_kinds:
        return False
    return intensity <= cfg.pim_max_op_b


PLACEMENTS: dict[str, Policy] = {"paper": _paper, "fastest": _fastest,
                                 "fastest_allowed": _fastest_allowed, "threshold": _threshold}


def on_pim(cfg: PlacementSection, kind: str, intensity, decode_only: bool, t_xpu, t_pim):
    """Whether ``cfg``'s policy puts this op on the PIM (a bool, or a bool array)."""
    return PLACEMENTS[cfg.policy](kind, intensity, decode_only, t_xpu, t_pim, cfg)


def pick(cfg: PlacementSection, kind: str, flops, nbytes, decode_only: bool,
         xpu: Processor, pim: Processor | None, t_xpu=None):
    """(seconds, joules, on_pim) of one op placed by ``cfg`` (elementwise on arrays);
    ``t_xpu``: the op's measured time on the xPU, if known, instead of its roofline."""
    t_x = xpu.seconds(flops, nbytes) if t_xpu is None else t_xpu
    e_x = xpu.energy.op_j(flops, nbytes)
    if pim is None:
        return t_x, e_x, np.zeros(np.shape(t_x), dtype=bool)
    t_p = pim.seconds(flops, nbytes)
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(np.asarray(nbytes) > 0, np.divide(flops, nbytes), np.inf)
    where = np.asarray(on_pim(cfg, kind, intensity, decode_only, t_x, t_p), dtype=bool)
    where = np.broadcast_to(where, np.shape(t_x))
    return (np.where(where, t_p, t_x), np.where(where, pim.energy.op_j(flops, nbytes), e_x),
            where)
