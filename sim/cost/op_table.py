"""The roofline table of one iteration: per op FLOPs, bytes, Op/B, processor, time and share.

What ``llmsim ops`` prints (LLM-Viewer-style). FLOPs and bytes are per device and per execution
(one layer's op); ``count`` is the executions per iteration; ``time_s`` covers all executions;
``share`` is ``time_s`` over the iteration's duration. On a Duplex device, overlapped work (the
co-processed attention stage) appears as an ``attn_overlap`` row with the time it saves
(negative), so the shares add up to one.
"""

from __future__ import annotations

import pandas as pd

from sim.cost.model import BatchShape, CostModel

COLUMNS = ("op", "kind", "count", "flops", "bytes", "op_b", "processor", "time_s", "share")


def batch_shape(batch: int, context_tokens: int, prefill_tokens: int = 0) -> BatchShape:
    """``batch`` decoding requests with ``context_tokens`` cached each, plus optionally one
    request prefilling ``prefill_tokens`` new tokens (its whole prompt: it emits a token)."""
    new = [1] * batch + ([prefill_tokens] if prefill_tokens else [])
    cached = [context_tokens] * batch + ([0] if prefill_tokens else [])
    return BatchShape.from_requests(new, cached, len(new))


def op_table(cost: CostModel, shape: BatchShape) -> pd.DataFrame:
    time_s, _ = cost.iteration_time(shape)
    rows = []

    def add(op, processor: str, seconds: float) -> None:
        rows.append({"op": op.name, "kind": op.kind, "count": op.count, "flops": op.flops,
                     "bytes": op.bytes, "op_b": op.intensity if op.bytes else float("nan"),
                     "processor": processor, "time_s": seconds})

    placed = getattr(cost, "placed_ops", None)
    if placed is not None:                      # DuplexCostModel: ops know their processor
        for p in placed(shape):
            add(p.op, p.processor, p.seconds)
    else:
        processor = cost.device.kind
        ops = cost.token_ops(shape.num_tokens, shape.num_seqs_emitting) + \
            cost.attention_ops(shape)
        for op in ops:
            add(op, processor, cost.op_seconds_in(op, shape))
    rows.append({"op": "iteration_overhead", "kind": "overhead", "count": 1, "flops": 0.0,
                 "bytes": 0.0, "op_b": float("nan"), "processor": "host",
                 "time_s": cost.device.efficiency.iteration_overhead_s})
    frame = pd.DataFrame(rows, columns=COLUMNS[:-1])
    frame["share"] = frame["time_s"] / time_s
    return frame


# -- the ``llmsim ops`` command ------------------------------------------------------------------
def parse_overrides(items: list[str]) -> dict:
    """``["duplex.placement.policy=fastest"]`` -> ``{"duplex": {"placement": {...}}}`` (values
    read as YAML, so numbers, booleans and lists keep their types)."""
    import yaml

    from sim.errors import HardwareError

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HardwareError(f"--set {item!r}: expected KEY=VALUE, e.g. "
                                "duplex.placement.policy=fastest")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def run_ops(model_name: str, hardware: str, batch: int, context: int, prefill: int, tp: int,
            overrides: list[str]) -> tuple[pd.DataFrame, str]:
    """The op table for the CLI and its title; bad input raises an LlmsimError."""
    from sim.cost.factory import make_cost_model
    from sim.errors import HardwareError
    from sim.hardware import load_device
    from sim.models import get_model

    for flag, value, low in (("--batch", batch, 0), ("--context", context, 0),
                             ("--prefill", prefill, 0), ("--tp", tp, 1)):
        if value < low:
            raise HardwareError(f"{flag}: expected an integer >= {low}, got {value}")
    if batch == 0 and prefill == 0:
        raise HardwareError("--batch 0 needs --prefill > 0: the iteration would be empty")
    model = get_model(model_name)
    device = load_device(hardware, parse_overrides(overrides) or None)
    if model.num_heads % tp:
        raise HardwareError(f"--tp: expected a divisor of {model.name}'s {model.num_heads} "
                            f"attention heads, got {tp}")
    cost = make_cost_model(model, device, tp)     # measured vLLM tables where the profile has them
    shape = batch_shape(batch, context, prefill)
    frame = op_table(cost, shape)
    it = cost.iteration(shape)
    busy = ", ".join(f"{k} busy {v * 1e3:.3f} ms" for k, v in it.busy_s.items())
    title = (f"{model.name} on {tp} x {device.name}: batch {batch} at context {context}"
             + (f" + prefill {prefill}" if prefill else "")
             + f"; iteration {it.time_s * 1e3:.3f} ms, {it.energy_j:.3f} J ({busy})")
    return frame, title


def op_rich_table(frame: pd.DataFrame, title: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("op", "left"), ("kind", "left"), ("x", "right"),
                         ("GFLOP", "right"), ("MB", "right"), ("Op/B", "right"),
                         ("on", "left"), ("ms", "right"), ("share", "right")):
        table.add_column(col, justify=justify, no_wrap=col in ("op", "on"))
    for r in frame.itertuples(index=False):
        op_b = "-" if r.op_b != r.op_b else f"{r.op_b:.1f}"    # NaN: no bytes
        table.add_row(r.op, r.kind, str(r.count), f"{r.flops / 1e9:.3f}", f"{r.bytes / 1e6:.3f}",
                      op_b, r.processor, f"{r.time_s * 1e3:.3f}", f"{r.share:.1%}")
    return table
