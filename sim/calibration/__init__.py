"""Calibration: measured kernel timings -> hardware profile tables, fitted curves, a predictor.

- :mod:`~sim.calibration.run`, :mod:`~sim.calibration.plan`, :mod:`~sim.calibration.bench`,
  :mod:`~sim.calibration.allreduce`: ``llmsim calibrate --device cuda|cpu`` (what to measure,
  torch micro-benchmarks, NCCL all-reduce with several GPUs)
- :mod:`~sim.calibration.vidur`: importer of Vidur's profiling CSVs
  (``llmsim calibrate import-vidur``)
- :mod:`~sim.calibration.tables`: the four Parquet tables and the FLOPs/bytes of their rows
- :mod:`~sim.calibration.fit`: efficiency curves (fraction of peak vs op size)
- :mod:`~sim.calibration.predictor`: log-log interpolation with the fitted roofline as fallback
- :mod:`~sim.calibration.build`: held-out MAPE and writing a profile (YAML + tables beside it)
- :mod:`~sim.calibration.schema`, :mod:`~sim.calibration.data`: the YAML section and its loaded form
- :mod:`~sim.calibration.report`: what ``llmsim hardware show`` prints

Nothing here is imported by a simulation unless its hardware profile has a ``calibration:``
section; torch only by the benchmarks.
"""
