"""``oracle``: Past-Future's admission rule with every request's true output length (an upper
bound no real server can reach; the only scheduler that gets :class:`OracleView`s)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.scheduling.past_future import (PastFutureConfig, PastFutureScheduler,
                                        future_peak_tokens, remaining_tokens)
from sim.scheduling.view import OracleView, RequestView


@dataclass(frozen=True)
class OracleConfig(PastFutureConfig):
    name: str = "oracle"


class OracleScheduler(PastFutureScheduler):
    Config = OracleConfig
    view_type = OracleView

    def batch_peaks(self, batch: list[RequestView]) -> np.ndarray:
        held, generated, max_out = self._batch_arrays(batch)
        final = np.fromiter((v.output_tokens for v in batch), np.float64, len(batch))
        return future_peak_tokens(held, remaining_tokens(final, generated, max_out))
