"""ProfiledCostModel: an iteration's GPU time from vLLM layer tables measured on the real GPU.

Where :class:`~sim.cost.model.CostModel` derives each operator's time from FLOPs and bytes, this
model reads it from tables timed inside vLLM (:mod:`sim.hardware.calibration.layers`):

- token-wise modules by the batch's token count, per decoder layer: two RMSNorm calls (vLLM
  fuses the residual add into them, so no separate add), the QKV projection (plus Qwen3's q/k
  norm), rotary embedding, O projection, and the gated MLP (``gate_up_proj``, ``act_fn``,
  ``down_proj``) or, for MoE layers, the measured MoE block at the number of experts the batch
  activates; once per pass the embedding and the final norm;
- attention from the mixed-batch table, by the batch's prefill chunk (its query tokens and
  query-key pairs give the chunk and its cached tokens) and its decodes (count and mean
  context), corrected toward the time at the longest context by the skew fit where the
  profile has one (unequal contexts: a few long sequences slow the kernel more than the mean
  says);
- ``lm_head`` and ``sampler`` by the number of sequences that emit a token;
- tensor-parallel all-reduces, which the tables do not hold, on the profile's link (ring formula).

Ops the tables lack (a model's MLP when only MoE was measured, decode attention in layouts
without it) keep the datasheet path, with one warning. FLOPs and bytes, hence energy, are the
roofline's. A decode run is costed iteration by iteration with the same scalar arithmetic as a
single step, so fast-forward stays bit-identical to stepping.
"""

from __future__ import annotations

import warnings

import numpy as np

from sim.cost.engine import EngineTiming
from sim.cost.model import BatchShape, CostModel, IterationCost
from sim.cost.ops import ALLREDUCE, ATTN_DECODE, ATTN_PREFILL, MOE_EXPERT, Op
from sim.cost.predictor import CalibrationWarning
from sim.hardware.calibration.layers import LayerTables
from sim.hardware.device import DeviceSpec
from sim.models.spec import ModelSpec

# cost-model op name -> (table layer, calls per execution of the op)
_TABLE_LAYER = {"embedding": ("embedding", 1), "input_norm": ("layernorm", 1),
                "post_attn_norm": ("layernorm", 1), "rotary": ("rotary_emb", 1),
                "o_proj": ("o_proj", 1), "mlp_up": ("gate_up_proj", 1),
                "mlp_act": ("act_fn", 1), "mlp_down": ("down_proj", 1),
                "final_norm": ("final_layernorm", 1)}
_FUSED = ("residual_add", "moe_router")   # inside a measured module (RMSNorm, the MoE block)


