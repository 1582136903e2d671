"""Hardware profiles: every shipped YAML loads, units convert, overrides and errors behave."""

from __future__ import annotations

import os

import pytest

from sim.errors import HardwareError, ScenarioError
from sim.hardware import (DEVICE_KINDS, PROFILE_DIR, DeviceSpec, Efficiency, list_devices,
                          load_device)

EXPECTED = {"a100-40g-sxm", "a100-80g-sxm", "h100-sxm", "h100-pcie", "h200-sxm", "b200", "l40s",
            "l4", "rtx-4090", "rtx-pro-6000", "mi300x"}


def test_list_devices_is_sorted_and_complete():
    names = list_devices()
    assert names == sorted(names)
    assert EXPECTED <= set(names)
    assert DEVICE_KINDS["gpu"] is DeviceSpec


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_profile_loads_with_sane_numbers(name):
    d = load_device(name)
    assert isinstance(d, DeviceSpec)
    assert d.name == name
    assert d.kind in DEVICE_KINDS
    assert d.price_usd_per_hour > 0
    assert d.tdp_w > d.idle_w > 0
    for frac in (d.efficiency.compute, d.efficiency.memory, d.efficiency.interconnect):
        assert 0 < frac <= 1
    # Magnitudes (catches a TFLOP/s written as FLOP/s, or GB written as TB): 10 TF-10 PF,
    # 10-300 GiB, 100 GB/s-20 TB/s.
    assert 1e13 < d.bf16_flops < 1e16
    assert 10 * 2**30 <= d.hbm_bytes <= 300 * 2**30
    assert 1e11 <= d.hbm_bandwidth <= 2e13
    assert d.fp8_flops >= d.bf16_flops == d.fp16_flops > d.fp32_flops
    assert d.interconnect_bandwidth >= d.pcie_bandwidth > 0
    assert d.sources and d.description


def test_h100_sxm_units_convert():
    d = load_device("h100-sxm")
    assert d.bf16_flops == 989.4e12
    assert d.fp8_flops == 1978.9e12
    assert d.hbm_bandwidth == 3.352e12
    assert d.hbm_bytes == 80 * 2**30
    assert d.interconnect_bandwidth == 450e9
    assert d.interconnect_latency_s == pytest.approx(1e-6)
    assert d.pcie_bandwidth == 64e9
    assert d.tdp_w == 700
    assert d.efficiency == Efficiency(compute=0.70, memory=0.85, interconnect=0.80,
                                      kernel_launch_s=2e-6, iteration_overhead_s=4e-4)


@pytest.mark.parametrize("name", ["h100-sxm", "h200-sxm", "h100-pcie", "b200", "l40s", "l4",
                                  "mi300x", "rtx-4090", "rtx-pro-6000"])
def test_dense_fp8_is_twice_bf16(name):
    # Datasheets quote sparse numbers (2x dense); halving both keeps fp8 = 2 x bf16. A profile that
    # halved one and not the other would break this.
    d = load_device(name)
    assert d.fp8_flops == pytest.approx(2 * d.bf16_flops, rel=0.02)


def test_h100_dense_not_sparse():
    assert load_device("h100-sxm").bf16_flops < 1.5e15   # the sparse figure is 1979 TFLOP/s


def test_overrides_merge_deeply():
    base = load_device("h100-sxm")
    d = load_device("h100-sxm", {"efficiency": {"memory": 0.9}, "price": {"usd_per_hour": 2.5}})
    assert d.efficiency.memory == 0.9
    assert d.efficiency.compute == base.efficiency.compute
    assert d.price_usd_per_hour == 2.5
    assert d.hbm_bandwidth == base.hbm_bandwidth
    assert load_device("h100-sxm") == base           # the cached profile is untouched


def test_override_converts_units():
    d = load_device("h100-pcie", {"interconnect": {"bandwidth_gb_s": 300, "latency_us": 1.0}})
    assert d.interconnect_bandwidth == 300e9
    assert d.interconnect_latency_s == pytest.approx(1e-6)


def test_bad_override_key_names_field_with_did_you_mean():
    with pytest.raises(ScenarioError) as info:
        load_device("h100-sxm", {"efficiency": {"memroy": 0.9}})
    message = str(info.value)
    assert "h100-sxm.yaml" in message
    assert "efficiency.memroy" in message
    assert "did you mean 'memory'?" in message


def test_bad_override_value_names_field():
    with pytest.raises(ScenarioError) as info:
        load_device("h100-sxm", {"efficiency": {"memory": 1.5}})
    assert info.value.field == "efficiency.memory"
    assert "(0, 1]" in str(info.value)


def test_unknown_name_did_you_mean():
    with pytest.raises(HardwareError, match=r"unknown hardware 'h100'; did you mean 'h100-sxm'\?"):
        load_device("h100")


def test_unknown_name_far_from_all_lists_valid_names():
    with pytest.raises(HardwareError) as info:
        load_device("tpu-v5e-xyz")
    assert "h100-sxm" in str(info.value) and "mi300x" in str(info.value)


def test_missing_path_is_a_hardware_error(tmp_path):
    with pytest.raises(HardwareError, match="not found"):
        load_device(str(tmp_path / "nope.yaml"))


def _profile_text(**replace: str) -> str:
    text = (PROFILE_DIR / "h100-sxm.yaml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_yaml_path_works_absolute_and_relative_to_base_dir(tmp_path):
    (tmp_path / "mine.yaml").write_text(_profile_text(**{"name: h100-sxm": "name: my-gpu"}))
    d = load_device(str(tmp_path / "mine.yaml"))
    assert d.name == "my-gpu"
    assert d.bf16_flops == 989.4e12
    assert load_device("mine.yaml", base_dir=tmp_path) == d


def test_edited_file_is_reread(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(_profile_text())
    assert load_device(str(path)).tdp_w == 700
    path.write_text(_profile_text(**{"tdp_w: 700": "tdp_w: 650"}))
    os.utime(path, ns=(1, 10**18))      # a distinct mtime even on coarse-grained filesystems
    assert load_device(str(path)).tdp_w == 650


def test_wrong_type_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(_profile_text(**{"bandwidth_gb_s: 3352": "bandwidth_gb_s: fast"}))
    with pytest.raises(ScenarioError) as info:
        load_device(str(path))
    assert info.value.path == str(path.resolve())
    assert info.value.field == "memory.bandwidth_gb_s"
    assert "bad.yaml" in str(info.value) and "memory.bandwidth_gb_s" in str(info.value)


def test_unknown_kind_is_rejected(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(_profile_text(**{"kind: gpu": "kind: gpus"}))
    with pytest.raises(ScenarioError) as info:
        load_device(str(path))
    assert info.value.field == "kind"


def test_idle_above_tdp_is_rejected(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(_profile_text(**{"idle_w: 70": "idle_w: 800"}))
    with pytest.raises(ScenarioError) as info:
        load_device(str(path))
    assert info.value.field == "power.idle_w"


def test_missing_section_is_named(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nkind: gpu\nvendor: nvidia\n")
    with pytest.raises(ScenarioError) as info:
        load_device(str(path))
    assert "m.yaml" in str(info.value) and info.value.field in {
        "compute", "memory", "interconnect", "pcie", "power", "energy", "price"}


def test_malformed_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\nkind: gpu\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml.*malformed YAML"):
        load_device(str(path))
