"""Duplex-family profiles: the five devices load with the paper's numbers; bad sections fail."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sim.errors import ScenarioError
from sim.hardware import DEVICE_KINDS, DeviceSpec, load_device
from sim.hardware.duplex import DuplexSpec

# Duplex-family devices keep the fixed-efficiency roofline (no learned curves): their GPU
# baselines are that H100
H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})


def test_duplex_is_a_registered_kind():
    assert DEVICE_KINDS["duplex"] is DuplexSpec
    assert issubclass(DuplexSpec, DeviceSpec)


def test_logic_pim_has_four_times_the_bandwidth_and_ridge_eight():
    d = load_device("duplex-h100")
    assert isinstance(d, DuplexSpec) and d.kind == "duplex"
    assert d.pim.bandwidth == 4 * d.hbm_bandwidth
    assert d.pim.ridge_op_b == pytest.approx(8.0, rel=0.01)
    assert d.pim.concurrent_with_xpu and d.bank_bundles == 2
    # per-path DRAM energy: the paper's 0.464 vs 0.891 nJ per 32 B
    assert d.pim.energy_pj_per_hbm_byte == pytest.approx(0.464e3 / 32, rel=1e-3)
    assert d.energy_pj_per_hbm_byte == pytest.approx(0.891e3 / 32, rel=1e-3)
    # the xPU is an H100
    assert (d.bf16_flops, d.hbm_bandwidth, d.hbm_bytes) == (H100.bf16_flops, H100.hbm_bandwidth,
                                                             H100.hbm_bytes)


def test_bank_pim_has_sixteen_times_the_bandwidth_at_op_b_one():
    d = load_device("bankpim-h100")
    assert d.pim.bandwidth == 16 * d.hbm_bandwidth
    assert d.pim.ridge_op_b == pytest.approx(1.0, rel=0.01)
    assert not d.pim.concurrent_with_xpu and d.pim.location == "bank"


def test_bankgroup_pim_matches_logic_pim_but_on_the_dram_die():
    bg, lp = load_device("bankgrouppim-h100"), load_device("duplex-h100")
    assert (bg.pim.flops, bg.pim.bandwidth) == (lp.pim.flops, lp.pim.bandwidth)
    assert bg.pim.location == "bank_group" and not bg.pim.concurrent_with_xpu
    assert lp.pim.energy_pj_per_hbm_byte < bg.pim.energy_pj_per_hbm_byte \
        < lp.energy_pj_per_hbm_byte


def test_gpu_baselines():
    gpu, two = load_device("gpu-h100"), load_device("gpu2x-h100")
    assert gpu.pim is None and two.pim is None
    for f in fields(DeviceSpec):
        if f.name not in ("name", "kind", "vendor", "description", "sources"):
            # 27.84 pJ/B (3.48 pJ/bit, unrounded) on every duplex-family xPU path; h100-sxm 27.8
            ours, theirs = getattr(gpu, f.name), getattr(H100, f.name)
            if isinstance(theirs, float):
                assert ours == pytest.approx(theirs, rel=2e-3), f.name
            else:
                assert ours == theirs, f.name
    assert two.bf16_flops == 2 * gpu.bf16_flops and two.hbm_bandwidth == 2 * gpu.hbm_bandwidth
    assert two.hbm_bytes == 2 * gpu.hbm_bytes and two.idle_w == 2 * gpu.idle_w


def test_overrides_reach_the_duplex_section():
    d = load_device("duplex-h100", {"duplex": {"coprocessing": {"experts": True},
                                               "placement": {"policy": "fastest"},
                                               "routing": {"kind": "zipf", "zipf_s": 1.1}}})
    assert d.coprocessing.experts and not d.coprocessing.attention
    assert d.placement.policy == "fastest" and d.routing.zipf_s == 1.1


@pytest.mark.parametrize("name, overrides, field", [
    ("h100-sxm", {"duplex": {}}, "duplex"),
    ("duplex-h100", {"duplex": {"placement": {"policy": "greedy"}}}, "duplex.placement.policy"),
    ("duplex-h100", {"duplex": {"routing": {"kind": "zipf"}}}, "duplex.routing.zipf_s"),
    ("duplex-h100", {"duplex": {"routing": {"probabilities": [1, 2]}}},
     "duplex.routing.probabilities"),
    ("duplex-h100", {"duplex": {"pim": {"fp16_tflops": -1}}}, "duplex.pim.fp16_tflops"),
    ("duplex-h100", {"duplex": {"placement": {"pim_kinds": ["allreduce"]}}},
     "duplex.placement.pim_kinds"),
    ("duplex-h100", {"duplex": {"coprocessing": {"expert": True}}}, "duplex.coprocessing.expert"),
])
def test_bad_duplex_fields_are_named(name, overrides, field):
    with pytest.raises(ScenarioError) as err:
        load_device(name, overrides)
    assert f": {field}:" in str(err.value) or str(err.value).endswith(f": {field}") \
        or f" {field}:" in str(err.value)
