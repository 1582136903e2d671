"""The ``calibration:`` profile section: loading, hashing, ``hardware show``, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware import load_device


def edit(profile: Path, change) -> Path:
    data = yaml.safe_load(profile.read_text())
    change(data)
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    return profile


def test_loads_into_a_hashable_device_spec(synthetic_profile):
    device = load_device(str(synthetic_profile))
    plain = load_device("a100-80g-sxm", {"efficiency": {"model": "fixed"}})
    cal = device.calibration
    assert cal is not None and plain.calibration is None
    assert cal.tables.rows()["gemm"] == 5 * 13
    assert set(cal.curves) >= {"gemm", "elementwise", "attn_prefill", "attn_decode"}
    assert set(cal.mape) >= {"gemm", "elementwise", "allreduce"}
    assert hash(device) == hash(load_device(str(synthetic_profile)))
    assert device != plain and {device: 1}[device] == 1
    # overrides keep the calibration (tables are found relative to the YAML)
    faster = load_device(str(synthetic_profile), {"efficiency": {"memory": 0.9}})
    assert faster.calibration == cal and faster.efficiency.memory == 0.9


def test_hardware_show_json_and_table(synthetic_profile, capsys):
    assert main(["hardware", "show", str(synthetic_profile), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "a100-synth"
    mape = shown["calibration"]["mape"]
    assert 0 <= mape["gemm"] < 0.05 and 0 <= mape["elementwise"] < 0.05
    assert main(["hardware", "show", str(synthetic_profile)]) == 0
    out = capsys.readouterr().out
    assert "held-out MAPE" in out and "gemm" in out
    assert main(["hardware", "show", "h100-sxm", "--json"]) == 0
    # a datasheet profile carries the learned curves (efficiency.model: learned), no tables
    learned = json.loads(capsys.readouterr().out)["calibration"]
    assert learned["source"] == "learned efficiency curves" and learned["tables"] == {}
    assert "gemm" in learned["curves"]
    assert main(["hardware", "--json"]) == 0          # the listing is unchanged
    assert {d["name"] for d in json.loads(capsys.readouterr().out)} >= {"h100-sxm"}


def _error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load_device(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_table_names_the_yaml_and_field(synthetic_profile):
    (synthetic_profile.parent / "a100-synth" / "gemm.parquet").unlink()
    message = _error(synthetic_profile)
    assert message.startswith(str(synthetic_profile)) or "a100-synth.yaml" in message
    assert "calibration.tables.gemm: expected an existing Parquet file" in message


def test_table_missing_a_column_names_the_parquet_and_column(synthetic_profile):
    path = synthetic_profile.parent / "a100-synth" / "gemm.parquet"
    pd.read_parquet(path).drop(columns=["k"]).to_parquet(path)
    message = _error(synthetic_profile)
    assert "gemm.parquet: k: expected a column of the gemm table (missing; found m, n, time_s)" \
        in message


def test_bad_table_value_names_column_and_row(synthetic_profile):
    path = synthetic_profile.parent / "a100-synth" / "elementwise.parquet"
    frame = pd.read_parquet(path)
    frame.loc[3, "time_s"] = -1.0
    frame.to_parquet(path)
    assert "elementwise.parquet: time_s: expected seconds > 0, got -1.0 (row 3)" \
        in _error(synthetic_profile)
    frame.loc[3, "time_s"] = 1e-5
    frame.loc[4, "op"] = "layernorm"
    frame.to_parquet(path)
    assert "elementwise.parquet: op: expected one of rmsnorm" in _error(synthetic_profile)


def test_not_parquet_is_one_line(synthetic_profile):
    (synthetic_profile.parent / "a100-synth" / "gemm.parquet").write_text("m,k,n\n1,2,3\n")
    assert "gemm.parquet: cannot read the gemm table as Parquet" in _error(synthetic_profile)


@pytest.mark.parametrize("change, words", [
    (lambda d: d["calibration"]["curves"]["gemm"].update(compute_fraction=1.5),
     "calibration.curves.gemm.compute_fraction: expected a fraction in (0, 1], got 1.5"),
    (lambda d: d["calibration"]["curves"]["gemm"].update(memory_half=1.0),
     "calibration.curves.gemm.memory_half: unknown key; did you mean 'memory_half_bytes'?"),
    (lambda d: d["calibration"].update(dtype="int4"),
     "calibration.dtype: expected one of bf16, fp16, fp32, fp8, got 'int4'"),
    (lambda d: d["calibration"]["tables"].update(gemm="gemm.csv"),
     "calibration.tables.gemm: expected a path to a .parquet file or null, got 'gemm.csv'"),
    (lambda d: d["calibration"]["mape"].update(gemm=-0.1),
     "calibration.mape.gemm: expected a fraction >= 0, got -0.1"),
    (lambda d: d["calibration"].update(tabels={}),
     "calibration.tabels: unknown key; did you mean 'tables'?"),
])
def test_bad_section_values_name_the_field(synthetic_profile, change, words):
    assert words in _error(edit(synthetic_profile, change))


def test_cli_prints_one_line(synthetic_profile, capsys):
    (synthetic_profile.parent / "a100-synth" / "attention.parquet").unlink()
    assert main(["hardware", "show", str(synthetic_profile)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "calibration.tables.attention" in err
    assert "Traceback" not in err
