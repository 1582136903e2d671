"""Registries: the names users write in YAML or on the command line, mapped to pluggable parts.

Every pluggable kind (schedulers, routers, arrival processes, length distributions, trace formats,
device kinds, cost models, sweep backends) is one :class:`Registry`, so adding one is one module
plus one line, and every unknown name gets the same one-line error with a "did you mean"::

    ROUTERS = Registry("router", {"round-robin": RoundRobinRouter, ...})
    ROUTERS.lookup("round-robbin", field="cluster.router")
    # ScenarioError: cluster.router: expected a known router (one of least-kv-load, ...),
    #                got 'round-robbin' (did you mean 'round-robin'?)

A registry is a ``dict``, so lookups on hot paths cost what a dict lookup costs, and tests can
``monkeypatch.setitem`` a toy entry in and have it removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from sim.config import ConfigValueError
from sim.errors import LlmsimError, closest_name, unknown_name_error

T = TypeVar("T")


class Registry(dict[str, T]):
    """Names -> entries of one pluggable ``kind`` ("scheduler", "router", ...)."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None):
        super().__init__()
        self.kind = kind
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name taken by another entry is a programming
        error (two plug-ins claiming one name), not something to overwrite silently."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} registry: a name must be a non-empty string, "
                            f"got {name!r}")
        if name in self and self[name] is not entry:
            raise LlmsimError(f"{self.kind} '{name}' is registered twice")
        self[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@SCHEDULERS.register("mine")`` above a class."""
        return lambda entry: self.add(name, entry)

    def expected(self) -> str:
        return f"a known {self.kind} (one of {', '.join(sorted(self))})"

    def require(self, name: object, field: str) -> None:
        """For a Config's ``__post_init__``: ``name`` must be registered, else the ConfigValueError
        that :func:`sim.config.parse` turns into ``file: section.field: expected ...``."""
        if not isinstance(name, str) or name not in self:
            hint = closest_name(str(name), self)
            raise ConfigValueError(field, self.expected() + (f" ({hint})" if hint else ""), name)

    def lookup(self, name: object, path: str | None = None, field: str | None = None) -> T:
        """The entry called ``name``, or a one-line ScenarioError naming ``path`` and ``field``
        with the known names and the closest one."""
        if isinstance(name, str) and name in self:
            return self[name]
        raise unknown_name_error(self.kind, str(name), self, path, field or self.kind)
