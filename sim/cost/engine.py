"""How a vLLM v1 engine turns a batch into wall-clock time, beyond the kernels themselves.

The cost models give the GPU time of one forward pass from its operators. A real engine adds
terms that a vLLM engineer would name, each a field of :class:`EngineTerms` (the scenario's
``engine:`` section) that can be switched off to see what it is worth:

- **CUDA graphs** (``cuda_graphs``, ``cudagraph_mode``, ``cuda_graph_sizes``): vLLM captures the
  forward pass at a list of batch sizes. A batch whose token count is at most the largest size
  runs the graph of the next size up, padded with dummy tokens: the token-dependent layers run
  at the padded size, while attention and the LM head see only the real sequences. Graph
  replay has no per-kernel CPU launch. Which batches are captured depends on the mode: ``full``
  graphs (attention inside) exist for decode-only batches, ``piecewise`` graphs (attention run
  eagerly between the pieces) for any batch; ``full_and_piecewise`` (vLLM's default) uses the
  first for uniform decode batches and the second otherwise. Batches above the largest size run
  eagerly, every kernel launched from Python.
- **Eager launch** (``eager_launch_us``): the CPU cost of launching one kernel outside a graph.
  An eager forward pass cannot finish before its kernels are launched, so its time is the larger
  of the GPU time and the launch time; it matters only for small, fast batches.
- **CPU step overhead** (``cpu_overhead``, ``step_cpu_us``, ``request_cpu_us``): each engine
  step schedules the batch, prepares inputs and attention metadata, and processes sampled
  tokens: a fixed part plus a part per scheduled request.
- **Async scheduling** (``async_scheduling``): vLLM v1 can prepare step k+1 while the GPU runs
  step k; the CPU work then hides under the forward pass and costs only where it is longer.
  Without it the CPU and GPU alternate and their times add.

The defaults are vLLM 0.19's (graph sizes from :func:`default_capture_sizes`, async scheduling
on) with CPU costs typical of its Python engine loop on a server CPU. ``llmsim compare`` sets
them from a run's resolved configuration.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import require

CUDAGRAPH_MODES = ("none", "piecewise", "full", "full_decode_only", "full_and_piecewise")

# vLLM's CUDAGraphMode enum values, as ``compilation_config.cudagraph_mode`` is dumped:
# a single int or a [decode, mixed] pair (NONE=0, PIECEWISE=1, FULL=2).
_MODE_NUMBERS = {(0,): "none", (1,): "piecewise", (2,): "full", (2, 0): "full_decode_only",
                 (2, 1): "full_and_piecewise", (0, 0): "none", (1, 1): "piecewise",
                 (2, 2): "full"}


def cudagraph_mode_name(value) -> str | None:
    """A resolved config's ``cudagraph_mode`` (int, [int, int], or a name) as one of
    :data:`CUDAGRAPH_MODES`; ``None`` if it cannot be read."""
    if isinstance(value, str):
        name = value.strip().lower().removeprefix("cudagraphmode.")
        return name if name in CUDAGRAPH_MODES else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return _MODE_NUMBERS.get(tuple(value))
    return None


def default_capture_sizes(max_num_seqs: int, max_num_batched_tokens: int) -> tuple[int, ...]:
    """vLLM 0.19's CUDA-graph capture sizes: 1, 2, 4, then every 8 up to 256, then every 16,
    up to ``min(2 * max_num_seqs, 512)``, none above ``max_num_batched_tokens``."""
    largest = min(2 * max_num_seqs, 512)
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, largest + 1, 16))
    return tuple(s for s in sizes if s <= min(largest, max_num_batched_tokens))


@dataclass(frozen=True)
class EngineTerms:
    """The scenario's ``engine:`` section: each modelled vLLM effect, switchable."""

    cuda_graphs: bool = True
    cudagraph_mode: Literal["none", "piecewise", "full", "full_decode_only",
                            "full_and_piecewise"] = "full_and_piecewise"
    cuda_graph_sizes: tuple[int, ...] | None = None   # None: vLLM's defaults for the scheduler
    eager_launch_us: float = 5.0        # CPU cost of one kernel launch from Python (eager)
    cpu_overhead: bool = True
    step_cpu_us: float = 800.0          # schedule + prepare inputs + process outputs, per step
    request_cpu_us: float = 15.0        # ... per scheduled request
    async_scheduling: bool = True

    def __post_init__(self):
        require(self.cudagraph_mode in CUDAGRAPH_MODES, "cudagraph_mode",
                "one of " + ", ".join(CUDAGRAPH_MODES), self.cudagraph_mode)
        if self.cuda_graph_sizes is not None:
            sizes = list(self.cuda_graph_sizes)
            require(len(sizes) > 0 and all(isinstance(s, int) and s > 0 for s in sizes),
                    "cuda_graph_sizes", "a non-empty list of integers > 0, or null",
                    self.cuda_graph_sizes)
        for name in ("eager_launch_us", "step_cpu_us", "request_cpu_us"):
            value = getattr(self, name)
            require(value >= 0, name, "a number >= 0", value)


