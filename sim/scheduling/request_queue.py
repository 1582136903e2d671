"""The waiting queue: the order in which waiting requests are considered for admission.

Like vLLM v1's ``request_queue.py``, the order is a class: schedulers push, peek and pop through
one interface and never touch the container. Two rules hold for every order: a new request
joins with :meth:`~RequestQueue.push`; a preempted one goes back to the head with
:meth:`~RequestQueue.push_front`, as vLLM requeues its victims, so it resumes before anyone
behind it starts.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator

from sim.registry import Registry
from sim.scheduling.view import RequestView


class RequestQueue(ABC):
    """The interface; :class:`FcfsQueue` is first come, first served."""

    __slots__ = ()
    # whether a request pushed now may come before every request already waiting (decode
    # fast-forward must then stop for an arrival even while requests wait)
    arrival_may_lead = True

    @abstractmethod
    def push(self, request: RequestView) -> None:
        """A request joins the queue in its place (for FCFS: the tail)."""

    @abstractmethod
    def push_front(self, request: RequestView) -> None:
        """A preempted request goes back to the head."""

    @abstractmethod
    def peek(self) -> RequestView:
        """The request to consider next (the queue must not be empty)."""

    @abstractmethod
    def pop(self) -> RequestView:
        """Remove and return :meth:`peek`'s request."""

    @abstractmethod
    def remove(self, request: RequestView) -> None:
        """Remove ``request`` from wherever it is."""

    @abstractmethod
    def remove_all(self, requests: Iterable[RequestView]) -> None:
        """Remove every one of ``requests`` (found by identity), keeping the others' order."""

    @abstractmethod
    def __iter__(self) -> Iterator[RequestView]:
        """The requests in queue order."""

    @abstractmethod
    def __len__(self) -> int:
        """How many requests wait (an empty queue is false)."""


class FcfsQueue(deque, RequestQueue):
    """Arrival order (vLLM's ``FCFSRequestQueue``): a deque, O(1) at both ends. The interface's
    methods are the deque's own where they can be, so the hot ones (push, pop, len, truth) run
    in C."""

    __slots__ = ()
    arrival_may_lead = False

    push = deque.append
    push_front = deque.appendleft
    pop = deque.popleft
    remove = deque.remove               # no __eq__ on views: found by identity, in C

    def peek(self) -> RequestView:
        return self[0]

    def remove_all(self, requests: Iterable[RequestView]) -> None:
        gone = set(map(id, requests))
        if gone:
            kept = [r for r in self if id(r) not in gone]
            self.clear()
            self.extend(kept)

    def __repr__(self) -> str:
        return f"FcfsQueue({[r.id for r in self]})"


class ShortestPromptQueue(RequestQueue):
    """Fewest prompt tokens first (shortest-job-first on what the server knows before running
    a request), ties in arrival order; preempted requests still go back to the head, in front
    of everything, as with FCFS. Cuts mean TTFT under load at the cost of long prompts' tail."""

    __slots__ = ("_front", "_heap", "_seq")

    def __init__(self):
        self._front: deque[RequestView] = deque()   # preempted: resume first, last-in first
        self._heap: list[tuple[int, int, RequestView]] = []
        self._seq = itertools.count()

    def push(self, request: RequestView) -> None:
        heapq.heappush(self._heap, (request.prompt_tokens, next(self._seq), request))

    def push_front(self, request: RequestView) -> None:
        self._front.appendleft(request)

    def peek(self) -> RequestView:
        return self._front[0] if self._front else self._heap[0][2]

    def pop(self) -> RequestView:
        return self._front.popleft() if self._front else heapq.heappop(self._heap)[2]

    def remove(self, request: RequestView) -> None:
        self.remove_all((request,))

    def remove_all(self, requests: Iterable[RequestView]) -> None:
        gone = set(map(id, requests))
        if not gone:
            return
        front = [r for r in self._front if id(r) not in gone]
        self._front.clear()
        self._front.extend(front)
        heap = [e for e in self._heap if id(e[2]) not in gone]
        heapq.heapify(heap)
        self._heap = heap

    def __iter__(self) -> Iterator[RequestView]:
        yield from self._front
        yield from (e[2] for e in sorted(self._heap, key=lambda e: e[:2]))

    def __len__(self) -> int:
        return len(self._front) + len(self._heap)

    def __repr__(self) -> str:
        return f"ShortestPromptQueue({[r.id for r in self]})"


# the scheduler option ``queue``: the waiting queue's order
QUEUES: Registry[type[RequestQueue]] = Registry("queue order", {
    "fcfs": FcfsQueue,
    "shortest_prompt": ShortestPromptQueue,
})
