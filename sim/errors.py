"""The project's own error types.

Every error a user can cause derives from :class:`LlmsimError`; the CLI prints it as one line and
exits with status 2. Anything else escaping is a bug in llmsim and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LlmsimError(Exception):
    """Base of every error caused by input (scenarios, traces, models, hardware profiles)."""


class ScenarioError(LlmsimError):
    """A scenario (or any YAML spec) field is wrong: names the file, the field, what was expected."""

    def __init__(self, path: str | None, field: str | None, expected: str | None,
                 got: object = None, hint: str | None = None):
        self.path, self.field, self.expected, self.got, self.hint = path, field, expected, got, hint
        parts = [str(p) for p in (path, field) if p]
        if expected is None:        # not a value problem (e.g. an unknown key): the hint says it all
            parts.append(hint or "invalid")
        else:
            text = f"expected {expected}"
            if got is not None:
                text += f", got {_short(got)}"
            if hint:
                text += f" ({hint})"
            parts.append(text)
        super().__init__(": ".join(parts))

    def __reduce__(self):     # picklable, so an error in a worker process reaches the parent
        return type(self), (self.path, self.field, self.expected, self.got, self.hint)


class TraceError(LlmsimError):
    """A trace file is missing, unreadable, or lacks a column / has a bad value on some line."""


class ModelError(LlmsimError):
    """A model name or Hugging Face config cannot be turned into a ModelSpec."""


class HardwareError(LlmsimError):
    """A hardware profile is unknown or malformed."""


class OutputError(LlmsimError):
    """An output path cannot be written (a file where a folder is needed, no permission, ...);
    raised before a simulation runs, so that its result is never lost to it."""


class ResultError(LlmsimError):
    """A result file (summary.json, a Parquet table, plan.json, ...) is missing or damaged."""


class CapacityError(LlmsimError):
    """The configuration cannot serve at all (e.g. the weights do not fit in device memory)."""


def closest_name(name: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest choice, or None when none is close."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`did you mean 'x'?` for the closest choice, else the list of valid choices."""
    choices = sorted(choices)
    return closest_name(name, choices) or "valid: " + ", ".join(choices)


def unknown_name_error(kind: str, name: str, choices: Iterable[str], path: str | None = None,
                       field: str | None = None) -> ScenarioError:
    choices = sorted(choices)
    return ScenarioError(path, field, f"a known {kind} (one of {', '.join(choices)})", name,
                         hint=closest_name(name, choices))


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
