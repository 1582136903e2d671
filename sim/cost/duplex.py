"""DuplexCostModel: an iteration on an xPU and a PIM that share HBM, with two time tracks.

The layers of an iteration are a chain of stages joined by data dependencies; every op is placed
on one processor (``sim/cost/placement.py``) and the two processors keep separate time tracks
that join (max) at stage boundaries. Only two stages have independent work for both at once:

- attention: prefill attention and decode attention of different requests (attention
  co-processing: the best of the four assignments, overlapped when on different processors);
- the routed experts of a MoE layer (expert co-processing: per-expert times as a function of
  their token counts, experts moved to the PIM least-loaded first, one at a time, keeping the
  split with the smallest stage time).

Overlapped work shares the HBM bank bundles (``sim/hardware/bundles.py``). Every other op (QKV,
O projection, norms, dense MLP, router, LM head, collectives) runs alone, so its time adds.
Collectives follow ``sim/cost/parallel.py``; MoE token counts ``sim/cost/moe_routing.py``;
energy ``sim/cost/energy.py``.

Costs stay cacheable and exact: the part that depends on token counts is memoised on (tokens,
emitting, decode-only), the experts on (tokens, decode-only) for every pre-drawn routing vector,
and attention is elementwise numpy over the decode context. :meth:`iteration_time` evaluates the
same array code as :meth:`decode_run` on a one-element array, so a fast-forwarded run is
bit-identical to stepping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cost.energy import EnergyPath
from sim.cost.engine import EngineTiming
from sim.cost.model import BatchShape, CostModel, IterationCost
from sim.cost.moe_routing import ExpertRouter
from sim.cost.ops import (ALLREDUCE, ALLTOALL, ATTN_DECODE, ATTN_PREFILL, MOE_EXPERT, Op,
                          activation_cost, attn_prefill_cost, expert_gemm_costs, mlp_gemm_shapes,
                          moe_experts_op)
from sim.cost.parallel import ExpertLayout, Topology
from sim.cost.placement import PIM, XPU, Processor, on_pim, pick
from sim.cost.roofline import Rates
from sim.errors import HardwareError
from sim.hardware.bundles import BankBundles, overlap_seconds
from sim.hardware.device import DeviceSpec
from sim.hardware.duplex import DuplexSpec
from sim.models.spec import ModelSpec


# what the authors' simulator does not cost (``duplex.embedding_and_lm_head: false``)
_FREE_IN_PAPER = ("embedding", "lm_head")


@dataclass(frozen=True)
class PlacedOp:
    """One op of an iteration with where it ran and what it cost (all its executions)."""

    op: Op
    processor: str          # "xpu", "pim", or "xpu+pim:k/n" (k of n local experts on the PIM)
    seconds: float
    joules: float           # dynamic energy, all devices of the replica


@dataclass(frozen=True)
class _MoeTable:
    """Per routing draw: the MoE layers' time and energy of one iteration, and the split."""

    seconds: np.ndarray       # all MoE layers, incl. their collectives
    joules: np.ndarray        # dynamic, all devices
    xpu_s: np.ndarray         # busiest group's xPU time per layer
    pim_s: np.ndarray         # busiest group's PIM time per layer
    pim_experts: np.ndarray   # experts on the PIM in the busiest group
    comm_s: float             # one layer's collective


