"""Closed-loop arrivals: ``clients`` clients, each sending its next request when its previous one
has ended (completed or rejected), after ``think_time_s``.

A client takes the next request in workload order; if that request belongs to a session, the
client keeps the session's following requests (its next turns) to itself. Every client starts at
``start_s``. A request is sent at the moment its predecessor ends plus the think time (its
``arrival_s`` is set then) and goes through the router like any other arrival, so decode
fast-forward stays exact: the arrival cuts a decode run at the next iteration boundary, as
stepping would see it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import simpy

from sim.workload import ArrivalConfig, Request


class ClosedLoop:
    """The clients' processes; iterating over it gives the requests not sent yet."""

    def __init__(self, env: simpy.Environment, requests: Iterator[Request], cfg: ArrivalConfig,
                 send: Callable[[Request, float, float], None]):
        self.env, self.cfg, self.send = env, cfg, send
        self._source = requests
        self._lookahead: Request | None = None       # taken from the source, not yet given out
        self._held = [deque() for _ in range(cfg.clients)]   # a client's remaining session turns
        self._ended: dict[int, simpy.Event] = {}      # request id -> its client's wake-up

    def start(self) -> None:
        for held in self._held:
            self.env.process(self._client(held))

    def on_end(self, req: Request) -> None:
        """A request completed or was rejected: wake its client."""
        event = self._ended.pop(req.id, None)
        if event is not None:
            event.succeed()

    def _take(self) -> list[Request]:
        """The next request in workload order, with the rest of its session."""
        first = self._lookahead if self._lookahead is not None else next(self._source, None)
        self._lookahead = None
        if first is None:
            return []
        unit = [first]
        if first.session >= 0:
            for req in self._source:
                if req.session != first.session:
                    self._lookahead = req
                    break
                unit.append(req)
        return unit

    def _client(self, held: deque):
        env, think = self.env, self.cfg.think_time_s
        due, scheduled_s = max(self.cfg.start_s, env.now), env.now
        if due > env.now:
            yield env.timeout(due - env.now)
        while True:
            if not held:
                held.extend(self._take())
                if not held:
                    return
            req = held.popleft()
            req.arrival_s = due
            ended = self._ended[req.id] = env.event()
            self.send(req, due, scheduled_s)   # may end it at once (rejected): ended triggered
            yield ended
            # the exact finish time, not SimPy's clock (a sum of delays, an ulp off it, and
            # differently so with and without decode fast-forward); the next send's event (this
            # wake-up or the think timeout) is scheduled now
            due, scheduled_s = req.finish_s + think, env.now
            if due > env.now:
                yield env.timeout(due - env.now)

    def __iter__(self) -> Iterator[Request]:
        """Requests no client has sent (for the records at the horizon); they never arrived, so
        their ``arrival_s`` is NaN."""
        for req in self._unsent():
            req.arrival_s = float("nan")
            yield req

    def _unsent(self) -> Iterator[Request]:
        for held in self._held:
            yield from held
            held.clear()
        if self._lookahead is not None:
            yield self._lookahead
            self._lookahead = None
        yield from self._source
