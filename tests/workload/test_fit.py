import numpy as np
import pytest

from sim.workload import TraceColumns, fit_trace
from sim.workload.fit import fit_arrivals


def test_fits_rate_cv_and_lognormal_lengths():
    rng = np.random.default_rng(0)
    n = 20_000
    arrivals = np.cumsum(rng.gamma(4.0, 0.25 / 4.0, n))     # rate 4, cv 0.5
    prompts = np.maximum(1, rng.lognormal(6.0, 0.7, n).astype(int))
    fit = fit_trace(TraceColumns(arrivals, prompts, np.full(n, 3)))
    assert fit.arrivals.kind == "gamma"
    assert fit.arrivals.rate_rps == pytest.approx(4.0, rel=0.02)
    assert fit.arrivals.cv == pytest.approx(0.5, rel=0.03)
    assert fit.prompt_tokens.dist == "lognormal"
    assert fit.prompt_tokens.mean == pytest.approx(prompts.mean())
    assert fit.prompt_tokens.sigma == pytest.approx(0.7, rel=0.03)
    assert (fit.prompt_tokens.min, fit.prompt_tokens.max) == (prompts.min(), prompts.max())
    assert fit.output_tokens.dist == "fixed" and fit.output_tokens.value == 3


def test_degenerate_arrivals():
    assert fit_arrivals(np.array([5.0, 5.0])).kind == "burst"
    assert fit_arrivals(np.array([1.0])).kind == "burst"
    c = fit_arrivals(np.array([0.0, 0.5, 1.0]))
    assert c.kind == "constant" and c.rate_rps == 2.0
