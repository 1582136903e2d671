"""CostModel: the duration, FLOPs, bytes and energy of one serving iteration, by roofline.

Layers are identical, so one layer's operators are costed once and multiplied. The part of an
iteration that depends only on the token count (projections, MLP/MoE, norms, all-reduces, LM
head) is memoised on ``(num_tokens, num_seqs_emitting)``; attention, which depends on context
lengths, is a closed form evaluated with numpy, so a whole run of decode iterations (contexts
growing by one per step) is costed in one vectorised call (:meth:`CostModel.decode_run`).
The single-iteration path uses the same arithmetic, so both give bit-identical durations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.cost.engine import EngineTiming
from sim.cost.ops import (ALLREDUCE, ATTN_DECODE, ATTN_PREFILL, ELEMENTWISE, GEMM, MOE_EXPERT,
                          LayerDims, Op, activation_cost, attn_decode_cost, attn_prefill_cost,
                          decode_attention_coeffs,
                          expert_gemm_costs, expert_token_counts, gemm_bytes, gemm_flops,
                          mlp_gemm_shapes, moe_experts_op, norm_cost, residual_add_cost,
                          ring_allreduce_time_s, rotary_cost)
from sim.cost.predictor import cost_model_predictor
from sim.cost.roofline import Rates, op_seconds
from sim.hardware.device import DeviceSpec
from sim.models.spec import ModelSpec

_SHORT_RUN = 16     # decode runs up to this many iterations are costed without numpy


@dataclass(slots=True)      # not frozen (a frozen init costs 5x): built for every iteration
class BatchShape:
    """What an iteration computes, summed over its requests (all a roofline needs); a value,
    not to be modified.

    A request contributing ``q`` new tokens after ``c`` cached ones is a decode if ``q == 1``
    (attention over ``c + 1`` keys) and a prefill chunk otherwise (causal attention, ``q*c +
    q*(q+1)/2`` query-key pairs).
    """

    num_tokens: int = 0             # new tokens through the layers (all requests)
    num_seqs_emitting: int = 0      # requests that sample a token this iteration (LM head rows)
    num_decode: int = 0
    decode_context_tokens: int = 0  # sum of keys read by decode queries
    num_prefill: int = 0
    prefill_tokens: int = 0
    prefill_attn_pairs: int = 0
    prefill_kv_tokens: int = 0
    # Shared-prefix decode attention (BatchLLM, cascade/prefix-aware kernels): keys of the
    # decode context that are a group's shared prefix read again by another member. Such a
    # kernel reads a shared prefix's KV once per group, so these keys cost no HBM bytes; every
    # query still attends to them (FLOPs unchanged). 0 (plain paged attention) keeps every cost
    # bit-identical to before the field existed.
    decode_shared_kv_tokens: int = 0
    # keys read by the decode with the longest context (measured tables correct decode attention
    # for unequal contexts with it; 0: unknown, contexts taken as equal)
    decode_max_context: int = 0
    # speculative decoding: requests verifying drafts (costed as the chunks they are) and their
    # cached tokens, summed: what the draft runs on (sim/cost/speculative.py)
    num_speculative: int = 0
    speculative_context_tokens: int = 0

    @classmethod
    def from_requests(cls, new_tokens: list[int], computed_tokens: list[int],
                      emitting: int, shared_kv_tokens: int = 0, more_decodes: int = 0,
                      more_decodes_computed: int = 0,
                      more_decodes_max_computed: int = 0, speculative: int = 0,
                      speculative_context: int = 0) -> "BatchShape":
        """``shared_kv_tokens``: decode keys not re-read (see ``decode_shared_kv_tokens``);
        ``more_decodes`` decodes not listed, with ``more_decodes_computed`` tokens cached before
        them in all and at most ``more_decodes_max_computed`` for one (a DecodeCohort)."""
        num_decode, decode_ctx = more_decodes, more_decodes_computed + more_decodes
        longest = more_decodes_max_computed
        num_prefill = pf_tokens = pairs = kv = 0
        for q, c in zip(new_tokens, computed_tokens):
            if q == 1:
                num_decode += 1
                decode_ctx += c + 1
                if c > longest:
                    longest = c
            else:
                num_prefill += 1
                pf_tokens += q
                pairs += q * c + q * (q + 1) // 2
                kv += c + q
        return cls(num_decode + pf_tokens, emitting, num_decode, decode_ctx, num_prefill,
                   pf_tokens, pairs, kv, shared_kv_tokens,
                   longest + 1 if num_decode else 0, speculative, speculative_context)

    @classmethod
    def decode(cls, context_tokens: list[int]) -> "BatchShape":
        """A decode-only batch: one new token per request, ``context_tokens`` cached before it."""
        n = len(context_tokens)
        return cls(n, n, n, sum(context_tokens) + n,
                   decode_max_context=max(context_tokens) + 1 if n else 0)


@dataclass(frozen=True)
class IterationCost:
    """One iteration on one replica (all TP devices run in lockstep; figures are per device,
    energy is for all devices of the replica)."""

    time_s: float
    flops: float
    bytes: float
    energy_j: float
    busy_s: dict[str, float] = field(default_factory=dict)      # per processor
    breakdown_s: dict[str, float] = field(default_factory=dict)  # per op kind, incl. "overhead"
    ops: tuple[Op, ...] = ()


class CostModel:
    """Roofline iteration cost of ``model`` on ``tp`` devices of ``device``.

    Per op: the cost core (:func:`sim.cost.roofline.op_seconds`) at the device's datasheet rates,
    ``eff.compute`` and ``eff.memory`` of its peaks plus ``eff.kernel_launch_s`` per kernel;
    all-reduces use the ring formula at ``eff.interconnect`` of the link; each iteration adds
    ``eff.iteration_overhead_s``. A calibrated device (``device.calibration``) replaces an op's
    roofline by its measured time where the predictor (:mod:`sim.cost.predictor`) has one;
    attention then uses its kind's fitted efficiency curve, the same core function at the
    curve's rates, so the decode fast path stays exact.
    """

    def __init__(self, model: ModelSpec, device: DeviceSpec, tp: int = 1, dtype: str = "bf16",
                 engine: EngineTiming | None = None):
        self.model, self.device, self.tp, self.dtype = model, device, tp, dtype
        # the serving engine's terms (CUDA graphs, CPU overhead: sim/cost/engine.py); None: the
        # forward pass alone plus the profile's fixed iteration overhead
        self.engine = engine
        self.dims = LayerDims.of(model, tp)
        eff = device.efficiency
        # the device's datasheet roofline: every op without a measurement is costed at it
        self.rates = Rates.datasheet(device.peak_flops(dtype), device.hbm_bandwidth,
                                     eff.compute, eff.memory, eff.kernel_launch_s)
        self._link_bytes_per_s = device.interconnect_bandwidth * eff.interconnect
        self._launch_s = eff.kernel_launch_s
        # an engine models the per-step CPU work itself (sim/cost/engine.py)
        self._overhead_s = eff.iteration_overhead_s if engine is None else 0.0
        self._static_w = device.idle_w * tp
        self._j_per_flop = device.energy_pj_per_flop * 1e-12 * tp
        self._j_per_byte = device.energy_pj_per_hbm_byte * 1e-12 * tp
        self._const_cache: dict[tuple[int, int], tuple[float, float, float]] = {}
        d = self.dims
        self._decode_coeffs = decode_attention_coeffs(d)
        # sliding-window and linear-attention layers beside the full ones (sim/models/spec.py)
        self._bounded = model.has_bounded_layers or model.has_sparse_attention
        if self._bounded:
            # linear attention per token and layer: the state's update and readout, 2 x 2
            # FLOPs per head_dim^2 element; a decode step reads and writes the state
            self._linear_flops = 4.0 * d.heads * model.head_dim ** 2
            self._linear_state = model.linear_state_bytes_per_layer / tp
        # low-precision weights: FP8 GEMMs run at the device's FP8 rate (W8A8, as vLLM's FP8
        # path on Hopper and later); 4-bit weights are dequantised to bf16 (W4A16)
        self._gemm_rates = self.rates
        if model.weight_bits == 8 and device.fp8_flops > 0:
            self._gemm_rates = Rates.datasheet(device.fp8_flops, device.hbm_bandwidth,
                                               eff.compute, eff.memory, eff.kernel_launch_s)
        # -- calibration: measured tables first, the roofline above as fallback -------------
        self._predictor = None
        fits: dict[str, Rates] = {}
        # (tables and curves are measured at the activation dtype: not for other weights)
        if device.calibration is not None and not model.weight_bits:
            self._predictor, fits = cost_model_predictor(device, model, dtype)
        # attention's rates: its kind's fitted curve if calibrated, else the datasheet roofline
        # (attributes, not a dict lookup: _attention_part is on the hot path)
        self._prefill_rates = fits.get(ATTN_PREFILL, self.rates)
        self._decode_rates = fits.get(ATTN_DECODE, self.rates)
        if engine is not None:   # its eager launches: every kernel of a forward pass
            engine.count_kernels(sum(op.count for op in self.token_ops(1, 1))
                                 + model.num_layers, model.num_layers)

    # -- roofline ----------------------------------------------------------------------------
    def op_time_s(self, flops, nbytes):
        """Roofline time of one kernel at the datasheet rates (elementwise on numpy arrays)."""
        return op_seconds(flops, nbytes, self.rates)

    def allreduce_time_s(self, num_tokens: int) -> float:
        msg = num_tokens * self.model.hidden_size * self.model.dtype_bytes
        return float(ring_allreduce_time_s(msg, self.tp, self._link_bytes_per_s,
                                           self.device.interconnect_latency_s))

    # -- operators ---------------------------------------------------------------------------
    def token_ops(self, num_tokens: int, num_emitting: int) -> list[Op]:
        """Operators whose cost depends only on token counts, with their per-iteration counts."""
        m, d, dt = self.model, self.dims, self.dims.dtype_bytes
        h, T = d.hidden, num_tokens
        layers, dense, moe = m.num_layers, m.num_dense_layers, m.num_moe_layers
        ops = [
            Op("embedding", ELEMENTWISE, 0.0, 2.0 * T * h * dt, shape=(T, h)),
            Op("input_norm", ELEMENTWISE, *norm_cost(T, h, dt), count=layers, shape=(T, h)),
            *(self._mla_projections(T) if d.mla_latent else self._attention_projections(T)),
            Op("residual_add", ELEMENTWISE, *residual_add_cost(T, h, dt), count=2 * layers,
               shape=(T, h)),
            Op("post_attn_norm", ELEMENTWISE, *norm_cost(T, h, dt), count=layers, shape=(T, h)),
        ]
        if dense:
            ops += self._mlp_ops("mlp", T, d.mlp_width, dense)
        if moe:
            ops.append(Op("moe_router", GEMM, gemm_flops(T, h, m.num_experts),
                          gemm_bytes(T, h, m.num_experts, dt), count=moe,
                          shape=(T, h, m.num_experts)))
            if d.shared_expert_width:
                ops += self._mlp_ops("shared_expert", T, d.shared_expert_width, moe)
            ops.append(self._experts_op(T, moe))
        if self.tp > 1:
            # all-reduce after attention and after the MLP of every layer
            ops.append(Op("allreduce", ALLREDUCE, 0.0, T * h * dt, count=2 * layers,
                          shape=(T, h)))
        ops.append(Op("final_norm", ELEMENTWISE, *norm_cost(T, h, dt), shape=(T, h)))
        if num_emitting:   # logits only for the sequences that sample (not mid-prompt chunks)
            ops.append(Op("lm_head", GEMM, gemm_flops(num_emitting, h, d.vocab),
                          gemm_bytes(num_emitting, h, d.vocab, dt),
                          shape=(num_emitting, h, d.vocab)))
        return [op for op in ops if op.flops or op.bytes]

    def _attention_projections(self, T: int) -> list[Op]:
        """QKV (one fused GEMM), rotary and the output projection of standard attention."""
        m, d, dt, h, layers = self.model, self.dims, self.dims.dtype_bytes, self.dims.hidden, \
            self.model.num_layers
        qkv_n = d.q_width + 2 * d.kv_width
        return [
            Op("qkv_proj", GEMM, gemm_flops(T, h, qkv_n),
               d.linear_bytes(T, h, qkv_n) + (qkv_n * dt if m.qkv_bias else 0), count=layers,
               shape=(T, h, qkv_n)),
            Op("rotary", ELEMENTWISE, *rotary_cost(T, d), count=layers,
               shape=(T, d.q_width + d.kv_width)),
            Op("o_proj", GEMM, gemm_flops(T, d.q_width, h), d.linear_bytes(T, d.q_width, h),
               count=layers, shape=(T, d.q_width, h))]

    def _mla_projections(self, T: int) -> list[Op]:
        """Multi-head latent attention's projections (DeepSeek-V3's MLA, per device): the
        query's low-rank down and up projections, the latent + rotary key (one for all heads,
        so every device computes it whole), the latent's up-projection to per-head keys and
        values (in decode vLLM absorbs it into the query and the output: the same FLOPs and
        weight reads), rotary on the query's and the key's rotary parts, the output."""
        d, dt, h, layers = self.dims, self.dims.dtype_bytes, self.dims.hidden, \
            self.model.num_layers
        rope = d.mla_qk - d.mla_nope
        ops, q_in = [], h
        if d.q_lora:
            ops += [Op("q_a_proj", GEMM, gemm_flops(T, h, d.q_lora), d.linear_bytes(T, h, d.q_lora),
                       count=layers, shape=(T, h, d.q_lora)),
                    Op("q_a_norm", ELEMENTWISE, *norm_cost(T, d.q_lora, dt), count=layers,
                       shape=(T, d.q_lora))]
            q_in = d.q_lora
        q_n, kv_n = d.heads * d.mla_qk, d.heads * (d.mla_nope + d.mla_v)
        rotary = T * (d.heads + 1) * rope
        return ops + [
            Op("q_b_proj", GEMM, gemm_flops(T, q_in, q_n), d.linear_bytes(T, q_in, q_n),
               count=layers, shape=(T, q_in, q_n)),
            Op("kv_a_proj", GEMM, gemm_flops(T, h, d.mla_latent),
               d.linear_bytes(T, h, d.mla_latent), count=layers, shape=(T, h, d.mla_latent)),
            Op("kv_a_norm", ELEMENTWISE, *norm_cost(T, d.mla_kv_lora, dt), count=layers,
               shape=(T, d.mla_kv_lora)),
            Op("kv_b_proj", GEMM, gemm_flops(T, d.mla_kv_lora, kv_n),
               d.linear_bytes(T, d.mla_kv_lora, kv_n), count=layers,
               shape=(T, d.mla_kv_lora, kv_n)),
            Op("rotary", ELEMENTWISE, 3.0 * rotary, 2.0 * rotary * dt, count=layers),
            Op("o_proj", GEMM, gemm_flops(T, d.heads * d.mla_v, h),
               d.linear_bytes(T, d.heads * d.mla_v, h), count=layers,
               shape=(T, d.heads * d.mla_v, h))]

    def _mlp_ops(self, name: str, T: int, width: int, count: int) -> list[Op]:
        d, dt = self.dims, self.dims.dtype_bytes
        (_, up_n), _ = mlp_gemm_shapes(d.hidden, width, d.gated)
        return [Op(f"{name}_up", GEMM, gemm_flops(T, d.hidden, up_n),
                   d.linear_bytes(T, d.hidden, up_n), count=count, shape=(T, d.hidden, up_n)),
                Op(f"{name}_act", ELEMENTWISE, *activation_cost(T, width, d.gated, dt), count=count,
                   shape=(T, width)),
                Op(f"{name}_down", GEMM, gemm_flops(T, width, d.hidden),
                   d.linear_bytes(T, width, d.hidden), count=count, shape=(T, width, d.hidden))]

    def expert_token_counts(self, num_tokens: int) -> np.ndarray:
        return expert_token_counts(num_tokens, self.model.num_experts, self.model.top_k)

    def _experts_op(self, T: int, count: int) -> Op:
        """Routed experts as one fused-MoE op; its time is the sum of per-expert rooflines."""
        d = self.dims
        t = self.expert_token_counts(T)
        return moe_experts_op(t[t > 0], d.hidden, d.expert_width, d.gated, d.dtype_bytes, count,
                              d.weight_bytes)

    def _experts_time_s(self, T: int) -> float:
        d, dt = self.dims, self.dims.dtype_bytes
        t = self.expert_token_counts(T)
        t = t[t > 0]
        f_up, b_up, f_down, b_down = expert_gemm_costs(t, d.hidden, d.expert_width, d.gated, dt,
                                                       d.weight_bytes)
        rates = self._gemm_rates
        up, down = op_seconds(f_up, b_up, rates), op_seconds(f_down, b_down, rates)
        # a fused MoE kernel launches once for all experts: count the launch twice (up, down),
        # not per expert
        per_expert = up + down - 2 * self._launch_s
        act = op_seconds(*activation_cost(int(t.sum()), d.expert_width, d.gated, dt), self.rates)
        return float(per_expert.sum()) + 2 * self._launch_s + float(act)

    def attention_ops(self, shape: BatchShape) -> list[Op]:
        if self._bounded:
            return self._bounded_attention_ops(shape)
        ops = []
        layers = self.model.num_layers
        if shape.num_prefill:
            ops.append(Op("attn_prefill", ATTN_PREFILL, *attn_prefill_cost(
                shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_kv_tokens,
                self.dims), count=layers))
        if shape.num_decode:
            flops, nbytes = attn_decode_cost(shape.num_decode, shape.decode_context_tokens,
                                             self.dims)
            nbytes -= self._decode_coeffs[2] * shape.decode_shared_kv_tokens   # read once
            ops.append(Op("attn_decode", ATTN_DECODE, flops, nbytes, count=layers))
        return ops

    # -- costs -------------------------------------------------------------------------------
    def _op_seconds(self, op: Op, num_tokens: int) -> float:
        """One execution of ``op``: ring formula for all-reduces, per-expert rooflines for the
        fused MoE op, the plain roofline otherwise."""
        if self._predictor is not None:      # calibrated: measured tables first
            seconds = self._calibrated_seconds(op, num_tokens)
            if seconds is not None:
                return seconds
        if op.kind == ALLREDUCE:
            return self.allreduce_time_s(num_tokens) + self._launch_s
        if op.kind == MOE_EXPERT:
            return self._experts_time_s(num_tokens)
        if op.kind == GEMM:
            return float(op_seconds(op.flops, op.bytes, self._gemm_rates))
        return float(op_seconds(op.flops, op.bytes, self.rates))

    def _calibrated_seconds(self, op: Op, num_tokens: int) -> float | None:
        """The predictor's time for ``op``, ``None`` to use the roofline."""
        d = self.dims
        if op.kind == MOE_EXPERT:
            counts = self.expert_token_counts(num_tokens)
            return self._predictor.moe_experts_s(counts[counts > 0], d.hidden, d.expert_width,
                                                 d.gated)
        return self._predictor.op_seconds(op, gated=d.gated, tp=self.tp)

    def _token_part(self, num_tokens: int, num_emitting: int) -> tuple[float, float, float]:
        """(seconds, flops, bytes) of the token-count-dependent ops, memoised.

        The sums run over :meth:`token_ops` in order; the LM head, last and the only op that
        depends on ``num_emitting``, is added to a memoised sum of the others, so that a new
        (tokens, emitting) pair costs two dict lookups, not a pass over the ops. Only decode
        pairs (tokens == emitting, a few hundred) are memoised as pairs: mixed iterations rarely
        repeat theirs, and a million of them would hold ~250 MB."""
        key = (num_tokens, num_emitting)
        hit = self._const_cache.get(key)
        if hit is not None:
            return hit
        seconds, flops, nbytes = self._sum_ops(("T", num_tokens), num_tokens, 0)
        if num_emitting:
            lm_s, lm_f, lm_b = self._sum_ops(("E", num_emitting), num_tokens, num_emitting)
            seconds, flops, nbytes = seconds + lm_s, flops + lm_f, nbytes + lm_b
        result = (seconds, flops, nbytes)
        if num_tokens == num_emitting and len(self._const_cache) < 1_000_000:
            self._const_cache[key] = result
        return result

    def _sum_ops(self, key: tuple, num_tokens: int, num_emitting: int):
        """(seconds, flops, bytes) summed over the ops without the LM head (``num_emitting``
        0), or of the LM head alone; memoised by ``key``."""
        hit = self._const_cache.get(key)
        if hit is not None:
            return hit
        ops = self.token_ops(num_tokens, num_emitting)
        if num_emitting:
            ops = ops[-1:]
        seconds = flops = nbytes = 0.0
        for op in ops:
            seconds += op.count * self._op_seconds(op, num_tokens)
            flops += op.count * op.flops
            nbytes += op.count * op.bytes
        if len(self._const_cache) < 1_000_000:
            self._const_cache[key] = (seconds, flops, nbytes)
        return seconds, flops, nbytes

    def _attention_part(self, shape: BatchShape, decode_context_tokens, work: bool = True):
        """(seconds, flops, bytes) of attention over all layers; decode context may be an array.
        ``work`` False (decode-only shapes): seconds only, flops and bytes None.

        Written with operators that mean the same on Python floats and numpy arrays (IEEE
        doubles either way), so the scalar and vectorised paths agree to the last bit."""
        if self._bounded:
            return self._bounded_attention_part(shape, decode_context_tokens, work)
        L = self.model.num_layers
        pf_t = pf_f = pf_b = 0.0
        if shape.num_prefill:
            pf_f, pf_b = attn_prefill_cost(shape.prefill_tokens, shape.prefill_attn_pairs,
                                           shape.prefill_kv_tokens, self.dims)
            pf_t = op_seconds(pf_f, pf_b, self._prefill_rates)
        if not shape.num_decode:
            return L * pf_t, L * pf_f, L * pf_b
        # attn_decode_cost, linear in the context: flops = a*S, bytes = b_seq*n + b_key*S
        a, b_seq, b_key = self._decode_coeffs
        dec_f = a * decode_context_tokens
        # keys of shared prefixes are attended (FLOPs) but read once per group (bytes)
        keys_read = decode_context_tokens - shape.decode_shared_kv_tokens \
            if shape.decode_shared_kv_tokens else decode_context_tokens
        dec_b = b_seq * shape.num_decode + b_key * keys_read
        dec_t = op_seconds(dec_f, dec_b, self._decode_rates)
        if not shape.num_prefill:   # the same numbers (x + 0.0 == x), three array ops fewer
            if not work:
                return L * dec_t, None, None
            return L * dec_t, L * dec_f, L * dec_b
        return L * (pf_t + dec_t), L * (pf_f + dec_f), L * (pf_b + dec_b)

    def _bounded_terms(self, shape: BatchShape, ctx) -> list[tuple]:
        """(name, kind, layers, FLOPs, bytes) of attention per layer kind, for a model with
        sliding-window and linear layers; ``ctx`` (the decode context) may be an array. A
        sliding layer attends to at most ``window`` keys per query (taken over the batch:
        ``min(context, sequences x window)``, exact when every request is past the window or
        none is); a linear layer reads and writes each sequence's state once per step and does
        4 FLOPs per head_dim^2 element per token; sparse attention bounds the keys of the full
        layers (:meth:`_sparse_keys`)."""
        m, d = self.model, self.dims
        dt, window = float(d.dtype_bytes), m.sliding_window
        terms = []
        if shape.num_prefill:
            q, pairs, kv = shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_kv_tokens
            full_pairs = pairs
            if m.has_sparse_attention and kv > shape.num_prefill * m.sparse_attention_dense_tokens:
                full_pairs = min(pairs, q * m.sparse_attention_tokens
                                 + pairs / (2 * m.sparse_attention_stride))
            terms.append(("attn_prefill", ATTN_PREFILL, m.full_attention_layers,
                          *attn_prefill_cost(q, full_pairs, kv, d)))
            if m.sliding_window_layers:
                terms.append(("attn_prefill_sliding", ATTN_PREFILL, m.sliding_window_layers,
                              *attn_prefill_cost(q, min(pairs, q * window),
                                                 min(kv, q + shape.num_prefill * window), d)))
            if m.linear_attention_layers:
                terms.append(("attn_prefill_linear", ATTN_PREFILL, m.linear_attention_layers,
                              q * self._linear_flops, 2.0 * shape.num_prefill * self._linear_state
                              + 4.0 * q * d.q_width * dt))
        n = shape.num_decode
        if n:
            a, b_seq, b_key = self._decode_coeffs
            keys = self._sparse_keys(ctx, n) if m.has_sparse_attention else ctx
            terms.append(("attn_decode", ATTN_DECODE, m.full_attention_layers, a * keys,
                          b_seq * n + b_key * keys))
            if m.sliding_window_layers:
                cap = n * window
                keys = np.minimum(ctx, cap) if isinstance(ctx, np.ndarray) else min(ctx, cap)
                terms.append(("attn_decode_sliding", ATTN_DECODE, m.sliding_window_layers,
                              a * keys, b_seq * n + b_key * keys))
            if m.linear_attention_layers:
                terms.append(("attn_decode_linear", ATTN_DECODE, m.linear_attention_layers,
                              n * self._linear_flops,
                              n * (2.0 * self._linear_state + 4.0 * d.q_width * dt)))
        return [t for t in terms if t[2]]

    def _sparse_keys(self, ctx, n: int):
        """Keys the full layers' decode attention reads under sparse attention, over ``n``
        sequences of ``ctx`` context tokens in all: the top-k blocks of each plus its compressed
        keys (one per stride, K only: half a key each), once the batch is past the dense length
        (taken over the batch, as the sliding window is: exact when every sequence is on the
        same side of it); never more than the context."""
        m = self.model
        sparse = n * m.sparse_attention_tokens + ctx / (2 * m.sparse_attention_stride)
        dense_cap = n * m.sparse_attention_dense_tokens
        if isinstance(ctx, np.ndarray):
            return np.where(ctx <= dense_cap, ctx, np.minimum(ctx, sparse))
        return ctx if ctx <= dense_cap else min(ctx, sparse)

    def _bounded_attention_ops(self, shape: BatchShape) -> list[Op]:
        return [Op(name, kind, float(f), float(b), count=layers) for name, kind, layers, f, b
                in self._bounded_terms(shape, shape.decode_context_tokens)]

    def _bounded_attention_part(self, shape: BatchShape, ctx, work: bool = True):
        """Attention of a model with sliding-window and linear layers (_bounded_terms): each
        kind on its own roofline, times its layer count."""
        seconds = flops = nbytes = 0.0
        for _, kind, layers, f, b in self._bounded_terms(shape, ctx):
            rates = self._prefill_rates if kind == ATTN_PREFILL else self._decode_rates
            seconds = seconds + layers * op_seconds(f, b, rates)
            flops, nbytes = flops + layers * f, nbytes + layers * b
        if isinstance(ctx, np.ndarray):     # one value per step, as the plain path returns
            seconds = seconds + np.zeros(ctx.shape)
            flops, nbytes = flops + np.zeros(ctx.shape), nbytes + np.zeros(ctx.shape)
        return (seconds, flops, nbytes) if work else (seconds, None, None)

    def _total(self, shape: BatchShape, decode_context_tokens, expert_group=None):
        tokens, launch_s = self._graph_tokens(shape.num_tokens, shape.num_prefill == 0)
        tok_s, tok_f, tok_b = self._token_part(tokens, shape.num_seqs_emitting)
        if expert_group is not None:
            tok_s = tok_s + self._expert_parallel_delta_s(tokens, *expert_group)
        att_s, att_f, att_b = self._attention_part(shape, decode_context_tokens)
        time_s = self._overhead_s + tok_s + att_s
        if self.engine is not None:
            time_s = self.engine.step_s(time_s, launch_s, shape.num_decode + shape.num_prefill)
        flops, nbytes = tok_f + att_f, tok_b + att_b
        energy_j = self._static_w * time_s + self._j_per_flop * flops + self._j_per_byte * nbytes
        return time_s, energy_j

    def _graph_tokens(self, num_tokens: int, decode_only: bool) -> tuple[int, float]:
        """(tokens the token-wise layers run at, CPU launch seconds): padded to a CUDA graph's
        size when the engine replays one (sim/cost/engine.py)."""
        if self.engine is None:
            return num_tokens, 0.0
        return self.engine.padded_tokens(num_tokens, decode_only)

    def iteration_time(self, shape: BatchShape) -> tuple[float, float]:
        """(duration s, energy J) of one iteration: the simulator's hot path."""
        return self._total(shape, shape.decode_context_tokens)

    # -- data parallel with expert parallelism (sim/cluster/lockstep.py) ----------------------
    def expert_parallel_time(self, shape: BatchShape, group_tokens: int,
                             ranks: int) -> tuple[float, float]:
        """(duration s, energy J) of one rank's iteration in a data-parallel group of ``ranks``
        replicas whose MoE layers are expert-parallel across them, when the group's ranks run
        ``group_tokens`` tokens in all (vLLM DP + EP, allgather/reduce-scatter dispatch): each
        rank holds 1/ranks of the experts and runs them on the tokens every rank routes there;
        before each MoE layer the ranks all-gather their hidden states and after it they
        reduce-scatter the outputs (together, an all-reduce's traffic) on the device link."""
        if not self.model.num_moe_layers or ranks <= 1:
            return self.iteration_time(shape)
        return self._total(shape, shape.decode_context_tokens, (group_tokens, ranks))

    def routed_experts_s(self, num_tokens: int) -> float:
        """All MoE layers' routed-expert time for ``num_tokens`` tokens (memoised)."""
        key = ("X", num_tokens)
        hit = self._const_cache.get(key)
        if hit is None:
            op = self._experts_op(num_tokens, self.model.num_moe_layers)
            hit = op.count * self._op_seconds(op, num_tokens)
            self._const_cache[key] = hit
        return hit

    def expert_exchange_s(self, group_tokens: int, ranks: int) -> float:
        """Seconds per iteration the MoE layers' token exchange takes in an expert-parallel
        group of ``ranks`` running ``group_tokens`` tokens: all-gather before, reduce-scatter
        after every MoE layer (an all-reduce's traffic) on the device link."""
        message = group_tokens * self.model.hidden_size * self.model.dtype_bytes
        exchange = float(ring_allreduce_time_s(message, ranks, self._link_bytes_per_s,
                                               self.device.interconnect_latency_s))
        return self.model.num_moe_layers * (exchange + self._launch_s)

    def _expert_parallel_delta_s(self, tokens: int, group_tokens: int, ranks: int) -> float:
        return (self.routed_experts_s(group_tokens) / ranks - self.routed_experts_s(tokens)
                + self.expert_exchange_s(group_tokens, ranks))

    def decode_run(self, num_seqs: int, first_context_tokens: int, steps: int,
                   shared_kv_tokens: int = 0,
                   first_max_context: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Durations and energies of ``steps`` consecutive decode-only iterations of a fixed batch.

        ``first_context_tokens`` is the decode context (keys read, summed over sequences) of the
        first step; each later step reads one more key per sequence. ``shared_kv_tokens`` (shared
        prefix keys not re-read, see :class:`BatchShape`) stays fixed over the run, as the
        batch and its prefixes do. Bit-identical to calling :meth:`iteration_time` once per step.
        """
        shape = BatchShape(num_seqs, num_seqs, num_seqs, first_context_tokens,
                           decode_shared_kv_tokens=shared_kv_tokens)
        contexts = first_context_tokens + num_seqs * np.arange(steps, dtype=np.int64)
        return self._total(shape, contexts)     # arrays of length steps (contexts is one)

    def decode_run_energy_sum(self, num_seqs: int, first_context_tokens: int, steps: int,
                              shared_kv_tokens: int = 0,
                              first_max_context: int = 0) -> tuple[list[float], Callable]:
        """As :meth:`decode_run`, for the replica: durations as a list, and energy as a function,
        ``energy_j(k)``, the energy of the run's first ``k`` iterations (a run is often cut).

        The durations are :meth:`iteration_time`'s, bit for bit. Most runs are a few iterations
        (a request finishes or arrives every few), where numpy's cost per call dominates, so up to
        ``_SHORT_RUN`` iterations are costed with Python floats (the same IEEE operations, in
        the same order as :meth:`_attention_part` and :meth:`_total`, through the same
        :func:`~sim.cost.roofline.op_seconds`). The energy is summed in
        closed form (FLOPs and bytes grow linearly with the context): the sum of the
        per-iteration energies up to rounding."""
        if self._bounded:      # per step through the general path (not linear in context)
            times, energies = self.decode_run(num_seqs, first_context_tokens, steps,
                                              shared_kv_tokens)
            times, energies = times.tolist(), energies.tolist()
            return times, lambda k: float(sum(energies[:k]))
        tokens, launch_s = self._graph_tokens(num_seqs, True)
        tok_s, tok_f, tok_b = self._token_part(tokens, num_seqs)
        base_s = self._overhead_s + tok_s       # _total: overhead + token part + attention
        a, b_seq, b_key = self._decode_coeffs
        L = self.model.num_layers
        engine = self.engine
        if steps <= _SHORT_RUN:
            seq_b, rates, times, ctx = b_seq * num_seqs, self._decode_rates, [], \
                first_context_tokens
            for _ in range(steps):
                keys = ctx - shared_kv_tokens if shared_kv_tokens else ctx
                times.append(base_s + L * op_seconds(a * ctx, seq_b + b_key * keys, rates))
                ctx += num_seqs
            if engine is not None:
                times = [engine.step_s(t, launch_s, num_seqs) for t in times]
        else:
            shape = BatchShape(num_seqs, num_seqs, num_seqs, first_context_tokens,
                               decode_shared_kv_tokens=shared_kv_tokens)
            contexts = first_context_tokens + num_seqs * np.arange(steps, dtype=np.int64)
            gpu_s = base_s + self._attention_part(shape, contexts, work=False)[0]
            if engine is not None:
                gpu_s = engine.step_s(gpu_s, launch_s, num_seqs)
            times = gpu_s.tolist()

        def energy_j(k: int) -> float:
            contexts_sum = k * first_context_tokens + num_seqs * (k * (k - 1) // 2)
            flops = k * tok_f + L * a * contexts_sum
            nbytes = k * tok_b + L * (k * (b_seq * num_seqs - b_key * shared_kv_tokens)
                                      + b_key * contexts_sum)
            return (self._static_w * sum(times[:k]) + self._j_per_flop * flops
                    + self._j_per_byte * nbytes)

        return times, energy_j

    def op_seconds_in(self, op: Op, shape: BatchShape) -> float:
        """Seconds ``op`` (one of this shape's token or attention ops) takes in the iteration
        of ``shape``, all its executions (for per-op tables)."""
        return op.count * self._op_seconds(op, shape.num_tokens)

    def iteration(self, shape: BatchShape) -> IterationCost:
        """Full breakdown of one iteration (slower; for tables, reports and tests)."""
        breakdown: dict[str, float] = {"overhead": self._overhead_s}
        tokens, _ = self._graph_tokens(shape.num_tokens, shape.num_prefill == 0)
        ops = self.token_ops(tokens, shape.num_seqs_emitting) + self.attention_ops(shape)
        for op in ops:
            breakdown[op.kind] = breakdown.get(op.kind, 0.0) + op.count * self._op_seconds(
                op, tokens)
        time_s, energy_j = self.iteration_time(shape)
        if self.engine is not None:   # the engine's CPU time not hidden under the GPU's
            breakdown["overhead"] = time_s - sum(v for k, v in breakdown.items()
                                                 if k != "overhead")
        flops = sum(op.count * op.flops for op in ops)
        nbytes = sum(op.count * op.bytes for op in ops)
        return IterationCost(time_s=time_s, flops=flops, bytes=nbytes, energy_j=energy_j,
                             busy_s={self.device.kind: time_s - breakdown["overhead"]},
                             breakdown_s=breakdown, ops=tuple(ops))
