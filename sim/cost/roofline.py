"""The cost core: the one function that turns an operator's FLOPs and bytes into seconds.

A processor is a set of :class:`Rates`: the FLOP/s and bytes/s it achieves, a fixed cost per
kernel, and, for a fitted efficiency curve, the sizes at which it reaches half those rates. An op
of ``flops`` FLOPs moving ``nbytes`` bytes takes (:func:`op_seconds`)

    max((flops + half_flops) / flops_per_s, (nbytes + half_bytes) / bytes_per_s) + launch_s

- the datasheet roofline: rates = peak x efficiency, the profile's launch cost, no half-sizes;
- a fitted curve (:class:`~sim.hardware.calibration.curves.KindCurve`, :meth:`Rates.of_curve`):
  rates = peak x fitted fraction, half-sizes, no launch (a small kernel's fixed cost is the
  half-size over the rate).

Every cost model prices its ops here: the GPU model (``sim/cost/model.py``), the Duplex model's
xPU and PIM, which differ only in their rates (``sim/cost/placement.py``), the calibration
predictor (``sim/cost/predictor.py``), and the calibration tools' fits and scores.

Only ``+``, ``/`` and a max, which are exactly rounded IEEE operations on Python floats and numpy
float64 alike, so a scalar and a vectorised evaluation agree to the last bit (the cost model's
decode fast path relies on it). A zero half-size or launch is not added: ``x + 0.0 == x``, and an
array operation fewer on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.hardware.calibration.curves import KindCurve


@dataclass(frozen=True, slots=True)
class Rates:
    """What one processor achieves on one kind of op. Rates may be numpy arrays (one processor
    per row, e.g. rows measured on several GPUs); half-sizes and launch are scalars."""

    flops_per_s: float
    bytes_per_s: float
    launch_s: float = 0.0       # fixed cost per kernel (launch + tail)
    half_flops: float = 0.0     # fitted curve: FLOPs at which half of flops_per_s is reached
    half_bytes: float = 0.0

    @classmethod
    def datasheet(cls, peak_flops, bandwidth, compute: float, memory: float,
                  launch_s: float = 0.0) -> "Rates":
        """The fixed-efficiency roofline: ``compute`` and ``memory`` fractions of the peaks."""
        return cls(peak_flops * compute, bandwidth * memory, launch_s)

    @classmethod
    def of_curve(cls, curve: KindCurve, peak_flops, bandwidth) -> "Rates":
        """A fitted curve's rates on a device with these peaks (its fractions are of them)."""
        return cls(peak_flops * curve.compute_fraction, bandwidth * curve.memory_fraction, 0.0,
                   curve.compute_half_flops, curve.memory_half_bytes)

    @property
    def ridge_op_b(self) -> float:
        """Op/B at which the processor turns from memory- to compute-bound."""
        return self.flops_per_s / self.bytes_per_s


def line_times(flops, nbytes, rates: Rates) -> tuple:
    """(compute seconds, memory seconds) of an op: the two lines of its roofline."""
    half_f, half_b = rates.half_flops, rates.half_bytes
    return ((flops + half_f if half_f else flops) / rates.flops_per_s,
            (nbytes + half_b if half_b else nbytes) / rates.bytes_per_s)


def slower(t_compute, t_memory):
    """The roofline's max of its two lines: elementwise on arrays (and pandas columns), a
    Python float for Python floats (the simulator's scalar fast paths key on the type)."""
    if type(t_compute) is float and type(t_memory) is float:
        return t_compute if t_compute > t_memory else t_memory
    return np.maximum(t_compute, t_memory)


def op_seconds(flops, nbytes, rates: Rates, launch: bool = True):
    """Seconds of one kernel: the slower of its two lines, plus the launch (elementwise on numpy
    arrays). ``launch`` False: without the fixed cost per kernel, for the parts of a fused
    kernel that launches once."""
    # line_times and slower inlined: this is on the simulator's hot path (every decode step)
    half_f, half_b = rates.half_flops, rates.half_bytes
    t_f = (flops + half_f if half_f else flops) / rates.flops_per_s
    t_b = (nbytes + half_b if half_b else nbytes) / rates.bytes_per_s
    if type(t_f) is float and type(t_b) is float:
        t = t_f if t_f > t_b else t_b
    else:
        t = np.maximum(t_f, t_b)
    return t + rates.launch_s if launch and rates.launch_s else t


def is_compute_bound(flops, nbytes, rates: Rates):
    """Whether the compute line binds (elementwise on arrays)."""
    t_compute, t_memory = line_times(flops, nbytes, rates)
    return t_compute > t_memory
