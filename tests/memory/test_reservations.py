"""sim.memory.reservations: the ledger of promised blocks against its cap."""

from __future__ import annotations

from sim.memory import BlockReservations


def test_reserve_transfer_release():
    ledger = BlockReservations(10)
    assert ledger.fits(10) and not ledger.fits(11)
    ledger.reserve(1, 6)
    ledger.reserve(2, 3)
    assert ledger.total == 9 and ledger.fits(1) and not ledger.fits(2)
    pin = object()
    ledger.transfer(1, pin, 4)                  # a shared prefix becomes the group's
    assert (ledger.total, ledger[1], ledger[pin]) == (9, 2, 4)
    ledger.release(1)
    assert ledger.total == 7 and ledger[1] == 0
    ledger.release(1)                           # released twice: nothing more happens
    ledger.release(pin)
    ledger.release(2)
    assert ledger.total == 0
