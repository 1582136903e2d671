"""Measured vLLM layer tables: import of both layouts, interpolation, the profiled cost model,
fast-forward equality, fallbacks and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from synthetic_vllm_tables import (PER_SEQ_US, attention_us, current_frames, dense_us,
                                   per_seq_us, write_current, write_v0)

from sim import Scenario, simulate
from sim.hardware.calibration.layers import Curve, Grid, LayerTables
from sim.calibration.llmservingsim import find_tables, import_llmservingsim
from sim.cli import main
from sim.cost.engine import EngineTerms
from sim.cost.factory import make_cost_model
from sim.cost.model import BatchShape, CostModel
from sim.cost.profiled import ProfiledCostModel
from sim.hardware import load_device
from sim.models import get_model

LLAMA = get_model("llama-3.1-8b")


@pytest.fixture
def measured_profile(tmp_path):
    gpu = write_current(tmp_path / "src")
    out = tmp_path / "synth-vllm.yaml"
    import_llmservingsim(gpu, out, base="rtx-4090")
    return out


# -- interpolation ---------------------------------------------------------------------------
def test_curve_exact_at_points_linear_between_and_beyond():
    c = Curve(np.array([1.0, 2.0, 4.0, 8.0]), np.array([10.0, 12.0, 16.0, 24.0]))
    assert c(2.0) == 12.0 and c(4.0) == 16.0
    assert c(3.0) == pytest.approx(14.0)
    assert c(0.5) == 10.0                              # below: the smallest measurement
    assert c(16.0) == pytest.approx(24.0 + 8 * 2.0)    # slope over the upper half: (24-16)/4


def test_grid_multilinear_and_unmeasured_cells_filled():
    pts = np.array([[x, y] for x in (1.0, 3.0) for y in (10.0, 20.0)])
    t = np.array([1.0, 2.0, 3.0, 5.0])                 # t(1,10)=1 t(1,20)=2 t(3,10)=3 t(3,20)=5
    g = Grid(pts, t, model=lambda p: np.ones(len(p)))
    assert g(2.0, 15.0) == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert g(3.0, 20.0) == 5.0
    # a cell between two measured ones along an axis is their linear interpolation
    pts3 = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [1.0, 20.0], [3.0, 20.0]])
    g3 = Grid(pts3, np.array([1.0, 9.0, 3.0, 2.0, 5.0]), model=lambda p: np.ones(len(p)))
    assert g3(2.0, 20.0) == pytest.approx(3.5)
    # past the grid: the edge's time scaled by the work model
    g4 = Grid(pts, t, model=lambda p: p[:, 0] * p[:, 1])
    assert g4(6.0, 20.0) == pytest.approx(5.0 * (6 * 20) / (3 * 20))


def test_layer_tables_read_back_the_synthetic_laws():
    tables = LayerTables(current_frames())
    assert tables.layer_s("qkv_proj", 300) == pytest.approx(dense_us("qkv_proj", 300) * 1e-6)
    assert tables.per_sequence_s("sampler", 100) == pytest.approx(per_seq_us("sampler", 100)
                                                                  * 1e-6)
    for point in [(0, 0, 10, 700), (100, 300, 0, 0), (100, 300, 10, 700)]:
        assert tables.attention_s(*map(float, point)) == pytest.approx(
            attention_us(*point) * 1e-6, rel=1e-9), point
    # beyond the measured grid the work model carries the edge on, close to the law
    far = (2048, 0, 300, 9000)
    assert tables.attention_s(*map(float, far)) == pytest.approx(attention_us(*far) * 1e-6,
                                                                 rel=0.1)


# -- import ----------------------------------------------------------------------------------
def test_import_current_layout_round_trip(measured_profile, capsys):
    device = load_device(str(measured_profile))
    entries = device.measured.summary()
    assert [(e["model"], e["tp"], e["dtype"]) for e in entries] == [
        ("meta-llama/Llama-3.1-8B", 1, "bf16")]
    written = measured_profile.parent / entries[0]["dir"]
    for kind, frame in current_frames().items():
        back = pd.read_csv(written / f"{kind}.csv")
        pd.testing.assert_frame_equal(back, frame.astype(back.dtypes.to_dict()), check_dtype=False)
    # the synthetic laws are linear: held-out rows are read back almost exactly
    assert all(v < 0.02 for v in entries[0]["holdout_mape"].values())
    # datasheet numbers come from the base profile
    base = load_device("rtx-4090")
    assert (device.hbm_bytes, device.price_usd_per_hour) == (base.hbm_bytes,
                                                             base.price_usd_per_hour)
    assert main(["hardware", "show", str(measured_profile), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["measured"]["entries"][0]["model"] == "meta-llama/Llama-3.1-8B"


def test_import_older_layout_converts(tmp_path):
    (found,) = find_tables(write_v0(tmp_path))
    assert (found.model, found.tp, found.layout) == ("meta-llama/Llama-3.1-8B", 2, "v0")
    dense = found.frames["dense"].set_index(["layer", "tokens"])["time_us"]
    for t in (1, 64, 1024):   # q + k + v, gate + up, the mean of the two norms, rope renamed
        assert dense["qkv_proj", t] == pytest.approx(dense_us("qkv_proj", t), abs=2e-3)
        assert dense["gate_up_proj", t] == pytest.approx(dense_us("gate_up_proj", t), abs=2e-3)
        assert dense["layernorm", t] == pytest.approx(dense_us("layernorm", t), abs=2e-3)
        assert dense["rotary_emb", t] == pytest.approx(dense_us("rotary_emb", t), abs=2e-3)
    per_seq = found.frames["per_sequence"]
    assert set(per_seq.layer) == {"lm_head"} and any("sampler" in n for n in found.notes)
    att = found.frames["attention"]
    # Vidur's prefill kv_cache_size counts the chunk, ours the cached tokens before it; its
    # decode kv_cache_size is the batch's, ours each sequence's
    row = att[(att.prefill_chunk == 64) & (att.kv_prefill == 192)]
    assert row.time_us.iloc[0] == pytest.approx(attention_us(64, 192, 0, 0))
    row = att[(att.n_decode == 4) & (att.kv_decode == 256)]
    assert row.time_us.iloc[0] == pytest.approx(attention_us(0, 0, 4, 256))


def test_import_takes_every_model_and_tp_below_the_folder(tmp_path):
    write_current(tmp_path, tp=1)
    write_current(tmp_path, tp=2)
    write_current(tmp_path, model="Qwen/Qwen3-32B", tp=2)
    found = find_tables(tmp_path / "perf" / "SYNTH")
    assert sorted((f.model, f.tp) for f in found) == [
        ("Qwen/Qwen3-32B", 2), ("meta-llama/Llama-3.1-8B", 1), ("meta-llama/Llama-3.1-8B", 2)]
    # ... and from any folder below the GPU folder
    assert len(find_tables(tmp_path / "perf" / "SYNTH" / "meta-llama")) == 2


# -- the profiled cost model -------------------------------------------------------------------
def _by_hand(shape_tokens: int, emitting: int, attn_us: float, layers: int = 32) -> float:
    per_layer = (2 * dense_us("layernorm", shape_tokens) + dense_us("qkv_proj", shape_tokens)
                 + dense_us("rotary_emb", shape_tokens) + dense_us("o_proj", shape_tokens)
                 + dense_us("gate_up_proj", shape_tokens) + dense_us("act_fn", shape_tokens)
                 + dense_us("down_proj", shape_tokens))
    once = dense_us("embedding", shape_tokens) + dense_us("final_layernorm", shape_tokens)
    heads = sum(per_seq_us(n, emitting) for n in PER_SEQ_US)
    return (layers * (per_layer + attn_us) + once + heads) * 1e-6


def test_profiled_iteration_is_the_sum_of_measured_layers(measured_profile):
    device = load_device(str(measured_profile))
    cost = make_cost_model(LLAMA, device, 1)
    assert isinstance(cost, ProfiledCostModel)
    fixed = device.efficiency.iteration_overhead_s     # no engine: the profile's fixed overhead
    decode = BatchShape.decode([700] * 10)          # 10 decodes, 701 keys each
    want = fixed + _by_hand(10, 10, attention_us(0, 0, 10, 701))
    assert cost.iteration_time(decode)[0] == pytest.approx(want, rel=1e-9)
    # a prefill chunk of 100 tokens after 300 cached, plus those decodes
    mixed = BatchShape.from_requests([100] + [1] * 10, [300] + [700] * 10, emitting=11)
    want = fixed + _by_hand(110, 11, attention_us(100, 300, 10, 701))
    assert cost.iteration_time(mixed)[0] == pytest.approx(want, rel=1e-9)


def test_cuda_graphs_pad_token_layers_and_cpu_overhead_hides_under_async(measured_profile):
    device = load_device(str(measured_profile))
    terms = EngineTerms(cuda_graph_sizes=(8, 16, 32), step_cpu_us=100.0, request_cpu_us=1.0)
    cost = make_cost_model(LLAMA, device, 1, terms)
    shape = BatchShape.decode([700] * 10)
    # token-wise layers at the graph's 16 tokens; attention and the LM head at the 10 real ones
    padded = _by_hand(16, 10, attention_us(0, 0, 10, 701))
    assert cost.iteration_time(shape)[0] == pytest.approx(padded, rel=1e-9)
    sync = make_cost_model(LLAMA, device, 1, EngineTerms(
        cuda_graph_sizes=(8, 16, 32), step_cpu_us=100.0, request_cpu_us=1.0,
        async_scheduling=False))
    assert sync.iteration_time(shape)[0] == pytest.approx(padded + 110e-6, rel=1e-9)


def test_tensor_parallel_adds_allreduces_on_the_link(tmp_path):
    gpu = write_current(tmp_path / "src", tp=2)
    out = tmp_path / "tp2.yaml"
    import_llmservingsim(gpu, out, base="rtx-4090")
    device = load_device(str(out))
    cost = make_cost_model(LLAMA, device, 2)
    shape = BatchShape.decode([700] * 10)
    ring = CostModel(LLAMA, device, 2)
    allreduce = 2 * 32 * (ring.allreduce_time_s(10) + device.efficiency.kernel_launch_s)
    want = device.efficiency.iteration_overhead_s + _by_hand(
        10, 10, attention_us(0, 0, 10, 701)) + allreduce
    assert cost.iteration_time(shape)[0] == pytest.approx(want, rel=1e-9)


def test_model_without_tables_falls_back_to_datasheet_with_a_warning(measured_profile):
    device = load_device(str(measured_profile))
    qwen = get_model("qwen2.5-7b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cost = make_cost_model(qwen, device, 1)
    assert type(cost) is CostModel
    assert sum("no measured vLLM tables" in str(w.message) for w in caught) == 1
    plain = make_cost_model(qwen, load_device("rtx-4090"), 1)
    shape = BatchShape.decode([500] * 4)
    assert cost.iteration_time(shape)[0] == plain.iteration_time(shape)[0]


def _scenario(profile, fast_forward: bool) -> Scenario:
    return Scenario.from_dict({
        "name": "measured", "seed": 3, "model": "meta-llama/Llama-3.1-8B",
        "hardware": str(profile),
        "scheduler": {"max_num_seqs": 32, "max_batched_tokens": 512, "kv_blocks": 400},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20}, "num_requests": 150,
                     "prompt_tokens": {"dist": "lognormal", "mean": 300, "sigma": 0.8,
                                       "max": 2000},
                     "output_tokens": {"dist": "lognormal", "mean": 120, "sigma": 0.8,
                                       "max": 600}},
        "simulation": {"fast_forward": fast_forward}})


def assert_same_requests(a, b) -> None:
    """The same requests at the same times, to the last bit."""
    cols = ["request_id", "first_token_s", "finish_s", "preemptions"]
    pd.testing.assert_frame_equal(a.requests[cols].sort_values("request_id").reset_index(drop=True),
                                  b.requests[cols].sort_values("request_id").reset_index(drop=True),
                                  check_exact=True)


def test_fast_forward_equals_stepping_with_measured_tables(measured_profile):
    fast = simulate(_scenario(measured_profile, True))
    step = simulate(_scenario(measured_profile, False))
    assert_same_requests(fast, step)
    assert fast.summary["requests_completed"] == 150
    assert fast.iterations["num_iterations"].max() > 1     # runs were fast-forwarded


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("breakage, words", [
    ("missing", "not a folder"),
    ("empty", "no measured tables found"),
    ("column", "time_us"),
    ("value", "line 3"),
    ("incomplete", "attention.csv"),
])
def test_bad_profile_folders_are_one_line_errors(tmp_path, capsys, breakage, words):
    root = tmp_path / "src"
    gpu = write_current(root)
    folder = gpu / "meta-llama" / "Llama-3.1-8B" / "bf16" / "tp1"
    if breakage == "missing":
        gpu = tmp_path / "nope"
    elif breakage == "empty":
        gpu = tmp_path / "empty"
        gpu.mkdir()
    elif breakage == "column":
        (folder / "dense.csv").write_text("layer,tokens,us\nqkv_proj,1,3.0\n")
    elif breakage == "value":
        (folder / "per_sequence.csv").write_text("layer,sequences,time_us\nlm_head,1,5\n"
                                                 "lm_head,2,abc\n")
    elif breakage == "incomplete":
        (folder / "attention.csv").unlink()
    assert main(["calibrate", "import-llmservingsim", str(gpu), "--base", "rtx-4090",
                 "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_ops_table_reads_the_measured_tables(measured_profile):
    from sim.cost.op_table import run_ops

    frame, title = run_ops("llama-3.1-8b", str(measured_profile), batch=10, context=700,
                           prefill=0, tp=1, overrides=[])
    seconds = frame.set_index("op")["time_s"]
    assert seconds["qkv_proj"] == pytest.approx(32 * dense_us("qkv_proj", 10) * 1e-6)
    assert seconds["residual_add"] == 0.0            # fused into vLLM's RMSNorm
    assert seconds["attn_decode"] == pytest.approx(32 * attention_us(0, 0, 10, 701) * 1e-6)
    assert frame["share"].sum() == pytest.approx(1.0)


def test_moe_model_costs_its_measured_moe_block_and_qk_norm(tmp_path):
    from synthetic_vllm_tables import moe_us

    gpu = write_current(tmp_path / "src", model="Qwen/Qwen3-30B-A3B-Instruct-2507", moe=True)
    out = tmp_path / "moe.yaml"
    import_llmservingsim(gpu, out, base="h100-sxm")
    qwen = get_model("Qwen/Qwen3-30B-A3B-Instruct-2507")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # every op the model needs is measured
        cost = make_cost_model(qwen, load_device(str(out)), 1)
        assert isinstance(cost, ProfiledCostModel)
        shape = BatchShape.decode([700] * 10)
        seconds = cost.iteration_time(shape)[0]
    experts = 128 * (1 - (1 - 8 / 128) ** 10)       # expected experts 10 tokens activate
    per_layer = (2 * dense_us("layernorm", 10) + dense_us("qkv_proj", 10) + 3.0 + 0.01 * 10
                 + dense_us("rotary_emb", 10) + dense_us("o_proj", 10)
                 + moe_us(10, experts) + attention_us(0, 0, 10, 701))
    once = dense_us("embedding", 10) + dense_us("final_layernorm", 10) + \
        sum(per_seq_us(n, 10) for n in PER_SEQ_US)
    want = load_device(str(out)).efficiency.iteration_overhead_s + (48 * per_layer + once) * 1e-6
    assert seconds == pytest.approx(want, rel=1e-3)     # (the MoE grid is read between points)


def test_measured_moe_model_in_a_data_parallel_expert_parallel_group(tmp_path):
    gpu = write_current(tmp_path / "src", model="Qwen/Qwen3-30B-A3B-Instruct-2507", moe=True)
    out = tmp_path / "moe.yaml"
    import_llmservingsim(gpu, out, base="h100-sxm")
    result = simulate(Scenario.from_dict({
        "model": "Qwen/Qwen3-30B-A3B-Instruct-2507", "hardware": str(out),
        "cluster": {"replicas": 2, "expert_parallel": True, "router": "least-outstanding"},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20}, "num_requests": 80,
                     "prompt_tokens": {"dist": "fixed", "value": 300},
                     "output_tokens": {"dist": "fixed", "value": 40}}}))
    assert result.summary["requests_completed"] == 80
    steps = result.iterations.groupby("start_s")["duration_s"].agg(["min", "max"])
    assert (steps["min"] == steps["max"]).all()


# -- unequal decode contexts (the skew fit) ------------------------------------------------------
@pytest.fixture
def skewed_profile(tmp_path):
    gpu = write_current(tmp_path / "skewed-src", skew=True)
    out = tmp_path / "skewed.yaml"
    import_llmservingsim(gpu, out, base="rtx-4090")
    return out


def test_skew_fit_moves_decode_attention_toward_the_longest_context(skewed_profile, tmp_path):
    from synthetic_vllm_tables import SKEW_ALPHA

    cost = make_cost_model(LLAMA, load_device(str(skewed_profile)), 1)
    shape = BatchShape.decode([100, 100, 1000])
    mean, longest = (101 + 101 + 1001) / 3, 1001
    at_mean, at_longest = attention_us(0, 0, 3, mean), attention_us(0, 0, 3, longest)
    want = at_mean + SKEW_ALPHA * (at_longest - at_mean)
    assert cost.attention_call_s(shape, shape.decode_context_tokens) == pytest.approx(want * 1e-6)
    # equal contexts: no correction
    even = BatchShape.decode([400, 400, 400])
    assert cost.attention_call_s(even, even.decode_context_tokens) == pytest.approx(
        attention_us(0, 0, 3, 401) * 1e-6)
    # a profile that marks its skew fit disabled does not apply it
    off = write_current(tmp_path / "off", skew=False)
    import_llmservingsim(off, tmp_path / "off.yaml", base="rtx-4090")
    plain = make_cost_model(LLAMA, load_device(str(tmp_path / "off.yaml")), 1)
    assert plain.attention_call_s(shape, shape.decode_context_tokens) == pytest.approx(
        at_mean * 1e-6)


def test_fast_forward_equals_stepping_with_a_skew_fit(skewed_profile, measured_profile):
    # the decode cohort tracks its longest context for the fit: the same as stepping
    fast = simulate(_scenario(skewed_profile, True))
    step = simulate(_scenario(skewed_profile, False))
    assert_same_requests(fast, step)
    # ... and the fit mattered: the same tables without it give other times
    unskewed = simulate(_scenario(measured_profile, True))
    assert fast.summary["tpot_s"]["mean"] > unskewed.summary["tpot_s"]["mean"]
