"""Pipeline parallelism: a replica's layers split into ``stages`` groups of tensor-parallel devices.

vLLM runs ``pipeline_parallel_size`` micro-batches at once (one per "virtual engine"), each with
its own share of the running requests, so that every stage is busy with one while the others
are elsewhere in the pipe. A micro-batch's pass goes through every stage (all layers, on
``tp`` devices per stage) and sends its activations between stages on the link; its requests
emit one token per pass. Per iteration of the replica (one token for each running request):

- the batch is split into ``m = min(stages, sequences)`` micro-batches, requests dealt
  round-robin, prefill chunks whole (a chunk is not split between virtual engines);
- the period is the heaviest micro-batch's pass, its compute scaled by the largest stage's share
  of the layers (``stages * ceil(L / stages) / L``: uneven stages make every stage wait for the
  largest) plus ``stages - 1`` activation sends;
- the stages are busy ``sum(passes) / (stages * period)`` of it; the rest is the bubble (fewer
  micro-batches than stages, unequal micro-batches, uneven stages).

Each micro-batch is costed by the wrapped cost model (all layers on one stage's ``tp``
devices: the sum over stages of each stage's own layers). Energy: the micro-batches' dynamic
energy plus static power of all ``stages x tp`` devices over the period.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sim.cost.model import BatchShape, CostModel


class PipelineCostModel:
    """``base`` (one stage's devices, every layer) run as ``stages`` pipeline stages."""

    def __init__(self, base: CostModel, stages: int, link_bytes_per_s: float,
                 link_latency_s: float):
        self.base, self.stages = base, stages
        self.model, self.device, self.tp = base.model, base.device, base.tp
        layers = base.model.num_layers
        self._stage_scale = stages * math.ceil(layers / stages) / layers
        self._row_bytes = base.model.hidden_size * base.model.dtype_bytes
        self._link_bytes_per_s, self._link_latency_s = link_bytes_per_s, link_latency_s
        self._static_w = base._static_w        # one stage's devices

    def micro_batches(self, shape: BatchShape) -> list[tuple[BatchShape, int]]:
        """``(micro-batch, how many like it)``: the requests dealt round-robin over
        ``min(stages, sequences)`` micro-batches, decodes from the first, prefill chunks from
        the last (so that they land beside fewer decodes)."""
        nd, nprefill = shape.num_decode, shape.num_prefill
        m = max(1, min(self.stages, nd + nprefill))
        if m == 1:
            return [(shape, 1)]
        counts: dict[tuple[int, int], int] = {}
        for i in range(m):
            d = nd // m + (1 if i < nd % m else 0)
            p = nprefill // m + (1 if m - 1 - i < nprefill % m else 0)
            counts[(d, p)] = counts.get((d, p), 0) + 1
        return [(_part(shape, d, p), n) for (d, p), n in counts.items()]

    def _pass_s(self, micro: BatchShape) -> tuple[float, float, float]:
        """(pass seconds, compute seconds summed over the stages, dynamic joules) of one
        micro-batch through every stage."""
        seconds, joules = self.base.iteration_time(micro)
        dynamic = joules - self._static_w * seconds
        send = self._link_latency_s + micro.num_tokens * self._row_bytes / self._link_bytes_per_s
        return seconds * self._stage_scale + (self.stages - 1) * send, seconds, dynamic

    def _period(self, shape: BatchShape) -> tuple[float, float, float]:
        costs = [(self._pass_s(micro), count) for micro, count in self.micro_batches(shape)]
        period = max(p for (p, _, _), _ in costs)
        busy = sum(s * count for (_, s, _), count in costs)
        dynamic = sum(j * count for (_, _, j), count in costs)
        return period, dynamic, busy / (self.stages * period) if period > 0 else 0.0

    def iteration_time(self, shape: BatchShape) -> tuple[float, float]:
        period, dynamic, _ = self._period(shape)
        return period, dynamic + self._static_w * self.stages * period

    def stage_utilisation(self, shape: BatchShape) -> float:
        """Share of the stages' time busy in an iteration of ``shape`` (1 - the bubble)."""
        return self._period(shape)[2]

    def decode_run_energy_sum(self, num_seqs: int, first_context_tokens: int, steps: int,
                              shared_kv_tokens: int = 0,
                              first_max_context: int = 0) -> tuple[list[float], Callable]:
        """Step by step, each step exactly :meth:`iteration_time` of its shape."""
        times, energies = [], []
        for k in range(steps):
            shape = BatchShape(num_seqs, num_seqs, num_seqs,
                               first_context_tokens + num_seqs * k,
                               decode_shared_kv_tokens=shared_kv_tokens,
                               decode_max_context=first_max_context + k
                               if first_max_context else 0)
            t, j = self.iteration_time(shape)
            times.append(t)
            energies.append(j)
        return times, lambda k: float(sum(energies[:k]))


def _part(shape: BatchShape, decodes: int, prefills: int) -> BatchShape:
    """A micro-batch of ``decodes`` of the shape's decodes and ``prefills`` of its prefill
    chunks, each an average one of its kind."""
    d = decodes / shape.num_decode if shape.num_decode else 0.0
    p = prefills / shape.num_prefill if shape.num_prefill else 0.0
    prefill_tokens = round(shape.prefill_tokens * p)
    emitting = round(shape.num_seqs_emitting * (decodes + prefills)
                     / max(shape.num_decode + shape.num_prefill, 1))
    return BatchShape(
        num_tokens=decodes + prefill_tokens, num_seqs_emitting=emitting, num_decode=decodes,
        decode_context_tokens=round(shape.decode_context_tokens * d), num_prefill=prefills,
        prefill_tokens=prefill_tokens, prefill_attn_pairs=round(shape.prefill_attn_pairs * p),
        prefill_kv_tokens=round(shape.prefill_kv_tokens * p),
        decode_shared_kv_tokens=round(shape.decode_shared_kv_tokens * d),
        decode_max_context=shape.decode_max_context if decodes else 0)