class ProfiledCostModel(CostModel):
    """:class:`CostModel` with measured vLLM layer tables in place of the roofline."""

    def __init__(self, model: ModelSpec, device: DeviceSpec, tp: int, tables: LayerTables,
                 dtype: str = "bf16", engine: EngineTiming | None = None):
        super().__init__(model, device, tp, dtype, engine=engine)
        self.tables = tables
        self._warned: set[str] = set()
        self._attn_cache: dict[tuple, float] = {}
        if model.num_dense_layers and not tables.has_mlp:
            self._warn("mlp", "no dense MLP layers measured; the MLP uses the datasheet path")
        if model.num_moe_layers and tables.moe is None:
            self._warn("moe", "no MoE block measured; the experts use the datasheet path")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"{self.device.name}: {self.model.name} tp{self.tp}: {message}",
                          CalibrationWarning, stacklevel=3)

    # -- token-wise ops --------------------------------------------------------------------------
    def _op_seconds(self, op: Op, num_tokens: int) -> float:
        t = self.tables
        if op.name in _FUSED and (op.name != "moe_router" or t.moe is not None):
            return 0.0
        if op.name == "qkv_proj":
            return t.layer_s("qkv_proj", num_tokens) + t.layer_s("qk_norm", num_tokens)
        if op.name == "lm_head":
            rows = op.shape[0]
            return t.per_sequence_s("lm_head", rows) + t.per_sequence_s("sampler", rows)
        if op.kind == MOE_EXPERT and t.moe is not None:
            return t.moe_s(num_tokens, self.activated_experts(num_tokens))
        layer = _TABLE_LAYER.get(op.name)
        if layer is not None and layer[0] in t.dense:
            return layer[1] * t.layer_s(layer[0], num_tokens)
        if op.kind in (ALLREDUCE, MOE_EXPERT, ATTN_PREFILL, ATTN_DECODE):
            # (not in the tables, or by design: attention is costed from them by batch shape)
            return super()._op_seconds(op, num_tokens)
        self._warn(op.name, f"{op.name} not measured; it uses the datasheet path")
        return super()._op_seconds(op, num_tokens)

    def activated_experts(self, num_tokens: int) -> float:
        """Experts a batch of ``num_tokens`` tokens activates in expectation under uniform
        top-k routing: E * (1 - (1 - k/E)^T)."""
        e, k = self.model.num_experts, self.model.top_k
        return e * (1.0 - (1.0 - k / e) ** num_tokens)

    # -- attention -------------------------------------------------------------------------------
    def attention_call_s(self, shape: BatchShape, decode_context_tokens: float) -> float | None:
        """One layer's attention call from the table; ``None`` where it holds no such batch."""
        chunk = kv_prefill = 0.0
        if shape.num_prefill:
            q = shape.prefill_tokens
            chunk = float(q)
            # one chunk with the batch's query tokens and query-key pairs
            kv_prefill = max((shape.prefill_attn_pairs - q * (q + 1) / 2) / q, 0.0)
        n = shape.num_decode
        kv_decode = decode_context_tokens / n if n else 0.0
        longest = float(shape.decode_max_context)
        key = (chunk, kv_prefill, n, kv_decode, longest)
        hit = self._attn_cache.get(key)
        if hit is None:
            hit = self.tables.skewed_attention_s(chunk, kv_prefill, float(n), kv_decode, longest)
            if hit is None:
                return None
            if len(self._attn_cache) < 200_000:
                self._attn_cache[key] = hit
        return hit

    def _attention_part(self, shape: BatchShape, decode_context_tokens, work: bool = True):
        # (scalars only: decode runs are costed step by step, see decode_run_energy_sum)
        seconds, flops, nbytes = super()._attention_part(shape, decode_context_tokens)
        if not (shape.num_prefill or shape.num_decode):
            return seconds, flops, nbytes
        call_s = self.attention_call_s(shape, decode_context_tokens)
        if call_s is None:
            self._warn("attention", "attention of this batch kind not measured; it uses the "
                                    "datasheet path")
            return seconds, flops, nbytes
        return self.model.num_layers * call_s, flops, nbytes

    def op_seconds_in(self, op: Op, shape: BatchShape) -> float:
        """The table's attention call of a mixed batch is one number: shared between the
        prefill and decode rows in the proportion of their datasheet times."""
        if op.kind not in (ATTN_PREFILL, ATTN_DECODE):
            return super().op_seconds_in(op, shape)
        call_s = self.attention_call_s(shape, shape.decode_context_tokens)
        if call_s is None:
            return super().op_seconds_in(op, shape)
        rows = {o.name: super(ProfiledCostModel, self).op_seconds_in(o, shape)
                for o in self.attention_ops(shape)}
        return self.model.num_layers * call_s * rows[op.name] / sum(rows.values())

    # -- decode runs -----------------------------------------------------------------------------
    def decode_run_energy_sum(self, num_seqs: int, first_context_tokens: int, steps: int,
                              shared_kv_tokens: int = 0, first_max_context: int = 0):
        """Each iteration through :meth:`iteration_time` (table lookups are scalar), so a run
        equals stepping bit for bit; energy of the first ``k`` summed the same way."""
        times, energies = [], []
        for i in range(steps):
            shape = BatchShape(num_seqs, num_seqs, num_seqs,
                               first_context_tokens + i * num_seqs,
                               decode_shared_kv_tokens=shared_kv_tokens,
                               decode_max_context=first_max_context + i if first_max_context
                               else 0)
            t, e = self.iteration_time(shape)
            times.append(t)
            energies.append(e)

        def energy_j(k: int) -> float:
            return float(sum(energies[:k]))

        return times, energy_j

    def decode_run(self, num_seqs: int, first_context_tokens: int, steps: int,
                   shared_kv_tokens: int = 0,
                   first_max_context: int = 0) -> tuple[np.ndarray, np.ndarray]:
        times, energy_j = self.decode_run_energy_sum(num_seqs, first_context_tokens, steps,
                                                     shared_kv_tokens, first_max_context)
        energies = [energy_j(k + 1) - energy_j(k) for k in range(steps)]
        return np.array(times), np.array(energies)

    def iteration(self, shape: BatchShape) -> IterationCost:
        cost = super().iteration(shape)
        breakdown = dict(cost.breakdown_s)
        call_s = self.attention_call_s(shape, shape.decode_context_tokens)
        if call_s is not None and (shape.num_prefill or shape.num_decode):
            for kind in (ATTN_PREFILL, ATTN_DECODE):
                breakdown.pop(kind, None)
            breakdown["attention"] = self.model.num_layers * call_s
            breakdown["overhead"] = cost.time_s - sum(v for k, v in breakdown.items()
                                                      if k != "overhead")
        return IterationCost(cost.time_s, cost.flops, cost.bytes, cost.energy_j, cost.busy_s,
                             breakdown, cost.ops)
