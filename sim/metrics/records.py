"""Per-request and per-iteration records of a simulation run.

Rows are gathered in column buffers. By default both tables stay in memory until the run ends.
For long runs (``simulation.stream_outputs``) the rows go to Parquet files in blocks as they
complete, so memory stays bounded whatever the run's length: requests in completion order, one
row group per block; the summary then reads the files a column at a time. Iteration rows may
also be dropped or sampled (``simulation.iteration_rows``); the iteration aggregates of the
summary (:class:`IterationTotals`) are taken over every iteration all the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.metrics.columns import ColumnBuffer
from sim.metrics.table import DERIVED, Columns, derive
from sim.workload.request import Request, RequestStatus

REQUEST_SCHEMA = {
    "request_id": "int64", "replica": "int32", "status": "int8", "arrival_s": "float64",
    "prompt_tokens": "int64", "output_tokens": "int64", "output_generated": "int64",
    "first_scheduled_s": "float64", "first_token_s": "float64", "finish_s": "float64",
    "max_tpot_s": "float64", "preemptions": "int32", "prefill_tokens_computed": "int64",
    "cached_prompt_tokens": "int64", "reason_code": "int16", "slo_code": "int16",
    "session": "int64", "attempts": "int16", "abort_code": "int16", "wasted_tokens": "int64",
    "first_arrival_s": "float64", "prefill_replica": "int32", "kv_transfer_s": "float64",
}
STATUS_NAMES = {int(RequestStatus.FINISHED_COMPLETED): "completed",
                int(RequestStatus.FINISHED_REJECTED): "rejected",
                int(RequestStatus.RUNNING): "running", int(RequestStatus.WAITING): "waiting",
                int(RequestStatus.PREEMPTED): "preempted"}
_STATE_BY_CODE = [STATUS_NAMES[code] for code in range(len(STATUS_NAMES))]
# recorded code column -> the text column of the request table it becomes
_TEXT_OF_CODE = {"status": "state", "reason_code": "reject_reason", "slo_code": "slo_class",
                 "abort_code": "abort_reason"}
# the request table's columns, in order: the recorded ones (codes as text), then the derived
REQUEST_COLUMNS = ["state" if c == "status" else c for c in REQUEST_SCHEMA
                   if c not in ("reason_code", "slo_code", "abort_code")] \
    + ["reject_reason", "slo_class", "abort_reason", *DERIVED]

ITERATION_SCHEMA = {
    "replica": "int32", "start_s": "float64", "duration_s": "float64", "num_iterations": "int32",
    "num_seqs": "int32", "prefill_tokens": "int64", "decode_tokens": "int64",
    "preempted": "int32", "waiting": "int32", "kv_blocks_used": "int64", "energy_j": "float64",
}
STREAM_BLOCK_ROWS = 1 << 16     # rows per Parquet row group when streaming


class IterationTotals:
    """Time-weighted sums over every iteration row, for the summary: the batch size, the KV in
    use (against each replica's ``kv_blocks``) and, for pipelined pools, the stages' busy time.
    Fed the whole table at once (rows kept in memory) or block by block (streamed, dropped or
    sampled rows): the same formulas, so one block gives the in-memory figures bit for bit and
    several agree with them to rounding."""

    def __init__(self, kv_blocks: np.ndarray,
                 pipelines: list[tuple[np.ndarray, int, float]] = ()):
        self.kv_blocks = np.asarray(kv_blocks)
        self._uniform = len(set(self.kv_blocks.tolist())) <= 1
        self.pipelines = list(pipelines)    # (replica indices, stages, even-split share)
        self.rows = 0
        self.duration_s = self.seqs_s = self.kv_block_s = self.capacity_block_s = 0.0
        self.stage_busy_s = self.stage_total_s = 0.0

    def add(self, it: dict[str, np.ndarray]) -> None:
        weights = it["duration_s"]
        self.rows += len(weights)
        self.duration_s += weights.sum()
        self.seqs_s += (it["num_seqs"] * weights).sum()
        self.kv_block_s += (it["kv_blocks_used"] * weights).sum()
        if not self._uniform:       # pools of different sizes: each its own capacity
            self.capacity_block_s += (weights * self.kv_blocks[it["replica"]]).sum()
        for replicas, pp, even in self.pipelines:
            mine = np.isin(it["replica"], replicas)
            duration = weights[mine]
            micro = np.minimum(it["num_seqs"][mine], pp)
            self.stage_busy_s += float((duration * micro / pp * even).sum())
            self.stage_total_s += float(duration.sum())

    def add_totals(self, other: "IterationTotals") -> None:
        """Add another partition's sums (the same replicas and pools)."""
        for name in ("rows", "duration_s", "seqs_s", "kv_block_s", "capacity_block_s",
                     "stage_busy_s", "stage_total_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def batch_size_mean(self) -> float | None:
        return float(self.seqs_s / self.duration_s) if self.rows and self.duration_s > 0 \
            else None

    def kv_usage_mean(self, busy: bool) -> float:
        capacity = self.duration_s * self.kv_blocks[0] if self._uniform \
            else self.capacity_block_s
        return float(self.kv_block_s / capacity) if busy else 0.0

    @property
    def pipeline_bubble_fraction(self) -> float:
        return 1.0 - self.stage_busy_s / self.stage_total_s if self.stage_total_s else 0.0


class Recorder:
    """Collects request and iteration rows into column buffers during a run.

    ``iteration_rows``: ``all``, ``none`` or ``sampled`` (every ``sample_every``-th row).
    ``stream_dir``: write both tables there as Parquet, block by block, instead of keeping them.
    """

    def __init__(self, totals: IterationTotals | None = None, iteration_rows: str = "all",
                 sample_every: int = 1, stream_dir: Path | None = None):
        self.totals = totals if totals is not None else IterationTotals(np.ones(1))
        self.iteration_rows, self.sample_every = iteration_rows, sample_every
        self.stream_dir = Path(stream_dir) if stream_dir is not None else None
        self._reasons: dict[str, int] = {"": 0}
        self._slo_classes: dict[str, int] = {}
        self._writers: dict[str, object] = {}
        self._kept: list[dict[str, np.ndarray]] = []     # sampled iteration rows in memory
        self._seen = 0                                    # iteration rows handed over
        streamed = self.stream_dir is not None
        self.requests = ColumnBuffer(REQUEST_SCHEMA, capacity=STREAM_BLOCK_ROWS if streamed
                                     else 4096, sink=self._write_requests if streamed else None)
        # every iteration row kept in memory (else blocks go to _take_iterations)
        self._all_iterations = whole = iteration_rows == "all" and not streamed
        self.iterations = ColumnBuffer(ITERATION_SCHEMA, capacity=4096 if whole
                                       else STREAM_BLOCK_ROWS,
                                       sink=None if whole else self._take_iterations)
        self.finished = False

    def _code(self, table: dict[str, int], text: str) -> int:
        code = table.get(text)
        if code is None:
            code = table[text] = len(table)
        return code

    def request(self, r: Request) -> None:
        self.requests.append((  # REQUEST_SCHEMA order
            r.id, r.replica, int(r.status), r.arrival_s, r.prompt_tokens, r.output_tokens,
            r.output_generated, r.first_scheduled_s, r.first_token_s, r.finish_s,
            r.max_token_gap_s, r.preemptions, r.prefill_tokens_computed, r.cached_prompt_tokens,
            self._code(self._reasons, r.reject_reason),
            self._code(self._slo_classes, r.slo_class), r.session, r.attempts,
            self._code(self._reasons, r.abort_reason), r.wasted_tokens,
            r.arrival_s if r.attempts == 1 else r.first_arrival_s, r.prefill_replica,
            r.kv_transfer_s))

    def iteration(self, replica: int, start_s: float, duration_s: float, num_iterations: int,
                  num_seqs: int, prefill_tokens: int, decode_tokens: int, preempted: int,
                  waiting: int, kv_blocks_used: int, energy_j: float) -> None:
        self.iterations.append((  # ITERATION_SCHEMA order
            replica, start_s, duration_s, num_iterations, num_seqs, prefill_tokens,
            decode_tokens, preempted, waiting, kv_blocks_used, energy_j))

    # -- blocks ----------------------------------------------------------------------------
    def _names(self, column: str) -> list[str]:
        if column == "status":
            return _STATE_BY_CODE
        table = self._slo_classes if column == "slo_code" else self._reasons
        return sorted(table, key=table.__getitem__)

    def _request_table(self, cols: dict[str, np.ndarray]):
        """Recorded request columns as the request table (a pyarrow Table)."""
        import pyarrow as pa

        arrays = {}
        for name in REQUEST_COLUMNS:
            if name in cols:
                arrays[name] = _arrow_numbers(cols[name])
            elif name in DERIVED:
                arrays[name] = _arrow_numbers(derive(cols.__getitem__, name))
        for code, text in _TEXT_OF_CODE.items():
            arrays[text] = pa.DictionaryArray.from_arrays(
                _arrow_numbers(cols[code].astype(np.int32)), _arrow_strings(self._names(code)))
            if code != "status":    # the other tables grow during a run: one schema for all
                arrays[text] = arrays[text].cast(pa.string())
        return pa.Table.from_arrays([arrays[name] for name in REQUEST_COLUMNS],
                                    names=REQUEST_COLUMNS)

    def _writer(self, name: str, table):
        import pyarrow.parquet as pq

        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = pq.ParquetWriter(self.stream_dir / f"{name}.parquet",
                                                            table.schema)
        return writer

    def _write_requests(self, cols: dict[str, np.ndarray]) -> None:
        table = self._request_table(cols)
        self._writer("requests", table).write_table(table)

    def _take_iterations(self, cols: dict[str, np.ndarray]) -> None:
        self.totals.add(cols)
        first, self._seen = self._seen, self._seen + len(cols["replica"])
        if self.iteration_rows == "none":
            return
        if self.iteration_rows == "sampled":
            keep = (np.arange(first, self._seen) % self.sample_every) == 0
            cols = {name: col[keep] for name, col in cols.items()}
        if self.stream_dir is None:
            self._kept.append({name: col.copy() for name, col in cols.items()})
            return
        table = _arrow_table(cols)
        self._writer("iterations", table).write_table(table)

    def finish(self) -> None:
        """The run has ended: hand the last blocks over, total the iterations, close files."""
        if self.finished:
            return
        self.finished = True
        if self._all_iterations:       # every row in memory: one block, exact
            self.totals.add(self.iterations.columns())
        else:
            self.iterations.drain()
        if self.stream_dir is not None:
            self.requests.drain()
            if "requests" not in self._writers:     # no rows: an empty table, still a file
                self._write_requests(_empty_columns(REQUEST_SCHEMA))
            if "iterations" not in self._writers:
                table = _arrow_table(_empty_columns(ITERATION_SCHEMA))
                self._writer("iterations", table).write_table(table)
            for writer in self._writers.values():
                writer.close()

    # -- the tables ------------------------------------------------------------------------
    def request_columns(self) -> Columns:
        """The request table for the summary, in request-id order, without pandas."""
        self.finish()
        if self.stream_dir is not None:
            return Columns.from_parquet(self.stream_dir / "requests.parquet")
        arrays = self._requests_by_id()
        texts = {text: (arrays[code], self._names(code)) for code, text in _TEXT_OF_CODE.items()}
        return Columns.from_arrays(arrays, texts)

    def _requests_by_id(self) -> dict[str, np.ndarray]:
        cols = self.requests.columns()
        order = np.argsort(cols["request_id"], kind="stable")
        return {name: col[order] for name, col in cols.items()}

    def _iteration_columns(self) -> dict[str, np.ndarray]:
        """The iteration rows kept in memory (all, sampled or none)."""
        if self._all_iterations:
            return self.iterations.columns()
        if not self._kept:
            return _empty_columns(ITERATION_SCHEMA)
        return {name: np.concatenate([b[name] for b in self._kept]) for name in ITERATION_SCHEMA}

    def requests_frame(self):
        """The per-request table, sorted by request id, with derived latency columns."""
        self.finish()
        if self.stream_dir is not None:
            return read_requests(self.stream_dir / "requests.parquet")
        return normalise_requests(self._request_table(self.requests.columns()).to_pandas())

    def write_tables(self, folder: Path) -> None:
        """requests.parquet (in request-id order) and iterations.parquet in ``folder``, written
        from the columns (no pandas); a streamed run's files are already written."""
        import pyarrow.parquet as pq

        self.finish()
        pq.write_table(self._request_table(self._requests_by_id()), folder / "requests.parquet")
        pq.write_table(_arrow_table(self._iteration_columns()), folder / "iterations.parquet")

    def iterations_frame(self):
        import pandas as pd

        self.finish()
        if self.stream_dir is not None:
            return pd.read_parquet(self.stream_dir / "iterations.parquet")
        return pd.DataFrame(self._iteration_columns())


def _empty_columns(schema: dict[str, str]) -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=dtype) for name, dtype in schema.items()}


