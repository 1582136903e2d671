"""sim.calibration.vidur on a small synthetic file in Vidur's layout (never the real profiles)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.calibration.vidur import import_vidur, read_all_reduce_csv, read_mlp_csv
from sim.errors import HardwareError, ScenarioError
from sim.hardware import load_device

OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
       "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")


def vidur_rows(tokens=(1, 8, 64, 512), tps=(1, 2)) -> pd.DataFrame:
    """Llama-3-8B-like widths; op i takes (i + 1) * tokens microseconds (written in ms)."""
    rows = []
    for tp in tps:
        for t in tokens:
            row = {}
            for i, op in enumerate(OPS):
                ms = (i + 1) * t * 1e-3 * (1 + tp)
                for stat in ("min", "max", "mean", "median", "std"):
                    row[f"time_stats.{op}.{stat}"] = ms if stat != "std" else 0.0
            row.update(n_head=32, n_kv_head=8, n_embd=4096, n_expanded_embd=14336,
                       vocab_size=128256, use_gated_mlp=True, num_tokens=t,
                       num_tensor_parallel_workers=tp)
            rows.append(row)
    return pd.DataFrame(rows)


def write_tree(root: Path, gpu: str = "a100", frame: pd.DataFrame | None = None) -> Path:
    path = root / "compute" / gpu / "meta-llama" / "Meta-Llama-3-8B" / "mlp.csv"
    path.parent.mkdir(parents=True)
    (vidur_rows() if frame is None else frame).to_csv(path, index=False)
    return path


def test_shapes_are_per_shard_and_times_in_seconds(tmp_path):
    gemm, elem = read_mlp_csv(write_tree(tmp_path))
    qkv = gemm[(gemm.k == 4096) & (gemm.m == 64)]
    # TP1: n = (32 + 2*8) * 128; TP2: (16 + 2*4) * 128
    assert set(qkv.n) >= {6144, 3072}
    one = gemm[(gemm.m == 64) & (gemm.k == 4096) & (gemm.n == 6144)]
    assert one.time_s.tolist() == pytest.approx([3 * 64 * 1e-6 * 2])   # attn_pre_proj, TP1
    up = gemm[(gemm.m == 8) & (gemm.k == 4096)]
    assert set(up.n) >= {28672, 14336}            # gated: 2 x 14336 / tp
    down = gemm[(gemm.m == 8) & (gemm.n == 4096)]
    assert set(down.k) >= {14336, 7168, 4096, 2048}   # mlp_down (14336/tp) and o_proj (4096/tp)
    norms = elem[(elem.op == "rmsnorm") & (elem.tokens == 1)]
    assert set(norms.width) == {4096}
    assert set(elem.op) == {"rmsnorm", "rotary", "silu_mul", "add", "embedding"}
    assert set(elem[elem.op == "rotary"].width) == {(32 + 8) * 128, (16 + 4) * 128}


def test_import_writes_a_profile_that_loads_and_predicts(tmp_path):
    write_tree(tmp_path / "vidur")
    net = tmp_path / "vidur" / "network" / "a100_dgx"
    net.mkdir(parents=True)
    pd.DataFrame({"time_stats.all_reduce.median": [0.01, 0.02, 0.5], "num_workers": [2, 2, 2],
                  "size": [1024, 4096, 1024], "devices_per_node": [2, 2, 1],
                  "rank": 0}).to_csv(net / "all_reduce.csv")
    out = tmp_path / "profiles" / "a100-vidur.yaml"
    built = import_vidur(tmp_path / "vidur", out, network=net)
    device = load_device(str(out))
    assert device.name == "a100-vidur" and device.bf16_flops == 312e12   # a100-80g-sxm numbers
    cal = device.calibration
    assert cal is not None and cal.dtype_bytes == 2
    assert (out.parent / "a100-vidur" / "gemm.parquet").is_file()
    assert set(cal.mape) == {"gemm", "elementwise", "allreduce"}
    assert built.rows["allreduce"] == 2           # the cross-node row (1 device per node) is out
    assert cal.tables.allreduce.time_s.tolist() == pytest.approx([1e-5, 2e-5])


def test_errors_name_file_and_column(tmp_path):
    frame = vidur_rows().drop(columns=["n_kv_head"])
    path = write_tree(tmp_path, frame=frame)
    with pytest.raises(ScenarioError, match=r"mlp\.csv: n_kv_head: .*missing"):
        read_mlp_csv(path)
    frame = vidur_rows()
    frame.loc[2, "num_tokens"] = -4
    path = write_tree(tmp_path / "b", frame=frame)
    with pytest.raises(ScenarioError, match=r"mlp\.csv: num_tokens: expected integers > 0, got "
                                            r"-4 \(row 2\)"):
        read_mlp_csv(path)
    frame = vidur_rows()
    frame["time_stats.add.median"] = 0.0
    path = write_tree(tmp_path / "c", frame=frame)
    with pytest.raises(ScenarioError, match=r"time_stats.<op>.median: expected milliseconds > 0"):
        read_mlp_csv(path)
    bad = tmp_path / "all_reduce.csv"
    pd.DataFrame({"size": [1]}).to_csv(bad)
    with pytest.raises(ScenarioError, match=r"all_reduce\.csv: num_workers"):
        read_all_reduce_csv(bad)


def test_several_gpus_need_a_choice_and_unknown_gpus_a_base(tmp_path):
    write_tree(tmp_path, "a100")
    write_tree(tmp_path, "a40")
    with pytest.raises(HardwareError, match=r"several GPUs \(a100, a40\); choose one with --gpu"):
        import_vidur(tmp_path, tmp_path / "x.yaml")
    with pytest.raises(HardwareError, match="no datasheet profile known for GPU 'a40'"):
        import_vidur(tmp_path, tmp_path / "x.yaml", gpu="a40")
    with pytest.raises(HardwareError, match="no Vidur mlp.csv"):
        import_vidur(tmp_path / "compute" / "a100", tmp_path / "x.yaml", gpu="h100")
