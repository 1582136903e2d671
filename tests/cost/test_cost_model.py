"""sim.cost.model: operator lists, roofline times, energy and the decode fast path, by hand.

Most checks use a round-number device (1 PFLOP/s, 1 TB/s, 100 GB/s links, efficiencies 1) so that
each expected value is a formula written out here, not a number read back from the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.cost.model import BatchShape, CostModel, IterationCost
from sim.hardware import DeviceSpec, Efficiency, load_device
from sim.models import CATALOG

LLAMA = CATALOG["llama-3.1-8b"]
MIXTRAL = CATALOG["mixtral-8x7b"]

PEAK, BW, LINK, LAT = 1e15, 1e12, 1e11, 1e-6
IDLE_W, PJ_FLOP, PJ_BYTE = 100.0, 1.0, 10.0


def round_device(launch: float = 0.0, overhead: float = 0.0, compute: float = 1.0,
                 memory: float = 1.0, interconnect: float = 1.0, latency: float = LAT) -> DeviceSpec:
    return DeviceSpec(
        name="round", kind="gpu", vendor="test", bf16_flops=PEAK, fp16_flops=PEAK,
        fp8_flops=2 * PEAK, fp32_flops=PEAK / 10, hbm_bytes=100e9, hbm_bandwidth=BW,
        interconnect_bandwidth=LINK, interconnect_latency_s=latency, pcie_bandwidth=5e10,
        tdp_w=1000.0, idle_w=IDLE_W, energy_pj_per_flop=PJ_FLOP, energy_pj_per_hbm_byte=PJ_BYTE,
        price_usd_per_hour=1.0,
        efficiency=Efficiency(compute=compute, memory=memory, interconnect=interconnect,
                              kernel_launch_s=launch, iteration_overhead_s=overhead))


# -- hand operator lists -------------------------------------------------------------------------
# name -> (kind, flops, bytes, count), per device. Widths written out for Llama-3.1-8B / Mixtral:
# hidden 4096, 32 query heads and 8 KV heads of 128 (q 4096, kv 1024), 32 layers, bf16.

def hand_attention_block(T: int, tp: int = 1) -> dict:
    h = 4096
    q, kv = 4096 // tp, 1024 // tp
    L = 32
    return {
        "embedding": ("elementwise", 0, 2 * T * h * 2, 1),
        "input_norm": ("elementwise", 4 * T * h, (2 * T * h + h) * 2, L),
        "qkv_proj": ("gemm", 2 * T * h * (q + 2 * kv), (T * h + h * (q + 2 * kv) + T * (q + 2 * kv)) * 2, L),
        "rotary": ("elementwise", 3 * T * (q + kv), 2 * T * (q + kv) * 2, L),
        "o_proj": ("gemm", 2 * T * q * h, (T * q + q * h + T * h) * 2, L),
        "residual_add": ("elementwise", T * h, 3 * T * h * 2, 2 * L),
        "post_attn_norm": ("elementwise", 4 * T * h, (2 * T * h + h) * 2, L),
        "final_norm": ("elementwise", 4 * T * h, (2 * T * h + h) * 2, 1),
    }


def hand_llama_ops(T: int, n_emit: int, tp: int = 1) -> dict:
    ops = hand_attention_block(T, tp)
    h, L = 4096, 32
    w = 14336 // tp            # MLP intermediate on this device
    V = 128256 // tp           # vocab columns on this device (divides for tp 1, 2)
    ops.update({
        "mlp_up": ("gemm", 2 * T * h * (2 * w), (T * h + h * 2 * w + T * 2 * w) * 2, L),
        "mlp_act": ("elementwise", 5 * T * w, 3 * T * w * 2, L),
        "mlp_down": ("gemm", 2 * T * w * h, (T * w + w * h + T * h) * 2, L),
        "lm_head": ("gemm", 2 * n_emit * h * V, (n_emit * h + h * V + n_emit * V) * 2, 1),
    })
    if tp > 1:
        ops["allreduce"] = ("allreduce", 0, T * h * 2, 2 * L)
    return ops


def balanced_counts(T: int, experts: int = 8, top_k: int = 2) -> list:
    """T*top_k assignments dealt out one by one: the first (T*top_k % experts) get one more."""
    base, extra = divmod(T * top_k, experts)
    return [base + 1] * extra + [base] * (experts - extra)


def hand_expert(t: int, tp: int = 1) -> dict:
    """One Mixtral expert (width 14336/tp, gated) with t tokens: up, act, down."""
    h, w = 4096, 14336 // tp
    return {"up": (2 * t * h * 2 * w, (t * h + h * 2 * w + t * 2 * w) * 2),
            "act": (5 * t * w, 3 * t * w * 2),
            "down": (2 * t * w * h, (t * w + w * h + t * h) * 2)}


def hand_mixtral_ops(T: int, n_emit: int, tp: int = 1) -> dict:
    ops = hand_attention_block(T, tp)
    h, L, E, V = 4096, 32, 8, 32000 // tp
    experts = [hand_expert(t, tp) for t in balanced_counts(T) if t > 0]
    flops = sum(e[k][0] for e in experts for k in ("up", "act", "down"))
    nbytes = sum(e[k][1] for e in experts for k in ("up", "act", "down"))
    ops.update({
        "moe_router": ("gemm", 2 * T * h * E, (T * h + h * E + T * E) * 2, L),
        "moe_experts": ("moe_expert", flops, nbytes, L),
        "lm_head": ("gemm", 2 * n_emit * h * V, (n_emit * h + h * V + n_emit * V) * 2, 1),
    })
    if tp > 1:
        ops["allreduce"] = ("allreduce", 0, T * h * 2, 2 * L)
    return ops


def hand_attention_ops(new: list, computed: list, tp: int = 1) -> dict:
    q_w, kv_w, heads, L = 4096 // tp, 1024 // tp, 32 // tp, 32
    ops = {}
    pf = [(q, c) for q, c in zip(new, computed) if q > 1]
    dec = [c for q, c in zip(new, computed) if q == 1]
    if pf:
        Q = sum(q for q, _ in pf)
        pairs = sum(q * c + q * (q + 1) // 2 for q, c in pf)
        kv = sum(q + c for q, c in pf)
        ops["attn_prefill"] = ("attn_prefill", 4 * heads * 128 * pairs,
                               (2 * Q * q_w + kv * 2 * kv_w + Q * 2 * kv_w) * 2, L)
    if dec:
        n, ctx = len(dec), sum(c + 1 for c in dec)
        ops["attn_decode"] = ("attn_decode", 4 * heads * 128 * ctx,
                              (2 * n * q_w + ctx * 2 * kv_w + n * 2 * kv_w) * 2, L)
    return ops


def as_dict(ops) -> dict:
    return {op.name: (op.kind, op.flops, op.bytes, op.count) for op in ops}


def roofline(f, b, launch=0.0):
    return max(f / PEAK, b / BW) + launch


def hand_time(ops: dict, T: int, tp: int = 1, launch: float = 0.0, overhead: float = 0.0,
              expert_counts: list | None = None) -> float:
    """overhead + sum(count x per-op roofline); experts as a sum of per-expert rooflines (up and
    down), one activation kernel and three launches; all-reduce by the ring formula."""
    total = overhead
    for name, (kind, f, b, count) in ops.items():
        if kind == "allreduce":
            msg = T * 4096 * 2
            t = 2 * (tp - 1) / tp * msg / LINK + 2 * (tp - 1) * LAT + launch
        elif kind == "moe_expert":
            ex = [hand_expert(c, tp) for c in expert_counts if c > 0]
            t = sum(roofline(*e["up"]) + roofline(*e["down"]) for e in ex) + 2 * launch
            t += roofline(sum(e["act"][0] for e in ex), sum(e["act"][1] for e in ex), launch)
        else:
            t = roofline(f, b, launch)
        total += count * t
    return total


# -- BatchShape ---------------------------------------------------------------------------------
def test_batch_shape_from_requests_aggregates():
    # two decodes (contexts 99 and 9) and two prefill chunks (50 new from 0, 20 new after 30)
    s = BatchShape.from_requests([1, 1, 50, 20], [99, 9, 0, 30], emitting=3)
    assert s.num_tokens == 1 + 1 + 50 + 20 == 72
    assert s.num_seqs_emitting == 3
    assert (s.num_decode, s.decode_context_tokens) == (2, 100 + 10)
    assert (s.num_prefill, s.prefill_tokens) == (2, 70)
    assert s.prefill_attn_pairs == (50 * 0 + 50 * 51 // 2) + (20 * 30 + 20 * 21 // 2) == 2085
    assert s.prefill_kv_tokens == 50 + 50


def test_batch_shape_decode():
    s = BatchShape.decode([99, 9, 0])
    assert s == BatchShape(num_tokens=3, num_seqs_emitting=3, num_decode=3,
                           decode_context_tokens=100 + 10 + 1, decode_max_context=100)
    assert s == BatchShape.from_requests([1, 1, 1], [99, 9, 0], 3)
    # a cohort's decodes count in the sums and the longest context
    assert BatchShape.from_requests([1, 7], [9, 0], 1, more_decodes=2, more_decodes_computed=300,
                                    more_decodes_max_computed=250).decode_max_context == 251


# -- operator lists -------------------------------------------------------------------------------
def test_llama_token_ops_match_hand_formulas():
    cm = CostModel(LLAMA, round_device())
    got = as_dict(cm.token_ops(100, 3))
    assert got == hand_llama_ops(100, 3)
    # spot-check the headline GEMMs with the widths written out
    assert got["qkv_proj"][1] == 2 * 100 * 4096 * (4096 + 2 * 1024)
    assert got["mlp_up"][1] == 2 * 100 * 4096 * (2 * 14336)
    assert got["lm_head"][1] == 2 * 3 * 4096 * 128256
    assert list(got) == ["embedding", "input_norm", "qkv_proj", "rotary", "o_proj", "residual_add",
                         "post_attn_norm", "mlp_up", "mlp_act", "mlp_down", "final_norm", "lm_head"]


def test_llama_lm_head_rows_are_the_emitting_sequences():
    cm = CostModel(LLAMA, round_device())
    one = as_dict(cm.token_ops(512, 1))["lm_head"]
    four = as_dict(cm.token_ops(512, 4))["lm_head"]
    assert four[1] == 4 * one[1]
    # weight read once regardless of rows: bytes grow only by the activation rows
    assert four[2] - one[2] == 3 * (4096 + 128256) * 2


def test_llama_tp2_halves_widths_and_adds_two_allreduces_per_layer():
    cm = CostModel(LLAMA, round_device(), tp=2)
    got = as_dict(cm.token_ops(64, 64))
    assert got == hand_llama_ops(64, 64, tp=2)
    assert got["qkv_proj"][1] == 2 * 64 * 4096 * (2048 + 2 * 512)
    assert got["allreduce"] == ("allreduce", 0, 64 * 4096 * 2, 64)
    tp1 = as_dict(CostModel(LLAMA, round_device()).token_ops(64, 64))
    for name in ("qkv_proj", "o_proj", "mlp_up", "mlp_down", "lm_head"):
        assert got[name][1] == tp1[name][1] / 2
    for name in ("input_norm", "residual_add", "embedding"):    # replicated
        assert got[name] == tp1[name]


@pytest.mark.parametrize("T", [1, 5, 64])
def test_mixtral_token_ops_match_hand_formulas(T):
    cm = CostModel(MIXTRAL, round_device())
    got = as_dict(cm.token_ops(T, T))
    assert got == hand_mixtral_ops(T, T)
    assert not any(name.startswith("mlp_") for name in got)   # every layer is MoE


def test_mixtral_experts_op_sums_over_active_experts():
    cm = CostModel(MIXTRAL, round_device())
    assert cm.expert_token_counts(1).tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert cm.expert_token_counts(5).tolist() == [2, 2, 1, 1, 1, 1, 1, 1]
    # one token: 2 experts, each reading its 3 matrices (4096 x 2*14336 and 14336 x 4096)
    op = as_dict(cm.token_ops(1, 1))["moe_experts"]
    per_token_flops = 2 * 4096 * 28672 + 5 * 14336 + 2 * 14336 * 4096
    assert op[1] == 2 * per_token_flops
    weights = (4096 * 28672 + 14336 * 4096) * 2
    activations = (4096 + 28672 + 3 * 14336 + 14336 + 4096) * 2
    assert op[2] == 2 * (weights + activations)
    # five tokens: 10 assignments over all 8 experts; FLOPs linear in tokens, weights read 8 times
    op5 = as_dict(cm.token_ops(5, 5))["moe_experts"]
    assert op5[1] == 10 * per_token_flops
    assert op5[2] == 8 * weights + 10 * activations


def test_mixtral_tp2_experts_split():
    cm = CostModel(MIXTRAL, round_device(), tp=2)
    assert as_dict(cm.token_ops(5, 5)) == hand_mixtral_ops(5, 5, tp=2)


@pytest.mark.parametrize("tp", [1, 2])
def test_attention_ops_prefill_and_decode(tp):
    new, computed = [300, 7, 1, 1, 1], [0, 100, 999, 49, 0]
    cm = CostModel(LLAMA, round_device(), tp=tp)
    got = as_dict(cm.attention_ops(BatchShape.from_requests(new, computed, 4)))
    assert got == hand_attention_ops(new, computed, tp)
    # written out for tp=1: pairs = 300*301/2 + (7*100 + 7*8/2) = 45150 + 728
    if tp == 1:
        assert got["attn_prefill"][1] == 4 * 32 * 128 * (45150 + 728)
        assert got["attn_decode"][1] == 4 * 32 * 128 * (1000 + 50 + 1)
        assert got["attn_decode"][2] == (2 * 3 * 4096 + 1051 * 2 * 1024 + 3 * 2 * 1024) * 2


def test_attention_ops_only_what_the_batch_has():
    cm = CostModel(LLAMA, round_device())
    assert [op.name for op in cm.attention_ops(BatchShape.decode([10, 20]))] == ["attn_decode"]
    assert [op.name for op in cm.attention_ops(BatchShape.from_requests([16], [0], 1))] == \
        ["attn_prefill"]
    assert cm.attention_ops(BatchShape()) == []


# -- roofline ---------------------------------------------------------------------------------
def test_op_time_is_max_of_compute_and_memory_plus_launch():
    cm = CostModel(LLAMA, round_device())
    assert cm.op_time_s(2e12, 1e9) == pytest.approx(2e-3)      # compute-bound: 2e12 / 1e15
    assert cm.op_time_s(1e12, 3e9) == pytest.approx(3e-3)      # memory-bound: 3e9 / 1e12
    cm = CostModel(LLAMA, round_device(launch=5e-6, compute=0.5, memory=0.8))
    assert cm.op_time_s(2e12, 1e9) == pytest.approx(2e12 / 5e14 + 5e-6)
    assert cm.op_time_s(1e12, 3e9) == pytest.approx(3e9 / 8e11 + 5e-6)
    # fp8 peak is used for dtype fp8
    cm8 = CostModel(LLAMA, round_device(), dtype="fp8")
    assert cm8.op_time_s(2e12, 1e9) == pytest.approx(1e-3)


SHAPES = {
    "decode1": ([1], [1000]),
    "decode8": ([1] * 8, [10, 200, 3000, 4, 4, 512, 77, 1]),
    "mixed": ([2048, 1, 1], [0, 500, 700]),
    "prefill_chunk": ([5], [0]),
}


@pytest.mark.parametrize("launch, overhead", [(0.0, 0.0), (3e-6, 2e-4)])
@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_llama_iteration_time_is_hand_roofline(shape_name, launch, overhead):
    new, computed = SHAPES[shape_name]
    shape = BatchShape.from_requests(new, computed, emitting=len(new))
    cm = CostModel(LLAMA, round_device(launch=launch, overhead=overhead))
    ops = {**hand_llama_ops(sum(new), len(new)), **hand_attention_ops(new, computed)}
    expected = hand_time(ops, sum(new), launch=launch, overhead=overhead)
    assert cm.iteration_time(shape)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("launch", [0.0, 3e-6])
@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_mixtral_iteration_time_sums_expert_rooflines(shape_name, launch):
    new, computed = SHAPES[shape_name]
    T = sum(new)
    shape = BatchShape.from_requests(new, computed, emitting=len(new))
    cm = CostModel(MIXTRAL, round_device(launch=launch))
    ops = {**hand_mixtral_ops(T, len(new)), **hand_attention_ops(new, computed)}
    expected = hand_time(ops, T, launch=launch, expert_counts=balanced_counts(T))
    assert cm.iteration_time(shape)[0] == pytest.approx(expected, rel=1e-12)


def test_mixtral_single_token_experts_are_weight_reads():
    # one token on the round device: both active experts are memory-bound, so their time is just
    # their bytes over 1 TB/s: 2 x (weights + activations) / 1e12 per layer
    cm = CostModel(MIXTRAL, round_device())
    weights = (4096 * 28672 + 14336 * 4096) * 2
    activations = (4096 + 28672 + 3 * 14336 + 14336 + 4096) * 2
    assert cm._experts_time_s(1) == pytest.approx(2 * (weights + activations) / 1e12, rel=1e-12)


@pytest.mark.parametrize("model, hand_ops", [(LLAMA, hand_llama_ops), (MIXTRAL, hand_mixtral_ops)])
def test_tp2_iteration_time_includes_ring_allreduces(model, hand_ops):
    new, computed = [1] * 4, [100, 200, 300, 400]
    shape = BatchShape.from_requests(new, computed, 4)
    cm = CostModel(model, round_device(launch=1e-6), tp=2)
    ops = {**hand_ops(4, 4, tp=2), **hand_attention_ops(new, computed, tp=2)}
    expected = hand_time(ops, 4, tp=2, launch=1e-6, expert_counts=balanced_counts(4))
    assert cm.iteration_time(shape)[0] == pytest.approx(expected, rel=1e-12)
    # the link latency enters only through the 64 all-reduces, 2(p-1) = 2 steps each
    no_lat = CostModel(model, round_device(launch=1e-6, latency=0.0), tp=2)
    diff = cm.iteration_time(shape)[0] - no_lat.iteration_time(shape)[0]
    assert diff == pytest.approx(64 * 2 * 1e-6, rel=1e-9)
    # and the link bandwidth: 64 x (2*1/2 x 4*4096*2 bytes) / (1e11 * efficiency)
    slow = CostModel(model, round_device(launch=1e-6, interconnect=0.5), tp=2)
    diff = slow.iteration_time(shape)[0] - cm.iteration_time(shape)[0]
    msg = 4 * 4096 * 2
    assert diff == pytest.approx(64 * (msg / 5e10 - msg / 1e11), rel=1e-9)


def test_allreduce_time_s_ring_formula():
    cm = CostModel(LLAMA, round_device(interconnect=0.8), tp=4)
    msg = 10 * 4096 * 2
    assert cm.allreduce_time_s(10) == pytest.approx(2 * 3 / 4 * msg / 8e10 + 6 * LAT, rel=1e-12)
    assert CostModel(LLAMA, round_device()).allreduce_time_s(10) == 0.0


# -- energy -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 2])
def test_energy_is_static_plus_per_flop_plus_per_byte(tp):
    new, computed = [300, 1, 1], [0, 50, 60]
    shape = BatchShape.from_requests(new, computed, 3)
    cm = CostModel(LLAMA, round_device(launch=2e-6, overhead=1e-4), tp=tp)
    ops = {**hand_llama_ops(302, 3, tp=tp), **hand_attention_ops(new, computed, tp=tp)}
    flops = sum(count * f for _, f, _, count in ops.values())      # per device
    nbytes = sum(count * b for _, _, b, count in ops.values())
    time_s, energy_j = cm.iteration_time(shape)
    expected = IDLE_W * tp * time_s + tp * (PJ_FLOP * 1e-12 * flops + PJ_BYTE * 1e-12 * nbytes)
    assert energy_j == pytest.approx(expected, rel=1e-12)
    it = cm.iteration(shape)
    assert it.flops == pytest.approx(flops, rel=1e-12)
    assert it.bytes == pytest.approx(nbytes, rel=1e-12)
    assert it.energy_j == energy_j


# -- decode fast path ---------------------------------------------------------------------------
@pytest.mark.parametrize("model_name, tp, contexts, steps", [
    ("llama-3.1-8b", 1, [1000], 50),
    ("llama-3.1-8b", 1, [5, 17, 4000, 123, 9, 1, 1, 2048], 40),
    ("llama-3.1-8b", 2, [300] * 16, 30),
    ("mixtral-8x7b", 1, [100, 2000, 7], 40),
    ("mixtral-8x7b", 2, [64, 65, 66, 67, 68], 25),
])
@pytest.mark.parametrize("device", ["h100-sxm", "round"])
def test_decode_run_is_bit_identical_to_stepping(model_name, tp, contexts, steps, device):
    dev = load_device(device) if device == "h100-sxm" else round_device(launch=3e-6, overhead=4e-4)
    model = CATALOG[model_name]
    n = len(contexts)
    run_t, run_e = CostModel(model, dev, tp=tp).decode_run(n, sum(contexts) + n, steps)
    step_model = CostModel(model, dev, tp=tp)        # a separate instance: no shared memo
    times, energies = [], []
    for k in range(steps):
        t, e = step_model.iteration_time(BatchShape.decode([c + k for c in contexts]))
        times.append(t)
        energies.append(e)
    assert run_t.shape == run_e.shape == (steps,)
    assert run_t.tolist() == times          # exact, not approx
    assert run_e.tolist() == energies
    assert all(b > a for a, b in zip(times, times[1:])) or dev.name == "round"


def test_iteration_agrees_with_iteration_time_and_breakdown_sums():
    for model, tp in ((LLAMA, 1), (LLAMA, 2), (MIXTRAL, 1), (MIXTRAL, 2)):
        cm = CostModel(model, load_device("h100-sxm"), tp=tp)
        shape = BatchShape.from_requests([512, 1, 1, 1], [0, 10, 20, 4000], 4)
        it = cm.iteration(shape)
        assert isinstance(it, IterationCost)
        assert it.time_s == cm.iteration_time(shape)[0]
        assert it.energy_j == cm.iteration_time(shape)[1]
        assert math.fsum(it.breakdown_s.values()) == pytest.approx(it.time_s, rel=1e-12)
        assert it.breakdown_s["overhead"] == pytest.approx(4e-4)
        expected_kinds = {"overhead", "gemm", "elementwise", "attn_prefill", "attn_decode"}
        expected_kinds |= {"moe_expert"} if model.is_moe else set()
        expected_kinds |= {"allreduce"} if tp > 1 else set()
        assert set(it.breakdown_s) == expected_kinds
        assert it.busy_s == {"gpu": pytest.approx(it.time_s - 4e-4)}
        assert it.flops == math.fsum(op.count * op.flops for op in it.ops)
        assert it.bytes == math.fsum(op.count * op.bytes for op in it.ops)


# -- sanity against the real world --------------------------------------------------------------
def test_llama_8b_h100_batch1_decode_is_a_few_ms():
    dev = load_device("h100-sxm")
    cm = CostModel(LLAMA, dev)
    # pure roofline floor: all weights once over the datasheet bandwidth
    weights = LLAMA.weight_bytes
    assert weights == pytest.approx(16.06e9, rel=1e-3)
    floor = weights / 3.352e12
    assert floor == pytest.approx(4.79e-3, rel=1e-3)
    t, e = cm.iteration_time(BatchShape.decode([1000]))
    assert 5.5e-3 < t < 8e-3            # vLLM on H100 measures ~6-7 ms per token at batch 1
    assert t > floor
    assert 0 < e < 700 * t              # below TDP x time


def test_decode_time_grows_with_batch_and_context():
    cm = CostModel(LLAMA, load_device("h100-sxm"))
    by_batch = [cm.iteration_time(BatchShape.decode([1000] * n))[0] for n in (1, 8, 64, 256)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == 4
    by_ctx = [cm.iteration_time(BatchShape.decode([c]))[0] for c in (100, 1000, 10000, 100000)]
    assert by_ctx == sorted(by_ctx) and len(set(by_ctx)) == 4
    # and a batch of 64 is far cheaper than 64 batches of 1 (weights are read once)
    assert by_batch[2] < 4 * by_batch[0]


def test_tp2_is_faster_than_tp1_for_large_decode_batch():
    dev = load_device("h100-sxm")
    shape = BatchShape.decode([2000] * 64)
    t1 = CostModel(LLAMA, dev).iteration_time(shape)[0]
    t2 = CostModel(LLAMA, dev, tp=2).iteration_time(shape)[0]
    assert 0.5 * t1 < t2 < t1


def test_token_part_memo_returns_same_answer():
    cm = CostModel(MIXTRAL, round_device(launch=1e-6))
    shape = BatchShape.decode([10, 20, 30])
    first = cm.iteration_time(shape)
    assert cm.iteration_time(shape) == first
    assert CostModel(MIXTRAL, round_device(launch=1e-6)).iteration_time(shape) == first


def test_no_lm_head_when_no_sequence_samples():
    """A mid-prompt chunk emits no token, so the iteration reads no LM-head weights."""
    from sim.cost.model import BatchShape, CostModel
    from sim.hardware import load_device
    from sim.models import CATALOG

    cm = CostModel(CATALOG["llama-3.1-8b"], load_device("h100-sxm"))
    names = {op.name for op in cm.token_ops(512, 0)}
    assert "lm_head" not in names and "final_norm" in names
    chunk = cm.iteration_time(BatchShape.from_requests([512], [0], 0))[0]
    last = cm.iteration_time(BatchShape.from_requests([512], [0], 1))[0]
    assert last > chunk


@pytest.mark.parametrize("name, tp", [("llama-3.1-8b", 1), ("mixtral-8x7b", 2),
                                      ("llama-2-7b", 4)])
def test_hot_path_decode_attention_matches_reference_formula(name, tp):
    """The cost model's precomputed decode coefficients are attn_decode_cost, exactly."""
    import numpy as np

    from sim.cost.model import BatchShape, CostModel
    from sim.cost.ops import attn_decode_cost
    from sim.hardware import load_device
    from sim.models import CATALOG

    cm = CostModel(CATALOG[name], load_device("h100-sxm"), tp=tp)
    L = CATALOG[name].num_layers
    for n, ctx in [(1, 1000), (7, 12345), (256, 2_000_000)]:
        shape = BatchShape(n, n, n, ctx)
        _, flops, nbytes = cm._attention_part(shape, ctx)
        ref_f, ref_b = attn_decode_cost(n, ctx, cm.dims)
        assert flops == pytest.approx(L * ref_f, rel=1e-12)
        assert nbytes == pytest.approx(L * ref_b, rel=1e-12)
        _, vf, vb = cm._attention_part(shape, np.array([ctx, ctx + n]))
        assert vf[0] == flops and vb[0] == nbytes


