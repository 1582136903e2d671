"""The result JSON of vLLM's serving benchmark (``vllm bench serve --save-result --save-detailed``).

Per request it keeps ``input_lens``, ``output_lens``, ``ttfts`` (seconds), ``itls`` (the gaps
between streamed chunks, seconds) and ``errors``; E2E is TTFT plus the gaps. Newer versions also
keep ``start_times``; older ones keep no send times at all, and the arrivals are then rebuilt the
way the benchmark client draws them (:func:`rebuilt_arrivals`), which the run says in a warning.
Engine settings are not in the file: the scenario keeps llmsim's defaults (vLLM 0.19's) and
``--set`` gives the server's.
"""

from __future__ import annotations

import heapq
import math
import warnings
from pathlib import Path

import numpy as np

from sim.compare.runs import RealRun, RunWarning, latency_frame, read_json_object, warn_left_out
from sim.errors import TraceError

REQUIRED = ("input_lens", "output_lens", "ttfts", "itls")
DEFAULT_SEED = 0          # vllm bench serve --seed (not written into the result)


def read_bench_json(path: Path, run: Path | None = None) -> RealRun:
    """Read one benchmark result; ``run`` is the folder the user named, if not the file."""
    data = read_json_object(path)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise TraceError(f"{path}: missing key{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(k) for k in missing)}: not a result of `vllm bench "
                         "serve --save-result --save-detailed` (and no meta.json beside it)")
    n = _length(data, "input_lens", path)
    prompt = _numbers(data, "input_lens", n, path, integer=True, low=1)
    output = _numbers(data, "output_lens", n, path, integer=True, low=0)
    ttft = _numbers(data, "ttfts", n, path, integer=False, low=0)
    gaps = _itl_sums(data, n, path)
    errors = data.get("errors") or [""] * n
    if not isinstance(errors, list) or len(errors) != n:
        raise TraceError(f"{path}: errors: expected a list of {n} values (one per request, as "
                         "input_lens)")
    failed = np.array([bool(e) for e in errors]) | (output == 0)
    warn_left_out(path, int(failed.sum()), n, "an error or no output tokens")
    e2e = ttft + gaps
    seed = data.get("seed", DEFAULT_SEED)
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 \
        else DEFAULT_SEED
    sent, closed_loop = _send_times(data, n, seed, np.where(failed, 0.0, e2e), path)
    kept = ~failed
    requests = latency_frame(sent[kept], prompt[kept], output[kept], sent[kept] + ttft[kept],
                             sent[kept] + e2e[kept])
    warnings.warn(f"{path}: a benchmark result holds no engine settings: llmsim's defaults "
                  "(vLLM 0.19's) are used; give the server's with --set (e.g. "
                  "scheduler.max_num_seqs, scheduler.max_batched_tokens)", RunWarning,
                  stacklevel=2)
    model = data.get("model_id")
    return RealRun(path=run or path, source=path, kind="vllm-bench",
                   model=model if isinstance(model, str) and model else None,
                   requests=requests, arrivals=closed_loop, seed=seed)


def rebuilt_arrivals(n: int, rate_rps: float, burstiness: float, seed: int) -> np.ndarray:
    """Send times as vLLM's benchmark client draws them: gaps from a gamma distribution of shape
    ``burstiness`` and mean ``1 / rate_rps`` (a Poisson process at burstiness 1).

    The client draws from numpy's legacy global generator seeded with ``--seed``, so a
    ``RandomState`` gives its stream; the dataset sampling before it may have drawn from the same
    generator, so the times are the same process, not necessarily the same draws."""
    if math.isinf(rate_rps):
        return np.zeros(n)
    gaps = np.random.RandomState(seed).gamma(shape=burstiness, scale=1.0 / (rate_rps * burstiness),
                                             size=n)
    return np.cumsum(gaps)


def gated_by_concurrency(arrival_s: np.ndarray, duration_s: np.ndarray, limit: int) -> np.ndarray:
    """When each request was actually sent by a client allowing ``limit`` in flight: at its
    arrival, or when the earliest earlier request ends, whichever is later (the benchmark's
    semaphore, first come first served)."""
    sent = np.empty(len(arrival_s))
    busy: list[float] = []      # end times of the requests in flight
    for i, (arrival, duration) in enumerate(zip(arrival_s.tolist(), duration_s.tolist())):
        start = arrival if len(busy) < limit else max(arrival, heapq.heappop(busy))
        sent[i] = start
        heapq.heappush(busy, start + duration)
    return sent


