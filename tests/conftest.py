"""Every simulation in the test suite checks its invariants at every iteration unless the test
says otherwise (sim.scenario.SimulationConfig reads LLMSIM_CHECK_INVARIANTS)."""

import os

os.environ.setdefault("LLMSIM_CHECK_INVARIANTS", "1")
