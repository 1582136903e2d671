"""Iteration cost: operators of a batch -> time, FLOPs, bytes, energy (roofline, measured
tables, Duplex) plus the serving engine's terms."""
