"""A profile's measurements as data: what a simulation loads, nothing that turns it into seconds.

- :mod:`~sim.hardware.calibration.op_kinds`: the op-kind names tables, curves and the cost model
  share
- :mod:`~sim.hardware.calibration.schema`: the profile's ``calibration:`` and ``measured:``
  sections (no numpy/pandas: every profile load imports it)
- :mod:`~sim.hardware.calibration.tables`: the four kernel tables (Parquet): schema, reading,
  validation, writing
- :mod:`~sim.hardware.calibration.curves`: a fitted efficiency curve per op kind (``KindCurve``)
- :mod:`~sim.hardware.calibration.data`: ``CalibrationData``, a profile's tables and curves loaded
- :mod:`~sim.hardware.calibration.learned`: the learned default curves file, read as a calibration
  without tables
- :mod:`~sim.hardware.calibration.layers`: measured vLLM layer tables and reading between them

The cost model turns these into seconds (:mod:`sim.cost.roofline`, :mod:`sim.cost.predictor`);
the tools that produce them (benchmarks, importers, fits) are :mod:`sim.calibration`.
"""
