"""Per-request and per-iteration records of a simulation run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.metrics.columns import ColumnBuffer
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

ITERATION_SCHEMA = {
    "replica": "int32", "start_s": "float64", "duration_s": "float64", "num_iterations": "int32",
    "num_seqs": "int32", "prefill_tokens": "int64", "decode_tokens": "int64",
    "preempted": "int32", "waiting": "int32", "kv_blocks_used": "int64", "energy_j": "float64",
}


class Recorder:
    """Collects request and iteration rows into column buffers during a run."""

    def __init__(self):
        self.requests = ColumnBuffer(REQUEST_SCHEMA, capacity=4096)
        self.iterations = ColumnBuffer(ITERATION_SCHEMA, capacity=4096)
        self._reasons: dict[str, int] = {"": 0}
        self._slo_classes: dict[str, int] = {}

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

    def requests_frame(self) -> pd.DataFrame:
        """The per-request table, sorted by request id, with derived latency columns."""
        df = self.requests.to_frame()
        reasons = {v: k for k, v in self._reasons.items()}
        classes = {v: k for k, v in self._slo_classes.items()}
        df.insert(2, "state", pd.Categorical(df.pop("status").map(STATUS_NAMES)))
        df["reject_reason"] = df.pop("reason_code").map(reasons).astype("string")
        df["slo_class"] = df.pop("slo_code").map(classes).astype("string")
        df["abort_reason"] = df.pop("abort_code").map(reasons).astype("string")
        df = df.sort_values("request_id", kind="stable").reset_index(drop=True)
        df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
        df["e2e_s"] = df["finish_s"] - df["arrival_s"]
        df["queue_s"] = df["first_scheduled_s"] - df["arrival_s"]
        decoded = df["output_generated"] - 1
        # prefill work beyond the uncached prompt: recomputation after preemption
        df["recomputed_tokens"] = (df["prefill_tokens_computed"] - df["prompt_tokens"]
                                   + df["cached_prompt_tokens"]).clip(lower=0)
        df["tpot_s"] = np.where(decoded > 0, (df["finish_s"] - df["first_token_s"])
                                / decoded.where(decoded > 0, 1), math.nan)
        return df

    def iterations_frame(self) -> pd.DataFrame:
        return self.iterations.to_frame()
