"""What ``llmsim calibrate`` measures: shapes from catalog models per TP shard plus generic grids.

Every shape is what :class:`~sim.cost.model.CostModel` asks about for that model and tensor
parallel degree (``LayerDims.of(model, tp)``), so a simulation of a calibrated model interpolates
along a measured curve instead of falling back to the fitted roofline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.cost.ops import LayerDims, mlp_gemm_shapes
from sim.models.spec import ModelSpec

# Token counts (GEMM m, elementwise rows): log-spaced 1..16k, two or three points per octave
# above 32 so interpolation segments stay short where cuBLAS switches tiles.
FULL_TOKENS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536,
               2048, 3072, 4096, 6144, 8192, 12288, 16384)
QUICK_TOKENS = (1, 4, 16, 64, 256, 1024, 4096)
CPU_QUICK_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LM_HEAD_MAX_TOKENS = 1024          # logits are computed for sampling sequences only
DEFAULT_MODELS = ("llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "mixtral-8x7b")
QUICK_MODELS = ("llama-3.1-8b",)
GENERIC_WIDTHS = (1024, 4096, 8192, 16384)
CPU_GENERIC = ((256, 256), (256, 1024), (1024, 256))


@dataclass(frozen=True)
class Plan:
    """Everything to measure. Attention tuples: (batch, query_tokens, context_tokens, heads,
    kv_heads, head_dim); prefill has query_tokens == context_tokens (a whole prompt)."""

    tokens: tuple[int, ...]
    gemm: tuple[tuple[int, int, int], ...]           # (k, n, max m)
    elementwise: tuple[tuple[str, int], ...]         # (op, width)
    attention: tuple[tuple[str, int, int, int, int, int, int], ...]
    copy_mib: tuple[int, ...]
    allreduce_bytes: tuple[int, ...] = ()
    warmup: int = 3
    repeats: int = 20
    point_s: float = 0.2       # stop repeating a point after about this long
    budget_s: float = 420.0    # the whole run; later points are skipped past it (logged)

    @property
    def points(self) -> int:
        g = sum(sum(1 for t in self.tokens if t <= m) for _, _, m in self.gemm)
        return g + len(self.elementwise) * len(self.tokens) + len(self.attention) \
            + len(self.copy_mib)


def model_shapes(model: ModelSpec, tp: int) -> tuple[list[tuple[int, int, int]],
                                                     list[tuple[str, int]], tuple[int, int, int]]:
    """(GEMM (k, n, max m), elementwise (op, width), (heads, kv_heads, head_dim)) of one shard."""
    d = LayerDims.of(model, tp)
    big = max(FULL_TOKENS)

    def mlp(width: int) -> list[tuple[int, int, int]]:
        return [(k, n, big) for k, n in mlp_gemm_shapes(d.hidden, width, d.gated)]

    gemm = [(d.hidden, d.q_width + 2 * d.kv_width, big), (d.q_width, d.hidden, big),
            (d.hidden, d.vocab, LM_HEAD_MAX_TOKENS)]
    if model.num_dense_layers:
        gemm += mlp(d.mlp_width)
    if model.num_moe_layers:
        # experts see tokens * top_k / experts each: their m stays small
        gemm += mlp(d.expert_width) + [(d.hidden, model.num_experts, big)]
        if d.shared_expert_width:
            gemm += mlp(d.shared_expert_width)
    act = "silu_mul" if d.gated else "gelu"
    widths = {d.mlp_width, d.expert_width, d.shared_expert_width} - {0}
    elem = [("rmsnorm", d.hidden), ("add", d.hidden), ("embedding", d.hidden),
            ("rotary", d.q_width + d.kv_width)] + [(act, w) for w in sorted(widths)]
    return gemm, elem, (d.heads, d.kv_width // d.head_dim, d.head_dim)


def make_plan(models: list[ModelSpec], quick: bool, device: str) -> Plan:
    """The grid for ``llmsim calibrate``: full (a GPU, <= 8 minutes), quick, or CPU quick."""
    cpu = device == "cpu"
    tps = (1,) if quick else (1, 2, 4, 8)
    gemm: dict[tuple[int, int], int] = {}
    elem: set[tuple[str, int]] = set()
    heads: set[tuple[int, int, int]] = set()
    for model in models:
        for tp in tps:
            if model.num_heads % tp:
                continue
            g, e, h = model_shapes(model, tp)
            for k, n, m in g:
                gemm[(k, n)] = max(gemm.get((k, n), 0), m)
            elem.update(e)
            heads.add(h)
    if cpu:     # a CPU is ~100x slower than a GPU: small generic shapes only
        generic = CPU_GENERIC if quick else tuple((k, n) for k in (1024, 4096)
                                                  for n in (1024, 4096))
        tokens = CPU_QUICK_TOKENS if quick else QUICK_TOKENS[:-1]
        elem.update((op, 1024) for op in ("rmsnorm", "silu_mul", "rotary", "add", "embedding"))
        heads.add((8, 2, 64))
    else:
        generic = tuple((k, n) for k in GENERIC_WIDTHS for n in GENERIC_WIDTHS)
        tokens = QUICK_TOKENS if quick else FULL_TOKENS
    for k, n in generic:
        gemm.setdefault((k, n), max(tokens))
    attention = _attention_grid(sorted(heads), quick, cpu)
    copy_mib = (1, 8, 32) if cpu else ((4, 64, 1024) if quick else (1, 4, 16, 64, 256, 1024))
    return Plan(tokens=tokens, gemm=tuple((k, n, m) for (k, n), m in sorted(gemm.items())),
                elementwise=tuple(sorted(elem)), attention=attention, copy_mib=copy_mib,
                allreduce_bytes=() if cpu else tuple(2 ** e for e in range(12, 29, 2)),
                warmup=1 if cpu else 3, repeats=5 if cpu else 20,
                point_s=0.05 if cpu else 0.2,
                budget_s=(40.0 if quick else 600.0) if cpu else 420.0)


def _attention_grid(heads: list[tuple[int, int, int]], quick: bool, cpu: bool):
    if cpu:
        prefill, decode = ((1, 64), (1, 256)), ((1, 256), (4, 256))
    elif quick:
        prefill, decode = ((1, 512), (1, 4096)), ((1, 1024), (32, 1024), (128, 4096))
    else:
        prefill = tuple((b, s) for b in (1, 4) for s in (128, 512, 1024, 2048, 4096, 8192)
                        if b * s <= 16384)
        decode = tuple((b, c) for b in (1, 8, 32, 128, 256) for c in (256, 1024, 4096, 16384)
                       if b * c <= 2 ** 20)
    rows = []
    for h, kv, d in heads:
        rows += [("attn_prefill", b, s, s, h, kv, d) for b, s in prefill]
        rows += [("attn_decode", b, 1, c, h, kv, d) for b, c in decode]
    return tuple(rows)


def shrink(plan: Plan, **changes) -> Plan:
    """A copy of ``plan`` with fields replaced (tests use a tiny grid)."""
    return replace(plan, **changes)