def greedy_split(stage: np.ndarray, groups: int) -> np.ndarray:
    """The Duplex authors' expert co-processing heuristic, on ``stage[..., j]`` (the stage time
    with the ``j`` least-loaded experts on the PIM, j = 0..E): start with all E on the PIM, move
    the most-loaded to the xPU one group at a time (``groups`` groups when E > ``groups``, else
    one expert at a time) while the time keeps falling. Their estimate derates both processors
    by the same 0.75, which changes no comparison, so the times are used as they are."""
    experts = stage.shape[-1] - 1
    step = -(-experts // groups) if experts > groups else 1
    candidates = np.maximum(experts - step * np.arange(-(-experts // step) + 1), 0)
    times = stage[..., candidates]
    falling = times[..., 1:] < times[..., :-1]
    stop = np.where(falling.all(axis=-1), len(candidates) - 1, np.argmin(falling, axis=-1))
    return candidates[stop].astype(np.intp)


class DuplexCostModel(CostModel):
    """Roofline iteration cost of ``model`` on ``tp`` devices of a Duplex-family ``device``.

    Also accepts a plain GPU :class:`DeviceSpec` (an xPU without PIM, one 8-device node,
    balanced routing, tensor-parallel experts), which costs the same as :class:`CostModel`.
    """

    def __init__(self, model: ModelSpec, device: DeviceSpec, tp: int = 1, dtype: str = "bf16",
                 engine: EngineTiming | None = None):
        super().__init__(model, device, tp, dtype, engine=engine)
        if model.has_bounded_layers or model.has_sparse_attention:
            raise HardwareError(f"{model.name}: sliding-window, linear and sparse attention are "
                                f"not modelled on {device.name} (Duplex-family devices and "
                                "expert parallelism inside a replica); use a GPU profile")
        spec = self.spec = DuplexSpec.from_device(device)
        eff, act = device.efficiency, spec.row_activation_pj_per_byte
        # the xPU is the GPU model's processor: the same datasheet rates (CostModel.rates)
        self.xpu = Processor(XPU, self.rates, EnergyPath.of(device.energy_pj_per_flop,
                                                            device.energy_pj_per_hbm_byte, act))
        pim = spec.pim
        self.pim: Processor | None = None
        self.bundles: BankBundles | None = None
        if pim is not None:
            pim_rates = Rates.datasheet(pim.flops, pim.bandwidth, pim.compute_efficiency,
                                        pim.memory_efficiency, pim.kernel_launch_s)
            self.pim = Processor(PIM, pim_rates, EnergyPath.of(device.energy_pj_per_flop,
                                                               pim.energy_pj_per_hbm_byte, act))
            self.bundles = BankBundles(spec.bank_bundles,
                                       pim_rates.bytes_per_s / spec.bank_bundles)
        self.concurrent = pim is not None and pim.concurrent_with_xpu
        # bandwidth two overlapped streams share; unbounded: each keeps its own rate
        self._overlap_cap = np.inf if self.bundles is None or not spec.bundle_contention \
            else self.bundles.total_bytes_per_s
        # a calibrated xPU (the profile's tables or curves, as CostModel reads them) prices
        # attention at its kinds' fitted rates; without calibration these are self.xpu
        self._xpu_prefill = Processor(XPU, self._prefill_rates, self.xpu.energy)
        self._xpu_decode = Processor(XPU, self._decode_rates, self.xpu.energy)
        self.topology = Topology.of(
            tp, spec.devices_per_node, device.interconnect_bandwidth * eff.interconnect,
            device.interconnect_latency_s, spec.inter_node_bandwidth * eff.interconnect,
            spec.inter_node_latency_s, spec.collectives)
        self.layout = self.router = None
        if model.is_moe:
            self.layout = ExpertLayout.of(spec.expert_parallel, model.num_experts, self.topology)
            self.router = ExpertRouter(spec.routing, model.num_experts, model.top_k)
        self._tok: dict[tuple[int, int, bool], tuple[float, float]] = {}
        self._measured_widths: dict[int, bool] = {}
        self._moe: dict[tuple[int, bool], _MoeTable] = {}

    # -- collectives -----------------------------------------------------------------------------
    def _allreduce_s(self, num_tokens: int) -> float:
        if self.tp <= 1:
            return 0.0
        row = self.model.hidden_size * self.model.dtype_bytes
        return self.topology.allreduce_s(num_tokens * row) + self._launch_s

    # -- token-count part: everything but attention and the routed experts ------------------------
    def _placed_token_ops(self, T: int, emitting: int, decode_only: bool) -> list[PlacedOp]:
        m, placed = self.model, []
        for op in self.token_ops(T, emitting):
            if op.kind in (MOE_EXPERT, ALLREDUCE):
                continue       # experts: _moe_table; collectives: below, topology-aware
            if op.name in _FREE_IN_PAPER and not self.spec.embedding_and_lm_head:
                continue
            t_xpu = None if self._predictor is None else \
                self._predictor.op_seconds(op, gated=self.dims.gated, tp=self.tp)
            t, j, where = pick(self.spec.placement, op.kind, op.flops, op.bytes, decode_only,
                               self.xpu, self.pim, t_xpu)
            placed.append(PlacedOp(op, PIM if bool(where) else XPU, op.count * float(t),
                                   op.count * float(j) * self.tp))
        if self.tp > 1:
            ar_count = m.num_layers + m.num_dense_layers   # after attention; after dense MLPs
            row_bytes = T * m.hidden_size * m.dtype_bytes
            # the collective reads and writes the activations in HBM once (as CostModel counts)
            placed.append(PlacedOp(Op("allreduce", ALLREDUCE, 0.0, row_bytes, count=ar_count),
                                   XPU, ar_count * self._allreduce_s(T),
                                   ar_count * self.xpu.energy.op_j(0.0, row_bytes) * self.tp))
        return placed

    def _token_costs(self, T: int, emitting: int, decode_only: bool) -> tuple[float, float]:
        key = (T, emitting, decode_only)
        hit = self._tok.get(key)
        if hit is None:
            seconds = joules = 0.0
            for p in self._placed_token_ops(T, emitting, decode_only):
                seconds += p.seconds
                joules += p.joules
            hit = (seconds, joules)
            if len(self._tok) < 1_000_000:
                self._tok[key] = hit
        return hit

    # -- attention ---------------------------------------------------------------------------------
    def _attention(self, shape: BatchShape, ctx: np.ndarray):
        """(seconds, joules, decode-on-PIM) of attention over all layers, per decode context."""
        L, cfg, pim = self.model.num_layers, self.spec.placement, self.pim
        decode_only = shape.num_prefill == 0
        zero = np.zeros(ctx.shape)
        t_d = j_d = zero
        d_pim = np.zeros(ctx.shape, dtype=bool)
        if shape.num_decode:
            a, b_seq, b_key = self._decode_coeffs
            shared = getattr(shape, "decode_shared_kv_tokens", 0)
            f_d = a * ctx
            b_d = b_seq * shape.num_decode + b_key * (ctx - shared)  # shared prefixes read once
            t_d, j_d, d_pim = pick(cfg, ATTN_DECODE, f_d, b_d, decode_only, self._xpu_decode,
                                   pim)
        if decode_only:
            return L * t_d, L * j_d * self.tp, d_pim
        f_p, b_p = attn_prefill_cost(shape.prefill_tokens, shape.prefill_attn_pairs,
                                     shape.prefill_kv_tokens, self.dims)
        t_p, j_p, _ = pick(cfg, ATTN_PREFILL, f_p, b_p, False, self._xpu_prefill, pim)
        if not shape.num_decode or pim is None or not self.spec.coprocessing.attention:
            return L * (t_p + t_d), L * (j_p + j_d) * self.tp, d_pim
        # co-processing: the best of the four assignments, overlapped on different processors
        x, p, cap = self.xpu, pim, self._overlap_cap
        tx_p, tp_p, tx_d, tp_d = self._xpu_prefill.seconds(f_p, b_p), p.seconds(f_p, b_p), \
            self._xpu_decode.seconds(f_d, b_d), p.seconds(f_d, b_d)
        jx_p, jp_p, jx_d, jp_d = x.energy.op_j(f_p, b_p), p.energy.op_j(f_p, b_p), \
            x.energy.op_j(f_d, b_d), p.energy.op_j(f_d, b_d)
        times = np.stack(np.broadcast_arrays(
            tx_p + tx_d, tp_p + tp_d,
            overlap_seconds(tx_p, b_p, tp_d, b_d, cap, self.concurrent),
            overlap_seconds(tx_d, b_d, tp_p, b_p, cap, self.concurrent)))
        joules = np.stack(np.broadcast_arrays(jx_p + jx_d, jp_p + jp_d, jx_p + jp_d,
                                              jp_p + jx_d))
        best = np.argmin(times, axis=0)
        t = np.take_along_axis(times, best[None], 0)[0]
        j = np.take_along_axis(joules, best[None], 0)[0]
        return L * t, L * j * self.tp, (best == 1) | (best == 2)

    # -- routed experts --------------------------------------------------------------------------
    def _moe_table(self, T: int, decode_only: bool) -> _MoeTable:
        key = (T, decode_only)
        hit = self._moe.get(key)
        if hit is not None:
            return hit
        m, lay = self.model, self.layout
        counts = self.router.table(T)
        R = counts.shape[0]
        c = np.sort(counts.reshape(R, lay.groups, lay.experts_per_group), axis=-1).astype(float)
        h, dt, gated = m.hidden_size, m.dtype_bytes, m.mlp_gated
        w = m.expert_intermediate_size // lay.split
        f_up, b_up, f_dn, b_dn = expert_gemm_costs(c, h, w, gated, dt, self.dims.weight_bytes)
        af, ab = activation_cost(1.0, w, gated, dt)      # per token
        live = c > 0                                      # an expert with no tokens is skipped
        f_e = np.where(live, f_up + f_dn, 0.0)
        b_e = np.where(live, b_up + b_dn, 0.0)

        def side(proc: Processor, t_e: np.ndarray, tokens: np.ndarray, f: np.ndarray,
                 b: np.ndarray):
            """Seconds, bytes, joules of the experts a processor got (a fused kernel: two
            launches plus the activation for all its tokens)."""
            act_f, act_b = af * tokens, ab * tokens
            busy = tokens > 0
            seconds = np.where(busy, t_e + 2 * proc.launch_s + proc.seconds(act_f, act_b), 0.0)
            nbytes = np.where(busy, b + act_b, 0.0)
            return seconds, nbytes, proc.energy.op_j(f + act_f, nbytes)

        def prefix(a: np.ndarray) -> np.ndarray:   # sums of the j smallest, j = 0..Eg
            return np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1)], -1)

        x = self.xpu
        tx_e = np.where(live, self._xpu_expert_seconds(c, w, f_up, b_up, f_dn, b_dn), 0.0)
        tot = lambda a: prefix(a)[..., -1:]          # noqa: E731
        pc, pf, pb = prefix(c), prefix(f_e), prefix(b_e)
        # split j: the j least-loaded experts on the PIM, the rest on the xPU
        t_x, by_x, j_x = side(x, tot(tx_e) - prefix(tx_e), tot(c) - pc, tot(f_e) - pf,
                              tot(b_e) - pb)
        if self.pim is None:
            choice = np.zeros(c.shape[:-1], dtype=np.intp)
            stage, t_p, j_p = t_x, np.zeros_like(t_x), np.zeros_like(j_x)
        else:
            p = self.pim
            tp_e = np.where(live, p.busy_seconds(f_up, b_up) + p.busy_seconds(f_dn, b_dn), 0.0)
            t_p, by_p, j_p = side(p, prefix(tp_e), pc, pf, pb)
            stage = overlap_seconds(t_x, by_x, t_p, by_p, self._overlap_cap, self.concurrent)
            choice = self._expert_split(stage, tot(f_e)[..., 0], tot(b_e)[..., 0], decode_only)
        take = lambda a: np.take_along_axis(a, choice[..., None], -1)[..., 0]   # noqa: E731
        g_stage, g_x, g_p = take(stage), take(t_x), take(t_p)
        busiest = np.argmax(g_stage, axis=-1)[..., None]
        pick1 = lambda a: np.take_along_axis(a, busiest, -1)[..., 0]             # noqa: E731
        layers = m.num_moe_layers
        comm = lay.comm_s(self.topology, T, m.top_k, h * dt, decode_only) + (
            self._launch_s if self.tp > 1 else 0.0)
        joules = lay.split * (take(j_x) + take(j_p)).sum(axis=-1)
        if self.tp > 1:    # the collective's HBM traffic, as for the attention all-reduce
            joules = joules + self.xpu.energy.op_j(0.0, T * h * dt) * self.tp
        table = _MoeTable(seconds=layers * (g_stage.max(axis=-1) + comm), joules=layers * joules,
                          xpu_s=pick1(g_x), pim_s=pick1(g_p), pim_experts=pick1(choice),
                          comm_s=comm)
        if len(self._moe) < 200_000:
            self._moe[key] = table
        return table

    def _xpu_expert_seconds(self, counts, width: int, f_up, b_up, f_dn, b_dn):
        """Each expert's two GEMMs on the xPU (``counts`` tokens each, intermediate ``width``
        per device): measured when the profile prices a fused MoE layer (as CostModel reads
        it: per-expert GEMMs plus the activation), else the roofline without launches (one
        fused kernel launches once)."""
        predictor = self._predictor
        if predictor is not None and self._measured_experts(width):
            up_shape, down_shape = mlp_gemm_shapes(self.model.hidden_size, width,
                                                   self.model.mlp_gated)
            return predictor.gemm_s(counts, *up_shape) + predictor.gemm_s(counts, *down_shape)
        x = self.xpu
        return x.busy_seconds(f_up, b_up) + x.busy_seconds(f_dn, b_dn)

    def _measured_experts(self, width: int) -> bool:
        """Whether the profile prices a fused MoE layer of this width (asked once)."""
        hit = self._measured_widths.get(width)
        if hit is None:
            hit = self._measured_widths[width] = self._predictor.moe_experts_s(
                np.ones(1), self.model.hidden_size, width, self.model.mlp_gated) is not None
        return hit

    def _expert_split(self, stage: np.ndarray, flops: np.ndarray, nbytes: np.ndarray,
                      decode_only: bool) -> np.ndarray:
        """Experts on the PIM per (draw, group): with co-processing the split its rule picks;
        otherwise all or none, as the placement policy says for the whole expert op."""
        last = stage.shape[-1] - 1
        cop = self.spec.coprocessing
        if cop.experts and cop.expert_split == "greedy":
            return greedy_split(stage, cop.expert_groups)
        if cop.experts:
            return np.argmin(stage, axis=-1)
        cfg = self.spec.placement
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(nbytes > 0, flops / nbytes, np.inf)
        where = on_pim(cfg, MOE_EXPERT, intensity, decode_only, stage[..., 0], stage[..., last])
        where = np.broadcast_to(np.asarray(where, dtype=bool), stage.shape[:-1])
        return np.where(where, last, 0).astype(np.intp)

    # -- the iteration -----------------------------------------------------------------------------
    def _evaluate(self, shape: BatchShape, ctx: np.ndarray):
        """(seconds, joules) arrays, one per decode context in ``ctx`` (int64)."""
        decode_only = shape.num_prefill == 0
        # with an engine, token-wise layers run at the CUDA graph's padded size
        tokens, launch_s = self._graph_tokens(shape.num_tokens, decode_only)
        tok_s, tok_j = self._token_costs(tokens, shape.num_seqs_emitting, decode_only)
        att_s, att_j, _ = self._attention(shape, ctx)
        moe_s = moe_j = 0.0
        if self.router is not None and tokens:
            table = self._moe_table(tokens, decode_only)
            rows = self.router.rows(tokens, shape.num_decode, ctx,
                                    shape.prefill_tokens, shape.prefill_kv_tokens)
            moe_s, moe_j = table.seconds[rows], table.joules[rows]
        time_s = self._overhead_s + tok_s + att_s + moe_s
        if self.engine is not None:
            time_s = self.engine.step_s(time_s, launch_s, shape.num_decode + shape.num_prefill)
        energy_j = self._static_w * time_s + tok_j + att_j + moe_j
        return time_s, energy_j

    def iteration_time(self, shape: BatchShape) -> tuple[float, float]:
        time_s, energy_j = self._evaluate(
            shape, np.array([shape.decode_context_tokens], dtype=np.int64))
        return float(time_s[0]), float(energy_j[0])

    def decode_run(self, num_seqs: int, first_context_tokens: int, steps: int,
                   shared_kv_tokens: int = 0,
                   first_max_context: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`CostModel.decode_run`; the same array code as :meth:`iteration_time`."""
        shape = BatchShape(num_seqs, num_seqs, num_seqs, first_context_tokens)
        if shared_kv_tokens:
            shape = BatchShape(num_seqs, num_seqs, num_seqs, first_context_tokens,
                               decode_shared_kv_tokens=shared_kv_tokens)
        contexts = first_context_tokens + num_seqs * np.arange(steps, dtype=np.int64)
        return self._evaluate(shape, contexts)

    def decode_run_energy_sum(self, num_seqs: int, first_context_tokens: int, steps: int,
                              shared_kv_tokens: int = 0, first_max_context: int = 0):
        """As :meth:`CostModel.decode_run_energy_sum`, from the per-iteration energies."""
        times, energies = self.decode_run(num_seqs, first_context_tokens, steps, shared_kv_tokens)
        return times.tolist(), lambda k: float(energies[:k].sum())

    # -- breakdowns (tables, reports, tests) -------------------------------------------------------
    def placed_ops(self, shape: BatchShape) -> list[PlacedOp]:
        """Every op of the iteration with its processor, time and dynamic energy."""
        decode_only = shape.num_prefill == 0
        placed = self._placed_token_ops(shape.num_tokens, shape.num_seqs_emitting, decode_only)
        ctx = np.array([shape.decode_context_tokens], dtype=np.int64)
        cfg, L = self.spec.placement, self.model.num_layers
        for op in self.attention_ops(shape):
            t, j, where = pick(cfg, op.kind, op.flops, op.bytes, decode_only, self.xpu, self.pim)
            placed.append(PlacedOp(op, PIM if bool(where) else XPU, L * float(t),
                                   L * float(j) * self.tp))
        if shape.num_decode and shape.num_prefill and self.pim is not None \
                and self.spec.coprocessing.attention:
            # the overlapped stage replaces the two serial rows' sum
            att_s, _, d_pim = self._attention(shape, ctx)
            serial = sum(p.seconds for p in placed[-2:])
            placed.append(PlacedOp(Op("attn_overlap", "overlap", 0.0, 0.0, count=L), "xpu+pim",
                                   float(att_s[0]) - serial, 0.0))
        if self.router is not None and shape.num_tokens:
            table = self._moe_table(shape.num_tokens, decode_only)
            row = int(self.router.rows(shape.num_tokens, shape.num_decode, ctx,
                                       shape.prefill_tokens, shape.prefill_kv_tokens)[0])
            op = self._routed_experts_op(shape.num_tokens, row)
            layers = self.model.num_moe_layers
            k, n_local = int(table.pim_experts[row]), self.layout.experts_per_group
            where = XPU if k == 0 else PIM if k == n_local else f"xpu+pim:{k}/{n_local}"
            comm = table.comm_s
            comm_j = layers * self.xpu.energy.op_j(0.0, shape.num_tokens * self.model.hidden_size
                                                   * self.model.dtype_bytes) * self.tp if comm \
                else 0.0
            placed.append(PlacedOp(op, where, float(table.seconds[row]) - layers * comm,
                                   float(table.joules[row]) - comm_j))
            if comm:
                kind = ALLREDUCE if self.layout.mode == "tensor" else ALLTOALL
                placed.append(PlacedOp(Op(f"moe_{kind}", kind, 0.0, 0.0, count=layers), XPU,
                                       layers * comm, comm_j))
        return placed

    def _routed_experts_op(self, T: int, row: int) -> Op:
        """The busiest device group's experts as one op (per device, per layer)."""
        m, lay = self.model, self.layout
        counts = self.router.table(T)[row].reshape(lay.groups, lay.experts_per_group)
        c = counts[int(np.argmax(counts.sum(axis=-1)))]
        c = c[c > 0].astype(float)
        return moe_experts_op(c, m.hidden_size, m.expert_intermediate_size // lay.split,
                              m.mlp_gated, m.dtype_bytes, m.num_moe_layers,
                              self.dims.weight_bytes)

    def iteration(self, shape: BatchShape) -> IterationCost:
        placed = self.placed_ops(shape)
        time_s, energy_j = self.iteration_time(shape)
        busy: dict[str, float] = {XPU: 0.0, PIM: 0.0}
        breakdown: dict[str, float] = {"overhead": self._overhead_s}
        for p in placed:
            breakdown[p.op.kind] = breakdown.get(p.op.kind, 0.0) + p.seconds
            if p.processor in busy and p.op.kind != MOE_EXPERT:   # experts: per processor below
                busy[p.processor] += p.seconds
        if self.router is not None and shape.num_tokens:
            table = self._moe_table(shape.num_tokens, shape.num_prefill == 0)
            ctx = np.array([shape.decode_context_tokens], dtype=np.int64)
            row = int(self.router.rows(shape.num_tokens, shape.num_decode, ctx,
                                       shape.prefill_tokens, shape.prefill_kv_tokens)[0])
            layers = self.model.num_moe_layers
            busy[XPU] += layers * float(table.xpu_s[row])
            busy[PIM] += layers * float(table.pim_s[row])
        if self.engine is not None:   # the engine's CPU time not hidden under the device's
            breakdown["overhead"] = time_s - sum(v for k, v in breakdown.items()
                                                 if k != "overhead")
        ops = tuple(p.op for p in placed)
        return IterationCost(time_s=time_s, flops=sum(o.count * o.flops for o in ops),
                             bytes=sum(o.count * o.bytes for o in ops), energy_j=energy_j,
                             busy_s=busy, breakdown_s=breakdown, ops=ops)

