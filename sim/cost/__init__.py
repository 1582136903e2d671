"""Iteration cost: operators of a batch -> time, FLOPs, bytes, energy (roofline, measured
tables, Duplex) plus the serving engine's terms. Every op is priced by one function,
:func:`sim.cost.roofline.op_seconds`, at the rates of the processor it runs on."""
