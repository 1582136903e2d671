"""KV transfer links of a disaggregated cluster: a prefill replica sends each prefilled request's
KV cache to a decode replica.

Each device of a prefill replica sends its shard of the KV on its own link (a NIC per GPU, as
in Mooncake, Dynamo or llm-d deployments), so a replica's link is one device's: ``bytes_per_s``
per device, and a transfer moves one device's share of the request's KV. Transfers from the same
replica at the same time share the link equally (processor sharing, as flows on one NIC do);
each first waits ``latency_s`` (connection setup, first byte) without using it.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.workload.request import Request

_DONE_S = 1e-9


class KvLink:
    """One prefill replica's outgoing link; ``done(request, started_s)`` when a transfer ends."""

    def __init__(self, env: simpy.Environment, bytes_per_s: float, latency_s: float,
                 done: Callable[[Request, float], None]):
        self.env, self.bytes_per_s, self.latency_s, self.done = env, bytes_per_s, latency_s, done
        self._active: dict[int, list] = {}    # request id -> [bytes left, request, started_s]
        self._changed: simpy.Event | None = None
        self._last_s = 0.0                    # when the bytes left were last brought up to date
        self.busy_s = 0.0                     # time with at least one transfer on the wire
        self.bytes_sent = 0.0
        self.transfers = 0
        env.process(self._serve())

    @property
    def in_flight(self) -> list[Request]:
        return [entry[1] for entry in self._active.values()]

    def send(self, request: Request, nbytes: float) -> None:
        """Start sending ``nbytes`` (one device's share of ``request``'s KV) now."""
        started_s = self.env.now
        self.transfers += 1
        if self.latency_s > 0:
            wait = self.env.timeout(self.latency_s)
            wait.callbacks.append(lambda _: self._join(request, nbytes, started_s))
        else:
            self._join(request, nbytes, started_s)

    def _join(self, request: Request, nbytes: float, started_s: float) -> None:
        self._advance()
        self._active[request.id] = [float(nbytes), request, started_s]
        if self._changed is not None and not self._changed.triggered:
            self._changed.succeed()

    def _advance(self) -> None:
        """Bring every transfer's bytes left up to now, at an equal share each."""
        now = self.env.now
        elapsed = now - self._last_s
        self._last_s = now
        if elapsed <= 0 or not self._active:
            return
        self.busy_s += elapsed
        sent = elapsed * self.bytes_per_s / len(self._active)
        for entry in self._active.values():
            self.bytes_sent += min(sent, entry[0])
            entry[0] -= sent

    def _serve(self):
        env = self.env
        while True:
            self._advance()
            # done: less than a nanosecond of sending left (the clock cannot resolve less)
            left = self.bytes_per_s / max(len(self._active), 1) * _DONE_S
            finished = [entry for entry in self._active.values() if entry[0] <= left]
            for entry in finished:
                del self._active[entry[1].id]
            for entry in finished:
                self.done(entry[1], entry[2])
            self._changed = env.event()
            if not self._active:
                yield self._changed
                continue
            share = self.bytes_per_s / len(self._active)
            first = min(entry[0] for entry in self._active.values()) / share
            yield env.any_of([env.timeout(first), self._changed])
