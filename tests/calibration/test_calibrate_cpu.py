"""``llmsim calibrate --device cpu``: torch measurements -> profile -> a simulation that uses it.

The grid is shrunk to a handful of tiny shapes (the real ``--quick`` CPU grid is timed in
benchmarks/README.md); everything else is the real pipeline.
"""

from __future__ import annotations

import json

import pytest
import yaml

from sim.calibration import run as calibrate_run
from sim.calibration.plan import Plan, make_plan
from sim.cli import main
from sim.hardware import load_device
from sim.models import CATALOG

TINY = Plan(tokens=(1, 8, 32), gemm=((64, 128, 32), (128, 64, 32)),
            elementwise=(("rmsnorm", 64), ("silu_mul", 64), ("add", 64)),
            attention=(("attn_prefill", 1, 16, 16, 4, 2, 16), ("attn_prefill", 2, 32, 32, 4, 2, 16),
                       ("attn_decode", 2, 1, 32, 4, 2, 16), ("attn_decode", 4, 1, 64, 4, 2, 16)),
            copy_mib=(1,), warmup=1, repeats=3, point_s=0.005, budget_s=20.0)


@pytest.mark.filterwarnings("ignore::sim.cost.predictor.CalibrationWarning")
def test_calibrate_cpu_then_simulate(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.setattr(calibrate_run, "make_plan", lambda *args: TINY)
    out = tmp_path / "cpu-tiny.yaml"
    assert main(["calibrate", "--device", "cpu", "--quick", "--threads", "1", "-o",
                 str(out)]) == 0
    assert "held-out MAPE" in capsys.readouterr().out
    device = load_device(str(out))
    cal = device.calibration
    assert cal.tables.rows() == {"gemm": 6, "elementwise": 10, "attention": 4, "allreduce": 0}
    assert {"torch", "date", "device_name", "threads"} <= set(cal.environment)
    assert cal.environment["threads"] == "1"
    assert device.bf16_flops > 0 and device.hbm_bandwidth > 0     # measured peaks
    assert set(cal.curves) >= {"gemm", "elementwise", "attn_prefill", "attn_decode"}

    scenario = tmp_path / "on-cpu.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "on-cpu", "seed": 1, "model": "llama-3.1-8b",
        # the host's RAM may be small: the KV pool is sized from this, not measured
        "hardware": {"name": out.name, "memory": {"capacity_gib": 80}},
        "cluster": {"replicas": 1},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 0.05}, "num_requests": 20,
                     "prompt_tokens": {"dist": "fixed", "value": 64},
                     "output_tokens": {"dist": "fixed", "value": 8}}}))
    assert main(["run", str(scenario), "-o", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests_completed"] == 20
    assert main(["hardware", "show", str(out), "--json"]) == 0
    assert "gemm" in json.loads(capsys.readouterr().out)["calibration"]["mape"]


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["calibrate", "--device", "cuda", "-o", str(tmp_path / "x.yaml")]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_missing_output_and_unknown_model_are_one_line(tmp_path, capsys):
    assert main(["calibrate", "--device", "cpu"]) == 2
    assert "-o PATH.yaml is required" in capsys.readouterr().err
    assert main(["calibrate", "--device", "cpu", "--models", "llama-9", "-o",
                 str(tmp_path / "x.yaml")]) == 2
    assert "llama-9" in capsys.readouterr().err


def test_plan_has_each_model_shape_per_tp_shard():
    plan = make_plan([CATALOG["llama-3.1-8b"]], quick=False, device="cuda")
    kn = {(k, n): m for k, n, m in plan.gemm}
    assert kn[(4096, 6144)] == 16384 and kn[(4096, 3072)] == 16384     # QKV at TP1, TP2
    assert (4096 // 8, 4096) in kn and (14336 // 8, 4096) in kn          # o, down at TP8
    assert kn[(4096, 128256 // 4)] == 1024                               # LM head rows: sampling
    assert plan.tokens[0] == 1 and plan.tokens[-1] == 16384
    assert ("rotary", (32 + 8) * 128) in plan.elementwise
    assert ("attn_decode", 1, 1, 256, 32, 8, 128) in plan.attention
    quick_cpu = make_plan([], quick=True, device="cpu")
    assert quick_cpu.budget_s <= 60 and max(quick_cpu.tokens) <= 256