# Arrow arrays made from their buffers: pyarrow's own conversion of numpy arrays and Python
# lists looks for pandas objects first, which imports pandas (a quarter of a second at start-up
# of a run that never needs it).
def _arrow_numbers(values: np.ndarray):
    """A numeric numpy column (no nulls; NaN stays a value, as pyarrow converts it)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    assert values.dtype.kind in "iuf", values.dtype    # bools are bit-packed in Arrow
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def _arrow_strings(names: list[str]):
    import pyarrow as pa

    encoded = [name.encode() for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _arrow_table(cols: dict[str, np.ndarray]):
    import pyarrow as pa

    return pa.Table.from_arrays([_arrow_numbers(c) for c in cols.values()], names=list(cols))


def normalise_requests(frame):
    """A request table as written (pyarrow) into the frame ``Result.requests`` holds: sorted by
    request id, ``state`` categorical, the text columns pandas strings."""
    import pandas as pd

    frame = frame.sort_values("request_id", kind="stable").reset_index(drop=True)
    # the states present, as a run's table holds them (a file's dictionary lists them all)
    frame["state"] = pd.Categorical(frame["state"].astype(str))
    for name in ("reject_reason", "slo_class", "abort_reason"):
        frame[name] = frame[name].astype("string")
    return frame


def read_requests(path: Path):
    """A request table file (in memory or streamed, any row order) as ``Result.requests``."""
    from sim.metrics.result import read_parquet

    return normalise_requests(read_parquet(path))


__all__ = ["ITERATION_SCHEMA", "REQUEST_COLUMNS", "REQUEST_SCHEMA", "IterationTotals",
           "Recorder", "STATUS_NAMES"]
