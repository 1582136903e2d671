"""``llmsim ops``: the roofline table of one iteration, on a GPU and on a Duplex device."""

from __future__ import annotations

import pandas as pd
import pytest

from sim.cli import main


def test_duplex_table_with_csv(tmp_path, capsys):
    out = tmp_path / "ops.csv"
    assert main(["ops", "mixtral-8x7b", "--hardware", "duplex-h100", "--batch", "32",
                 "--context", "1000", "--tp", "4", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mixtral-8x7b on 4 x duplex-h100" in printed and "moe_experts" in printed
    frame = pd.read_csv(out).set_index("op")
    assert list(frame.columns) == ["kind", "count", "flops", "bytes", "op_b", "processor",
                                   "time_s", "share"]
    assert frame.loc["attn_decode", "processor"] == "pim"
    assert frame.loc["moe_experts", "processor"] == "pim"
    assert frame.loc["qkv_proj", "processor"] == "xpu"
    assert frame.loc["attn_decode", "op_b"] == pytest.approx(4.0, rel=0.03)   # GQA group 4
    assert frame["share"].sum() == pytest.approx(1.0)


def test_prefill_and_overrides(tmp_path):
    out = tmp_path / "ops.csv"
    assert main(["ops", "mixtral-8x7b", "--hardware", "duplex-h100", "--batch", "16",
                 "--context", "2000", "--prefill", "512", "--tp", "2",
                 "--set", "duplex.coprocessing.attention=true", "--csv", str(out)]) == 0
    frame = pd.read_csv(out).set_index("op")
    assert frame.loc["attn_prefill", "processor"] == "xpu"
    assert frame.loc["moe_experts", "processor"] == "xpu"     # iteration with a prefill
    assert "attn_overlap" in frame.index
    assert frame["share"].sum() == pytest.approx(1.0)


def test_gpu_table(tmp_path):
    out = tmp_path / "ops.csv"
    assert main(["ops", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "8", "--context",
                 "512", "--csv", str(out)]) == 0
    frame = pd.read_csv(out)
    assert set(frame["processor"]) == {"gpu", "host"}
    assert frame["share"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("args, words", [
    (["--tp", "3"], "--tp"),
    (["--set", "duplex.placement.policy=greedy"], "duplex.placement.policy"),
    (["--set", "nonsense"], "KEY=VALUE"),
    (["--batch", "-1"], "--batch"),
])
def test_bad_input_is_one_line(args, words, capsys):
    base = ["ops", "mixtral-8x7b", "--hardware", "duplex-h100", "--batch", "8", "--context", "64"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
