"""sim.calibration.learned (fitting) and sim.hardware.calibration.learned (reading): learned
default curves, their use by datasheet profiles, and the leave-one-GPU-out score on tiny worlds whose answer is known."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.calibration import learned
from sim.cost.model import BatchShape, CostModel
from sim.cost.ops import ATTN_DECODE, ATTN_PREFILL, GEMM
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.hardware.calibration import learned as learned_data
from sim.hardware.calibration.curves import KindCurve
from sim.models import CATALOG

LLAMA = CATALOG["llama-3.1-8b"]
FIXED = {"efficiency": {"model": "fixed"}}
# two made-up GPUs: (peak FLOP/s, bandwidth B/s)
GPU_A, GPU_B = (400e12, 2e12), (100e12, 0.5e12)


def synthetic(gpu: str, peak: float, bw: float, curve: KindCurve, kind: str = GEMM
              ) -> pd.DataFrame:
    """GEMM-like rows from 1 to 8192 tokens of a 4096 x 4096 weight, timed by ``curve``."""
    m = np.geomspace(1, 8192, 14)
    flops, nbytes = 2 * m * 4096 * 4096, 2.0 * (m * 4096 + 4096 * 4096 + m * 4096)
    t = learned.predict_s(learned.measurements(gpu, kind, flops, nbytes, np.ones_like(m), peak,
                                               bw), {kind: curve})
    return learned.measurements(gpu, kind, flops, nbytes, t, peak, bw)


# -- fitting and leave one GPU out ----------------------------------------------------------
def test_a_curve_shared_by_two_gpus_is_recovered_and_predicts_the_other_exactly():
    truth = KindCurve(0.6, 3e9, 0.8, 4e6)
    frame = pd.concat([synthetic("a", *GPU_A, truth), synthetic("b", *GPU_B, truth)],
                      ignore_index=True)
    fit = learned.fit_kind(frame)
    assert fit.compute_fraction == pytest.approx(0.6, rel=1e-6)
    assert fit.compute_half_flops == pytest.approx(3e9, rel=1e-4)
    assert fit.memory_fraction == pytest.approx(0.8, rel=1e-6)
    assert fit.memory_half_bytes == pytest.approx(4e6, rel=1e-4)
    logo = learned.leave_one_gpu_out(frame, kinds=(GEMM,))
    assert logo["gpu"].tolist() == ["a", "b"] and logo["rows"].tolist() == [14, 14]
    assert (logo["learned_median"] < 1e-6).all() and (logo["learned_mean"] < 1e-6).all()
    # the fixed roofline's error on the same rows, by hand
    for gpu, (peak, bw) in (("a", GPU_A), ("b", GPU_B)):
        rows = frame[frame["gpu"] == gpu]
        fixed = np.maximum(rows["flops"] / (0.7 * peak), rows["bytes"] / (0.85 * bw)) + 2e-6
        err = np.abs(fixed / rows["time_s"] - 1)
        got = logo[logo["gpu"] == gpu].iloc[0]
        assert got["fixed_median"] == pytest.approx(np.median(err), rel=1e-12)
        assert got["fixed_mean"] == pytest.approx(np.mean(err), rel=1e-12)


def test_two_gpus_at_different_fractions_miss_each_other_by_their_ratio():
    # memory-bound rows, no fixed cost: GPU a reaches 80% of its bandwidth, b 50%. Learned on
    # b alone, a is predicted 0.8/0.5 = 1.6x too slow (error 60%); learned on a, b 37.5% fast.
    nbytes = np.geomspace(1e5, 1e10, 9)
    rows = [learned.measurements(g, "elementwise:add", 0 * nbytes, nbytes, nbytes / (bw * f),
                                 peak, bw)
            for g, (peak, bw), f in (("a", GPU_A, 0.8), ("b", GPU_B, 0.5))]
    logo = learned.leave_one_gpu_out(pd.concat(rows, ignore_index=True),
                                     kinds=("elementwise:add",)).set_index(["gpu", "kind"])
    for kind in ("elementwise:add", "elementwise"):      # the op, and the elementwise group
        assert logo.loc[("a", kind), "learned_median"] == pytest.approx(0.6, rel=1e-9)
        assert logo.loc[("a", kind), "learned_mean"] == pytest.approx(0.6, rel=1e-9)
        assert logo.loc[("b", kind), "learned_median"] == pytest.approx(0.375, rel=1e-9)
    # fixed: memory at 85% plus 2 us, on the same rows
    t_a = nbytes / (GPU_A[1] * 0.8)
    fixed_a = np.abs((nbytes / (GPU_A[1] * 0.85) + 2e-6) / t_a - 1)
    assert logo.loc[("a", "elementwise:add"), "fixed_mean"] == pytest.approx(fixed_a.mean())
    table = learned.markdown_table(logo.reset_index())
    assert table.splitlines()[0].startswith("| held-out GPU | op kind | rows |")
    assert "| a | elementwise:add | 9 | 60.0 | 60.0 |" in table


def test_every_gpu_counts_the_same_whatever_its_rows():
    # a: many rows at fraction 0.5, b: few at 0.8; weighted equally the L1 fit sits on one of
    # them, not on the row-majority. With three GPUs the median one wins.
    nbytes = np.geomspace(1e6, 1e10, 40)
    frames = [learned.measurements(g, "elementwise:add", 0 * nb, nb, nb / (1e12 * f), 1e14, 1e12)
              for g, nb, f in (("a", nbytes, 0.5), ("b", nbytes[::10], 0.8),
                               ("c", nbytes[::5], 0.6))]
    fit = learned.fit_kind(pd.concat(frames, ignore_index=True))
    assert fit.memory_fraction == pytest.approx(0.6, rel=1e-3)


def test_selection_keeps_a_group_only_where_it_beats_the_fixed_roofline():
    logo = pd.DataFrame([
        ("x", GEMM, 10, 0.05, 0.06, 0.10, 0.11), ("y", GEMM, 10, 0.08, 0.09, 0.07, 0.08),
        ("z", GEMM, 10, 0.04, 0.05, 0.09, 0.10),
        ("x", "elementwise", 5, 0.5, 0.5, 0.2, 0.2), ("y", "elementwise", 5, 0.1, 0.1, 0.2, 0.2),
        ("x", ATTN_PREFILL, 5, 0.1, 0.1, 0.2, 0.2)],        # one GPU only: no decision
        columns=["gpu", "kind", "rows", "learned_median", "learned_mean", "fixed_median",
                 "fixed_mean"])
    assert learned.selected_kinds(logo) == {GEMM: True, "elementwise": False}
    curves = {GEMM: KindCurve(), "elementwise": KindCurve(), "elementwise:add": KindCurve(),
              ATTN_PREFILL: KindCurve()}
    assert set(learned.used_curves(curves, {GEMM: True, "elementwise": False})) == {GEMM}


# -- the YAML ----------------------------------------------------------------------------------
def test_learned_curves_round_trip_through_the_yaml(tmp_path):
    curves = {GEMM: KindCurve(0.7712345678, 2.4e9, 0.86, 4.1e6),
              ATTN_DECODE: KindCurve(1.0, 0.0, 0.7, 1.2e7),
              "elementwise": KindCurve(1.0, 0.0, 0.9, 1e6),
              "elementwise:rmsnorm": KindCurve(1.0, 0.0, 0.5, 2e6)}
    path = tmp_path / "learned.yaml"
    path.write_text(yaml.safe_dump({"curves": learned.curves_yaml(curves)}))
    back = learned_data.read_curves(path)
    assert set(back) == set(curves)
    for kind, c in curves.items():      # six significant digits in the YAML
        for field in dataclasses.fields(KindCurve):
            assert getattr(back[kind], field.name) == pytest.approx(getattr(c, field.name),
                                                                   rel=1e-6)
    cal = learned_data.learned_calibration(str(path))
    assert cal.curves == back and not any(cal.tables.rows().values())
    assert cal.dtype_bytes == 2 and hash(cal) == hash(learned_data.learned_calibration(str(path)))


def test_a_bad_learned_curve_is_an_error_naming_the_file_and_field(tmp_path):
    path = tmp_path / "learned.yaml"
    path.write_text(yaml.safe_dump({"curves": {"gemm": {"compute_fraction": 1.5}}}))
    with pytest.raises(ScenarioError) as info:
        learned_data.read_curves(path)
    assert "learned.yaml" in str(info.value) and "compute_fraction" in str(info.value)


def test_the_shipped_curves_load_and_say_what_they_were_fitted_on():
    data = yaml.safe_load(learned_data.LEARNED_PATH.read_text())
    assert set(data["curves"]) >= {GEMM} and len(data["gpus"]) >= 2 and data["holdout"]
    # exactly the groups that beat the fixed roofline held out are used
    used = {k.split(":", 1)[0] for k in learned_data.read_curves()}
    assert used == {group for group, ok in data["selected"].items() if ok}
    for gpu in data["gpus"].values():
        assert gpu["bf16_tflops"] > 0 and gpu["bandwidth_gb_s"] > 0 and gpu["datasheet"]


# -- profiles ----------------------------------------------------------------------------------
def test_a_datasheet_gpu_carries_the_learned_curves_and_fixed_does_not():
    learned_h100 = load_device("h100-sxm")
    fixed_h100 = load_device("h100-sxm", FIXED)
    assert learned_h100.calibration == learned_data.learned_calibration()
    assert fixed_h100.calibration is None and learned_h100 != fixed_h100
    assert load_device("duplex-h100").calibration is None      # Duplex devices: their own model
    with pytest.raises(ScenarioError) as info:
        load_device("h100-sxm", {"efficiency": {"model": "measured"}})
    assert "efficiency.model" in str(info.value) and "learned, fixed" in str(info.value)


def test_fixed_reproduces_the_old_roofline_exactly():
    device = load_device("h100-sxm", FIXED)
    cm = CostModel(LLAMA, device)
    peak, bw = device.peak_flops("bf16"), device.hbm_bandwidth
    for op in cm.token_ops(64, 64):
        expected = max(op.flops / (peak * 0.70), op.bytes / (bw * 0.85)) + 2e-6
        assert cm._op_seconds(op, 64) == expected
    shapes = [BatchShape.decode([1000]), BatchShape.from_requests([1, 512], [700, 0], 2)]
    bare = CostModel(LLAMA, dataclasses.replace(load_device("h100-sxm"), calibration=None))
    for shape in shapes:
        assert cm.iteration_time(shape) == bare.iteration_time(shape)


def test_a_learned_op_time_is_the_yaml_curve_by_hand():
    data = yaml.safe_load(learned_data.LEARNED_PATH.read_text())["curves"]
    device = load_device("h100-sxm")
    peak, bw = 989.4e12, 3352e9                 # hardware_profiles/h100-sxm.yaml
    cm = CostModel(LLAMA, device)
    shape = BatchShape.decode([1000] * 8)
    expected: dict[str, float] = {}
    for op in cm.token_ops(8, 8) + cm.attention_ops(shape):
        kind = op.kind
        curve = data.get(kind)
        if kind == "elementwise" and curve is not None:
            name = {"input_norm": "rmsnorm", "post_attn_norm": "rmsnorm", "final_norm": "rmsnorm",
                    "residual_add": "add", "mlp_act": "silu_mul"}.get(op.name, op.name)
            curve = data["elementwise_ops"].get(name, curve)
        if curve is None:     # a kind without a learned curve: the fixed roofline
            t = max(op.flops / (peak * 0.70), op.bytes / (bw * 0.85)) + 2e-6
        else:
            t = max((op.flops + curve["compute_half_flops"]) / (peak * curve["compute_fraction"]),
                    (op.bytes + curve["memory_half_bytes"]) / (bw * curve["memory_fraction"]))
        expected[kind] = expected.get(kind, 0.0) + op.count * t
    got = cm.iteration(shape).breakdown_s
    for kind, t in expected.items():
        assert got[kind] == pytest.approx(t, rel=1e-12), kind
    assert GEMM in data          # the test above did use a learned curve


def test_a_profile_with_its_own_calibration_ignores_the_learned_curves(synthetic_profile):
    own = load_device(str(synthetic_profile))
    explicit = load_device(str(synthetic_profile), {"efficiency": {"model": "learned"}})
    assert own.calibration.source == "synthetic" and explicit.calibration == own.calibration
    assert own.calibration != learned_data.learned_calibration()
    assert own.calibration.curves[GEMM] != learned_data.learned_calibration().curves[GEMM]


def test_learned_curves_warn_about_nothing_and_leave_other_element_sizes_on_the_roofline():
    device = load_device("h100-sxm")
    fp8 = dataclasses.replace(LLAMA, dtype_bytes=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CostModel(LLAMA, device).iteration_time(BatchShape.decode([100, 200]))
        on_fp8 = CostModel(fp8, device).iteration_time(BatchShape.decode([100]))
    fixed = CostModel(fp8, load_device("h100-sxm", FIXED)).iteration_time(BatchShape.decode([100]))
    assert on_fp8 == fixed


def test_learned_attention_curves_keep_decode_runs_bit_identical(tmp_path):
    # the shipped YAML may leave attention on the roofline; a refit may not: exercise the path
    path = tmp_path / "learned.yaml"
    curves = {GEMM: KindCurve(0.77, 2.4e9, 0.86, 4e6), ATTN_DECODE: KindCurve(1.0, 0.0, 0.7, 1.3e7),
              ATTN_PREFILL: KindCurve(0.6, 1e9, 0.3, 2e6), "elementwise": KindCurve(1, 0, 0.8, 1e6)}
    path.write_text(yaml.safe_dump({"curves": learned.curves_yaml(curves)}))
    device = dataclasses.replace(load_device("h100-sxm"),
                                 calibration=learned_data.learned_calibration(str(path)))
    cm = CostModel(LLAMA, device)
    assert cm._decode_rates != cm.rates and cm._prefill_rates != cm.rates   # on the curves
    for steps in (5, 40):       # the short (Python floats) and the numpy paths
        times, _ = cm.decode_run_energy_sum(16, 16 * 900, steps)
        stepped = [cm.iteration_time(BatchShape(16, 16, 16, 16 * 900 + 16 * i))[0]
                   for i in range(steps)]
        assert times == stepped
        run, _ = cm.decode_run(16, 16 * 900, steps)
        assert run.tolist() == stepped
