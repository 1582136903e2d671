"""Long horizons: a million requests stream through in bounded memory.

Arrivals are generated as they are consumed and finished requests leave only a row in columnar
buffers, so memory grows with the output tables (~0.7 KB per request), not with the requests in
flight or per-request objects. One run of the speed benchmark's scenario in a fresh process
(~1 minute; invariant checks off, as in any real run).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_million_requests_stay_under_2_gb():
    env = dict(os.environ, LLMSIM_CHECK_INVARIANTS="0")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--child",
                          "--requests", "1000000"], env=env, check=True, capture_output=True,
                         text=True).stdout
    run = json.loads(out.strip().splitlines()[-1])
    assert run["completed"] == 1_000_000          # all served: nothing lost or stuck
    assert run["peak_rss_mb"] < 2048, run
