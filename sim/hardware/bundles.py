"""HBM bank bundles shared by an xPU and a PIM: how two concurrent streams share bandwidth.

A device's banks form ``bundles`` bank bundles, each with its own data path of
``bundle_bytes_per_s`` (the PIM's bandwidth is the sum over bundles: it reads all of them at
once). The xPU reaches any bundle but is capped by its external HBM interface. When both
processors stream at the same time:

- from *different* bundles, they do not interfere: each gets its own rate;
- from the *same* bundle(s), that bundle's bandwidth is divided max-min fairly (a stream that
  wants less than an equal share keeps its rate, the other gets the rest): the row buffers of
  a bank serve one request at a time, so two streams on one bank take turns.

The cost model stripes every tensor over all bundles (the usual address interleaving, which is
what gives the PIM its full bandwidth when it runs alone), so during co-processing both
processors share all bundles: the xPU, whose cap (3.35 TB/s) is below half of the bundles'
13.4 TB/s, keeps its full rate and the Logic-PIM gets the remaining ~75%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BankBundles:
    bundles: int
    bundle_bytes_per_s: float

    @property
    def total_bytes_per_s(self) -> float:
        return self.bundles * self.bundle_bytes_per_s

    def rates(self, demands: list[float], bundle_sets: list[frozenset[int]]) -> list[float]:
        """Bandwidth each stream gets: stream i wants ``demands[i]`` bytes/s (its own cap) from
        the bundles in ``bundle_sets[i]`` (striped evenly over them).

        Progressive filling (max-min fairness): raise every unfrozen stream's rate together
        until a stream reaches its demand or a bundle is full, freeze those, repeat.
        """
        n = len(demands)
        for s in bundle_sets:
            if not s or not all(0 <= b < self.bundles for b in s):
                raise ValueError(f"bundle set {sorted(s)} outside 0..{self.bundles - 1}")
        rate = [0.0] * n
        active = [i for i in range(n) if demands[i] > 0]
        used = [0.0] * self.bundles
        while active:
            # a stream striped over k bundles puts rate/k on each of them
            steps = [demands[i] - rate[i] for i in active]
            for b in range(self.bundles):
                users = [i for i in active if b in bundle_sets[i]]
                if users:
                    per_rate = sum(1.0 / len(bundle_sets[i]) for i in users)
                    steps.append((self.bundle_bytes_per_s - used[b]) / per_rate)
            step = max(min(steps), 0.0)
            for i in active:
                rate[i] += step
                for b in bundle_sets[i]:
                    used[b] += step / len(bundle_sets[i])
            full = {b for b in range(self.bundles)
                    if used[b] >= self.bundle_bytes_per_s * (1 - 1e-12)}
            active = [i for i in active if rate[i] < demands[i] * (1 - 1e-12)
                      and not (bundle_sets[i] & full)]
        return rate


def overlap_seconds(t_a, bytes_a, t_b, bytes_b, capacity: float, concurrent: bool = True):
    """Duration of two processors' work run at the same time on shared bundles (elementwise).

    ``t_a``, ``t_b``: each one's duration alone; ``bytes_a``, ``bytes_b``: the bytes it streams,
    so it wants ``bytes / t`` bytes/s on average. If the two demands fit in ``capacity`` the
    stage takes max(t_a, t_b). Otherwise, while both run, the bandwidth is split max-min
    fairly and each processor slows in proportion to the bandwidth it lost (its compute waits
    for data); when one finishes the other continues at its own speed. ``concurrent=False``
    (a PIM that locks the banks): t_a + t_b.
    """
    t_a, t_b = np.asarray(t_a, dtype=float), np.asarray(t_b, dtype=float)
    if not concurrent:
        return t_a + t_b
    with np.errstate(divide="ignore", invalid="ignore"):
        r_a = np.where(t_a > 0, np.asarray(bytes_a, dtype=float) / t_a, 0.0)
        r_b = np.where(t_b > 0, np.asarray(bytes_b, dtype=float) / t_b, 0.0)
        half = capacity / 2.0
        fits = r_a + r_b <= capacity
        s_a = np.where(fits | (r_a <= half), r_a, np.where(r_b <= half, capacity - r_b, half))
        s_b = np.where(fits | (r_b <= half), r_b, np.where(r_a <= half, capacity - r_a, half))
        f_a = np.where(r_a > 0, s_a / r_a, 1.0)       # speed while overlapped, in (0, 1]
        f_b = np.where(r_b > 0, s_b / r_b, 1.0)
        d_a, d_b = t_a / f_a, t_b / f_b               # finish times if the overlap lasted
    first = np.minimum(d_a, d_b)
    rest = np.where(d_a <= d_b, t_b - first * f_b, t_a - first * f_a)
    return first + np.maximum(rest, 0.0)
