"""Calibration tools: measured kernel timings -> hardware profile tables and fitted curves.

- :mod:`~sim.calibration.run`, :mod:`~sim.calibration.plan`, :mod:`~sim.calibration.bench`,
  :mod:`~sim.calibration.allreduce`: ``llmsim calibrate --device cuda|cpu`` (what to measure,
  torch micro-benchmarks, NCCL all-reduce with several GPUs)
- :mod:`~sim.calibration.vidur`: importer of Vidur's profiling CSVs
  (``llmsim calibrate import-vidur``)
- :mod:`~sim.calibration.llmservingsim`: importer of LLMServingSim's measured vLLM layer tables
  (``llmsim calibrate import-llmservingsim``)
- :mod:`~sim.calibration.fit`: efficiency curves (fraction of peak vs op size) fitted to a table
- :mod:`~sim.calibration.learned`: the learned default curves, fitted on several GPUs at once
- :mod:`~sim.calibration.build`: held-out MAPE and writing a profile (YAML + tables beside it)
- :mod:`~sim.calibration.report`: what ``llmsim hardware show`` prints

What a simulation reads of a calibration is below this package: the profile sections, tables,
curves and measured layer tables are data (:mod:`sim.hardware.calibration`); turning them into
seconds is the cost core's (:mod:`sim.cost.roofline`, :mod:`sim.cost.predictor`,
:mod:`sim.cost.table_costs`). Nothing here is imported by a simulation; torch only by the
benchmarks.
"""
