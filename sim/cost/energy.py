"""Energy of an iteration: DRAM access per path, MACs per FLOP, static power over time.

Per op on a processor: ``flops * J/FLOP + bytes * (J/byte of that processor's DRAM path + row
activation J/byte)``. A byte costs less on a PIM's path because it travels a shorter wire: the
Duplex paper's per-32-byte access energies are 0.891 nJ on the xPU path (through the logic die,
the interposer and the xPU's PHY), 0.464 nJ for Logic-PIM (TSVs to the logic die only),
0.686 nJ for BankGroup-PIM and 0.187 nJ for Bank-PIM, plus 0.909 nJ per row activation; a MAC
costs 0.23 pJ. Static power (the device's ``idle_w``, xPU and PIM together) is paid for every
second of the iteration, busy or waiting on the other processor.
"""

from __future__ import annotations

from dataclasses import dataclass

PJ = 1e-12


@dataclass(frozen=True)
class EnergyPath:
    """Joules per FLOP and per DRAM byte of one processor."""

    j_per_flop: float
    j_per_byte: float

    @classmethod
    def of(cls, pj_per_flop: float, pj_per_hbm_byte: float,
           row_activation_pj_per_byte: float = 0.0) -> "EnergyPath":
        return cls(pj_per_flop * PJ, (pj_per_hbm_byte + row_activation_pj_per_byte) * PJ)

    def op_j(self, flops, nbytes):
        """Dynamic energy of one op (works elementwise on numpy arrays)."""
        return flops * self.j_per_flop + nbytes * self.j_per_byte


def pj_per_bit_to_byte(pj_per_bit: float) -> float:
    return 8.0 * pj_per_bit


def nj_per_access_to_pj_per_byte(nj: float, access_bytes: int = 32) -> float:
    """The paper quotes energy per 32-byte DRAM access (and per 1 KiB row activation)."""
    return nj * 1e3 / access_bytes


def static_j(watts: float, seconds):
    return watts * seconds