@pytest.mark.parametrize("steps", [1, 2, 5, 16, 17, 200])     # both sides of _SHORT_RUN
@pytest.mark.parametrize("shared", [0, 1500])
@pytest.mark.parametrize("device", ["h100-sxm", "round"])
def test_replica_decode_run_is_bit_identical_and_sums_energy(steps, shared, device):
    """decode_run_energy_sum (the replica's path): durations equal iteration_time's to the last
    bit, whether costed in Python (short runs) or numpy; its energy of the first k iterations is
    the sum of theirs up to rounding."""
    dev = load_device(device) if device == "h100-sxm" else round_device(launch=3e-6, overhead=4e-4)
    contexts = [5, 17, 4000, 123, 9, 1, 1, 2048]
    n = len(contexts)
    times, energy_j = CostModel(LLAMA, dev).decode_run_energy_sum(n, sum(contexts) + n, steps,
                                                                  shared)
    stepped = [CostModel(LLAMA, dev).iteration_time(BatchShape.from_requests(
        [1] * n, [c + k for c in contexts], n, shared)) for k in range(steps)]
    expected_t, expected_e = [t for t, _ in stepped], [e for _, e in stepped]
    assert isinstance(times, list) and times == expected_t
    for k in {1, steps // 2, steps} - {0}:
        assert energy_j(k) == pytest.approx(math.fsum(expected_e[:k]), rel=1e-12)