class EngineTiming:
    """:class:`EngineTerms` resolved for one deployment: what the cost model asks per step."""

    def __init__(self, terms: EngineTerms, max_num_seqs: int, max_num_batched_tokens: int,
                 eager_kernels: int = 0, num_layers: int = 0):
        self.terms = terms
        graphs = terms.cuda_graphs and terms.cudagraph_mode != "none"
        sizes = terms.cuda_graph_sizes or default_capture_sizes(max_num_seqs,
                                                                max_num_batched_tokens)
        self.sizes = tuple(sorted(set(sizes))) if graphs else ()
        mode = terms.cudagraph_mode
        self.full_decode = graphs and mode in ("full", "full_decode_only", "full_and_piecewise")
        self.piecewise = graphs and mode in ("piecewise", "full_and_piecewise")
        self.full_mixed = graphs and mode == "full"
        self.count_kernels(eager_kernels, num_layers)
        self.step_cpu_s = terms.step_cpu_us * 1e-6 if terms.cpu_overhead else 0.0
        self.request_cpu_s = terms.request_cpu_us * 1e-6 if terms.cpu_overhead else 0.0
        self._async = terms.async_scheduling
        # token count -> the captured size that runs it (a list: an index, not a search)
        self._largest = self.sizes[-1] if self.sizes else -1
        self._padded = [self.sizes[bisect_left(self.sizes, t)] if self.sizes else t
                        for t in range(self._largest + 1)]

    def count_kernels(self, eager_kernels: int, num_layers: int) -> None:
        """The kernels of one forward pass (the cost model that uses this timing knows them)."""
        launch_s = self.terms.eager_launch_us * 1e-6
        # kernels launched from Python: all of them (eager), or attention's between pieces
        self.eager_launch_s = launch_s * eager_kernels
        self.piecewise_launch_s = launch_s * 2 * num_layers     # attention + the next piece

    def padded_tokens(self, num_tokens: int, decode_only: bool) -> tuple[int, float]:
        """(tokens the token-dependent layers run at, CPU launch seconds of the forward)."""
        if num_tokens <= self._largest:
            if decode_only and self.full_decode or self.full_mixed:
                return self._padded[num_tokens], 0.0
            if self.piecewise:
                return self._padded[num_tokens], self.piecewise_launch_s
        return num_tokens, self.eager_launch_s

    def step_s(self, gpu_s, launch_s: float, num_requests: int):
        """Wall time of one step whose forward pass takes ``gpu_s`` on the GPU (a float or a
        numpy array), ``launch_s`` of CPU launches, for ``num_requests`` scheduled requests.
        (On the simulator's hot path: plain float comparisons, exact for arrays as well.)"""
        cpu = self.step_cpu_s + self.request_cpu_s * num_requests
        if type(gpu_s) is float:
            forward = gpu_s if gpu_s >= launch_s else launch_s
            if cpu <= 0.0:
                return forward
            if self._async:
                return forward if forward >= cpu else cpu
            return forward + cpu
        forward = np.maximum(gpu_s, launch_s) if launch_s > 0 else gpu_s
        if cpu <= 0.0:
            return forward
        return np.maximum(forward, cpu) if self._async else forward + cpu
