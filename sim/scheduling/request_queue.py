"""The waiting queue: the order in which waiting requests are considered for admission.

Like vLLM v1's ``request_queue.py``, the order is a class: schedulers push, peek and pop through
one interface and never touch the container. Two rules hold for every order: a new request
joins with :meth:`~RequestQueue.push`; a preempted one goes back to the head with
:meth:`~RequestQueue.push_front`, as vLLM requeues its victims, so it resumes before anyone
behind it starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator

from sim.scheduling.view import RequestView


class RequestQueue(ABC):
    """The interface; :class:`FcfsQueue` is first come, first served."""

    __slots__ = ()

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
