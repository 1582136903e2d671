"""Torch micro-benchmarks of the operators the cost model uses -> the four calibration tables.

How one point is timed (:meth:`Bench.time_s`): inputs are random normals (not zeros: some GPUs
draw less power and clock higher on zeros), ``warmup`` untimed calls, then up to ``repeats``
timed calls, fewer if a point would take longer than ``point_s``; the median is kept. On CUDA
each call is bracketed by CUDA events and preceded by zeroing a 256 MiB buffer, so weights are
read from HBM as in serving rather than from L2 left warm by the previous repeat. On CPU,
``time.perf_counter`` around the (synchronous) call.

Kernels are PyTorch eager ones: ``linear`` (cuBLAS / oneDNN, weights ``[n, k]``);
``scaled_dot_product_attention`` (flash / memory-efficient backends; GQA natively via
``enable_gqa``, else K/V repeated before timing); ``rms_norm``; SiLU-and-mul and rotary as the
two or three eager kernels they are (vLLM fuses them, so these are upper bounds for a fused
kernel). Decode attention reads a
contiguous ``[batch, kv_heads, context, head_dim]`` cache (not vLLM's paged layout, whose
gather costs a little more at small blocks); the cost model's bytes are the same either way.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import pandas as pd

from sim.calibration.plan import Plan
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.schema import DTYPE_BYTES

Log = Callable[[str], None]
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_EMBEDDING_VOCAB = 32768


class Bench:
    """Times kernels on one device; one instance per calibration run."""

    def __init__(self, device: str, dtype: str, plan: Plan, log: Log = lambda s: None):
        import torch

        if dtype not in _TORCH_DTYPES:
            from sim.errors import HardwareError
            raise HardwareError(f"--dtype {dtype}: expected one of {', '.join(_TORCH_DTYPES)}")
        self.torch, self.plan, self.log = torch, plan, log
        self.cuda = device == "cuda"
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.dtype = getattr(torch, _TORCH_DTYPES[dtype])
        self.dtype_bytes = DTYPE_BYTES[dtype]
        self.skipped = 0
        self._deadline = time.monotonic() + plan.budget_s
        self._flush = torch.empty(256 * 2**20, dtype=torch.uint8, device=self.device) \
            if self.cuda else None
        self._mem_limit = (0.4 * torch.cuda.mem_get_info()[0]) if self.cuda else 2e9

    # -- timing ------------------------------------------------------------------------------
    def time_s(self, fn: Callable[[], object]) -> float | None:
        """Median seconds of ``fn``; None once the run's budget is spent."""
        if time.monotonic() > self._deadline:
            self.skipped += 1
            return None
        try:
            for _ in range(self.plan.warmup):
                fn()
            if self.cuda:
                return self._time_cuda(fn)
        except self.torch.cuda.OutOfMemoryError:
            # e.g. an attention backend that materialises the score matrix: skip the point
            self.torch.cuda.empty_cache()
            self.skipped += 1
            self.log("out of memory: point skipped")
            return None
        times = []
        spent = 0.0
        while len(times) < self.plan.repeats and (len(times) < 3 or spent < self.plan.point_s):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
            spent += times[-1]
        return statistics.median(times)

    def _time_cuda(self, fn) -> float:
        torch = self.torch
        torch.cuda.synchronize()
        events = []
        spent_s, first = 0.0, None
        for i in range(self.plan.repeats):
            self._flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events.append((start, end))
            if i == 0:     # size the repeats from the first one
                torch.cuda.synchronize()
                first = start.elapsed_time(end) / 1e3
            spent_s += first
            if i >= 2 and spent_s > self.plan.point_s:
                break
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) / 1e3 for s, e in events)

    def _randn(self, *shape):
        return self.torch.randn(*shape, dtype=self.dtype, device=self.device)

    def _fits(self, elements: float) -> bool:
        return elements * self.dtype_bytes <= self._mem_limit

    # -- tables ------------------------------------------------------------------------------
    def gemm(self) -> pd.DataFrame:
        rows = []
        for k, n, max_m in self.plan.gemm:
            ms = [m for m in self.plan.tokens if m <= max_m and self._fits(m * k + k * n + m * n)]
            if not ms:
                continue
            # weights stored [n, k] and applied as x @ W^T, as torch.nn.Linear (and vLLM) do:
            # the cuBLAS layout, and so the kernel choice, is the one serving uses
            a, w = self._randn(max(ms), k), self._randn(n, k)
            linear = self.torch.nn.functional.linear
            for m in ms:
                t = self.time_s(lambda: linear(a[:m], w))
                if t is not None:
                    rows.append((m, k, n, t))
            del a, w
            self.log(f"gemm k={k} n={n}: {len(ms)} sizes")
        return pd.DataFrame(rows, columns=["m", "k", "n", "time_s"])

    def elementwise(self) -> pd.DataFrame:
        rows = []
        for op, width in self.plan.elementwise:
            for tokens in self.plan.tokens:
                if not self._fits(4 * tokens * width):
                    continue
                t = self.time_s(self._elementwise_fn(op, tokens, width))
                if t is not None:
                    rows.append((op, tokens, width, t))
        for mib in self.plan.copy_mib:      # device memory copy: bandwidth
            width = 4096
            tokens = max(1, mib * 2**20 // (width * self.dtype_bytes))
            src, dst = self._randn(tokens, width), self._randn(tokens, width)
            t = self.time_s(lambda: dst.copy_(src))
            if t is not None:
                rows.append(("copy", tokens, width, t))
                self.log(f"copy {mib} MiB: {2 * mib * 2**20 / t / 1e9:.0f} GB/s")
        return pd.DataFrame(rows, columns=["op", "tokens", "width", "time_s"])

    def _elementwise_fn(self, op: str, tokens: int, width: int) -> Callable[[], object]:
        torch, F = self.torch, self.torch.nn.functional
        if op == "rmsnorm":
            x, weight = self._randn(tokens, width), self._randn(width)
            if hasattr(F, "rms_norm"):
                return lambda: F.rms_norm(x, (width,), weight, 1e-6)
            return lambda: x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6) \
                .to(x.dtype) * weight
        if op == "silu_mul":
            x = self._randn(tokens, 2 * width)
            return lambda: F.silu(x[:, :width]) * x[:, width:]
        if op == "gelu":
            x = self._randn(tokens, width)
            return lambda: F.gelu(x)
        if op == "rotary":
            head_dim = 128 if width % 128 == 0 else 64
            x = self._randn(tokens, width // head_dim, head_dim)
            cos, sin = self._randn(tokens, 1, head_dim), self._randn(tokens, 1, head_dim)
            half = head_dim // 2

            def rotary():
                rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
                return x * cos + rotated * sin
            return rotary
        if op == "add":
            a, b = self._randn(tokens, width), self._randn(tokens, width)
            out = torch.empty_like(a)
            return lambda: torch.add(a, b, out=out)
        if op == "embedding":
            table = self._randn(_EMBEDDING_VOCAB, width)
            ids = torch.randint(0, _EMBEDDING_VOCAB, (tokens,), device=self.device)
            return lambda: F.embedding(ids, table)
        raise ValueError(f"unknown elementwise op {op!r}")

    def attention(self) -> pd.DataFrame:
        F = self.torch.nn.functional
        rows = []
        for op, batch, q_len, ctx, heads, kv_heads, head_dim in self.plan.attention:
            if not self._fits(batch * (heads * q_len + 2 * kv_heads * ctx) * head_dim * 2):
                continue
            q = self._randn(batch, heads, q_len, head_dim)
            k, v = self._randn(batch, kv_heads, ctx, head_dim), self._randn(batch, kv_heads,
                                                                         ctx, head_dim)
            causal = op == "attn_prefill"
            try:
                F.scaled_dot_product_attention(q[:, :, :1], k[:, :, :1], v[:, :, :1],
                                               enable_gqa=True)
                fn = (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                             enable_gqa=True))
            except TypeError:     # torch < 2.5: repeat K/V to the query heads (not timed)
                k = k.repeat_interleave(heads // kv_heads, dim=1)
                v = v.repeat_interleave(heads // kv_heads, dim=1)
                fn = (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            t = self.time_s(fn)
            if t is not None:
                rows.append((op, batch, q_len, ctx, heads, kv_heads, head_dim, t))
        self.log(f"attention: {len(rows)} shapes")
        return pd.DataFrame(rows, columns=["op", "batch", "query_tokens", "context_tokens",
                                           "heads", "kv_heads", "head_dim", "time_s"])

    def run(self) -> tbl.Tables:
        """All tables; the all-reduce one only with several GPUs (see :mod:`.allreduce`)."""
        gemm = self.gemm()
        elementwise = self.elementwise()
        attention = self.attention()
        allreduce = None
        if self.cuda and self.torch.cuda.device_count() > 1 and self.plan.allreduce_bytes:
            from sim.calibration.allreduce import measure_allreduce
            allreduce = measure_allreduce(self.plan, self.dtype, self.log)
        if self.skipped:
            self.log(f"budget of {self.plan.budget_s:.0f} s spent: {self.skipped} points skipped")
        return tbl.Tables.of(gemm=gemm, elementwise=elementwise, attention=attention,
                             allreduce=allreduce)
