"""Small synthetic calibrations: tables drawn from a known law (shared by the tests here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.cost.ops import LayerDims
from sim.cost.table_costs import row_costs
from sim.hardware.calibration import tables as tbl
from sim.models import CATALOG

LLAMA = CATALOG["llama-3.1-8b"]
PEAK, BW = 312e12, 2039e9          # a100-80g-sxm datasheet
TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def law(flops, nbytes, compute=0.6, memory=0.7, fixed_s=5e-6):
    """The synthetic 'measurement': a roofline at fixed efficiencies plus a fixed cost."""
    return np.maximum(flops / (PEAK * compute), nbytes / (BW * memory)) + fixed_s


def llama_tables(tokens=TOKENS, with_attention=True) -> tbl.Tables:
    """Llama-3.1-8B TP1 shapes: every GEMM and elementwise op the cost model asks about."""
    d = LayerDims.of(LLAMA, 1)
    m = np.array(tokens, dtype=np.int64)
    gemm = pd.concat(pd.DataFrame({"m": m, "k": k, "n": n}) for k, n in (
        (d.hidden, d.q_width + 2 * d.kv_width), (d.q_width, d.hidden),
        (d.hidden, 2 * d.mlp_width), (d.mlp_width, d.hidden), (d.hidden, d.vocab)))
    gemm["time_s"] = law(*row_costs("gemm", gemm, 2))
    elem = pd.concat(pd.DataFrame({"op": op, "tokens": m, "width": w}) for op, w in (
        ("rmsnorm", d.hidden), ("add", d.hidden), ("embedding", d.hidden),
        ("rotary", d.q_width + d.kv_width), ("silu_mul", d.mlp_width)))
    elem["time_s"] = law(*row_costs("elementwise", elem, 2), memory=0.5)
    attention = None
    if with_attention:
        rows = [("attn_prefill", 1, s, s, 32, 8, 128) for s in (128, 512, 2048)]
        rows += [("attn_decode", b, 1, c, 32, 8, 128) for b in (1, 16, 64) for c in (512, 4096)]
        attention = pd.DataFrame(rows, columns=list(tbl.SCHEMAS["attention"]))
        attention["time_s"] = law(*row_costs("attention", attention, 2), compute=0.4,
                                  memory=0.6, fixed_s=8e-6)
    allreduce = pd.DataFrame({"devices": 2, "bytes": 2 ** np.arange(12, 26, 2)})
    allreduce["time_s"] = 1e-5 + allreduce["bytes"] / 150e9
    return tbl.Tables.of(gemm=gemm, elementwise=elem, attention=attention, allreduce=allreduce)