def _send_times(data: dict, n: int, seed: int, duration_s: np.ndarray,
                path: Path) -> tuple[np.ndarray, dict | None]:
    """Per-request send times, and a closed-loop ``workload.arrivals`` when that is what the
    client ran (every request ready at once, ``max_concurrency`` in flight)."""
    if data.get("start_times") is not None:
        start = _numbers(data, "start_times", n, path, integer=False, low=None)
        return start - start.min(), None
    rate = _rate(data.get("request_rate"), path)
    burstiness = data.get("burstiness") or 1.0
    if isinstance(burstiness, bool) or not isinstance(burstiness, (int, float)) \
            or not burstiness > 0:
        raise TraceError(f"{path}: burstiness: expected a number > 0, got {burstiness!r}")
    limit = data.get("max_concurrency")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TraceError(f"{path}: max_concurrency: expected an integer > 0 or null, got "
                         f"{limit!r}")
    arrival = rebuilt_arrivals(n, rate, float(burstiness), seed)
    if math.isinf(rate):
        how = "all sent at t = 0 (request_rate inf)"
    else:
        how = (f"gamma gaps of shape {burstiness:g} and mean {1 / rate:.4g} s (request_rate "
               f"{rate:g}), seed {seed}, as the benchmark client draws them")
    if limit is not None:
        how += f", then at most {limit} in flight, each sent when an earlier one ended"
        arrival = gated_by_concurrency(arrival, duration_s, limit)
    warnings.warn(f"{path}: no send times recorded: arrivals rebuilt ({how}); an approximation "
                  "of the real ones", RunWarning, stacklevel=3)
    if limit is not None and math.isinf(rate):
        return arrival, {"kind": "closed_loop", "clients": limit}
    return arrival, None


def _rate(value, path: Path) -> float:
    if value is None or value == "inf" or value == "Infinity":
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise TraceError(f"{path}: request_rate: expected a number > 0 or \"inf\", got {value!r}")
    return float(value)


def _length(data: dict, key: str, path: Path) -> int:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise TraceError(f"{path}: {key}: expected a non-empty list (one value per request), "
                         f"got {_short(value)}")
    return len(value)


def _numbers(data: dict, key: str, n: int, path: Path, *, integer: bool,
             low: float | None) -> np.ndarray:
    """``data[key]`` as a numpy array of ``n`` numbers, or a TraceError naming the first bad
    entry by its index."""
    values = data[key]
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else _short(values)
        raise TraceError(f"{path}: {key}: expected a list of {n} values (one per request, as "
                         f"input_lens), got {got}")
    ok = [not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
          and (low is None or v >= low) and (not integer or float(v).is_integer())
          for v in values]
    if not all(ok):
        i = ok.index(False)
        what = "an integer" if integer else "a number"
        bound = "" if low is None else f" >= {low:g}"
        raise TraceError(f"{path}: {key}[{i}]: expected {what}{bound}, got {values[i]!r}")
    return np.asarray(values, dtype=np.int64 if integer else np.float64)


def _itl_sums(data: dict, n: int, path: Path) -> np.ndarray:
    """Each request's inter-token gaps summed (a flat bincount, not a loop over tokens)."""
    itls = data["itls"]
    if not isinstance(itls, list) or len(itls) != n:
        raise TraceError(f"{path}: itls: expected a list of {n} lists (one per request, as "
                         "input_lens)")
    bad = next((i for i, row in enumerate(itls) if not isinstance(row, list)), None)
    if bad is not None:
        raise TraceError(f"{path}: itls[{bad}]: expected a list of seconds, got "
                         f"{_short(itls[bad])}")
    lengths = np.fromiter((len(row) for row in itls), dtype=np.int64, count=n)
    row_of = np.repeat(np.arange(n), lengths)
    try:
        flat = np.fromiter((v for row in itls for v in row), dtype=np.float64,
                           count=int(lengths.sum()))
        good = np.isfinite(flat) & (flat >= 0)
        bad = None if good.all() else int(row_of[np.argmax(~good)])
    except (TypeError, ValueError):     # not a number somewhere: find its row
        bad = next(i for i, row in enumerate(itls)
                   if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                              for v in row))
    if bad is not None:
        raise TraceError(f"{path}: itls[{bad}]: expected a list of seconds >= 0, got "
                         f"{_short(itls[bad])}")
    return np.bincount(row_of, weights=flat, minlength=n)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
