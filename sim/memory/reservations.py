"""Blocks an admission policy has promised: estimates of peak use, kept apart from the pool."""

from __future__ import annotations

from collections.abc import Hashable


class BlockReservations:
    """A ledger of blocks reserved per holder (a request id, a shared prefix's pin) against a
    cap. Reserving allocates nothing: the pool (:class:`~sim.memory.KVCache`) hands out blocks as
    tokens need them; the ledger says whether a newcomer's estimated peak still fits."""

    __slots__ = ("cap_blocks", "total", "_blocks")

    def __init__(self, cap_blocks: int):
        self.cap_blocks = cap_blocks
        self.total = 0
        self._blocks: dict[Hashable, int] = {}

    def fits(self, blocks: int) -> bool:
        """Whether ``blocks`` more stay within the cap."""
        return self.total + blocks <= self.cap_blocks

    def reserve(self, holder: Hashable, blocks: int) -> None:
        self._blocks[holder] = self._blocks.get(holder, 0) + blocks
        self.total += blocks

    def transfer(self, source: Hashable, target: Hashable, blocks: int) -> None:
        """Move ``blocks`` of ``source``'s reservation to ``target`` (the total is unchanged)."""
        self._blocks[source] -= blocks
        self._blocks[target] = self._blocks.get(target, 0) + blocks

    def release(self, holder: Hashable) -> None:
        """Drop ``holder``'s reservation (none: nothing happens)."""
        self.total -= self._blocks.pop(holder, 0)

    def __getitem__(self, holder: Hashable) -> int:
        return self._blocks.get(holder, 0)
