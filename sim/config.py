"""Validation of YAML sections against frozen dataclasses, with errors that name file and field.

Each configurable part declares a ``@dataclass(frozen=True)`` ``Config``; :func:`parse` checks a
mapping against it (pydantic does the type checking, strictly: no "5" for 5) and turns the first
problem into a :class:`~sim.errors.ScenarioError` such as
``scenarios/q.yaml: scheduler.max_num_seqs: expected int > 0, got -1``.
Value constraints beyond types go in the dataclass's ``__post_init__`` as ``raise ConfigValueError``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from sim.errors import LlmsimError, ScenarioError, did_you_mean

if TYPE_CHECKING:
    import pydantic

T = TypeVar("T")


class ConfigValueError(ValueError):
    """Raised by a Config's ``__post_init__``: ``field`` is relative to that Config."""

    def __init__(self, field: str, expected: str, got: object):
        super().__init__(f"{field}: expected {expected}, got {got!r}")
        self.field, self.expected, self.got = field, expected, got


def read_text(path: str | Path, shown: str | None = None) -> str:
    """A YAML input's text, or a one-line ScenarioError naming the file (``shown``, else the
    path): not UTF-8 (with the offset of the first bad byte), unreadable."""
    shown = shown or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(shown, None, "a UTF-8 text file",
                            hint=f"byte {exc.start} is not UTF-8") from None
    except OSError as exc:
        raise ScenarioError(shown, None, "a readable file",
                            hint=str(exc.strerror or exc)) from None


def read_mapping(path: str | Path, error: type[LlmsimError]) -> dict:
    """A JSON (or, by suffix, YAML) file holding one mapping, or a one-line ``error`` naming the
    file and, for bad JSON, the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        kind = "mapping" if path.suffix in (".yaml", ".yml") else "JSON object"
        raise error(f"{path}: expected a {kind} at the top level, got {type(data).__name__}")
    return data


def require(condition: bool, field: str, expected: str, got: object) -> None:
    """Raise ConfigValueError unless ``condition``: the one-liner every Config check uses."""
    if not condition:
        raise ConfigValueError(field, expected, got)


# Lax pydantic (so 8 fills a float field) plus _reject_coercions (so "8" and true do not fill a
# number field): pydantic's strict mode would also refuse a dict for a dataclass. A plain dict is
# what pydantic.ConfigDict(...) makes; pydantic itself is imported on the first parse, so that
# importing a Config (the CLI's parser, a registry) does not pay for it.
_CLOSED: pydantic.ConfigDict = {"extra": "forbid"}


@functools.lru_cache(maxsize=None)
def _adapter(cls: type) -> pydantic.TypeAdapter:
    import pydantic

    _make_strict(cls)
    return pydantic.TypeAdapter(cls)


def _make_strict(tp: Any) -> None:
    """Give ``tp`` and the dataclasses nested in its fields strict, closed validation."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if "__pydantic_config__" not in vars(tp):
            tp.__pydantic_config__ = _CLOSED
        for hint in typing.get_type_hints(tp).values():
            _make_strict(hint)
    for arg in typing.get_args(tp):
        _make_strict(arg)


def parse(cls: type[T], data: Any, *, path: str | None = None, field: str = "") -> T:
    """Validate ``data`` (a mapping from YAML) into ``cls``; raise ScenarioError on any problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(path, field or None, "a mapping", data)
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        key = sorted(unknown, key=str)[0]
        names = [f.name for f in dataclasses.fields(cls)]
        raise ScenarioError(path, _join(field, str(key)), None,
                            hint=f"unknown key; {did_you_mean(str(key), names)}")
    _reject_coercions(cls, data, path, field)
    import pydantic

    try:
        return _adapter(cls).validate_python(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ConfigValueError):
            # loc is the nested section the check ran in; the check names a field inside it
            raise ScenarioError(path, _join(field, _join(loc, ctx_error.field)),
                                ctx_error.expected, ctx_error.got) from None
        if err["type"] == "missing":
            raise ScenarioError(path, _join(field, loc), "a value (required)") from None
        if err["type"] == "extra_forbidden":
            raise ScenarioError(path, _join(field, loc), None, hint="unknown key") from None
        if err["type"] == "literal_error":      # a fixed set of names: say which was meant
            names = re.findall(r"'([^']*)'", (err.get("ctx") or {}).get("expected", ""))
            if names:
                raise ScenarioError(path, _join(field, loc), "one of " + ", ".join(names),
                                    err.get("input"),
                                    hint=did_you_mean(str(err.get("input")), names)) from None
        expected = _expected_type(cls, err["loc"]) or err["msg"].lower()
        raise ScenarioError(path, _join(field, loc), expected, err.get("input")) from None


_NUMBER_TYPES = (int, float)


def _reject_coercions(cls: type, data: dict, path: str | None, field: str) -> None:
    """Refuse strings and booleans where a number is declared (pydantic's lax mode takes them)."""
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        tp = hints.get(key)
        if tp is None:
            continue
        options = typing.get_args(tp) if typing.get_origin(tp) in _UNION_ORIGINS else (tp,)
        if isinstance(value, (str, bool)) and not any(o in (str, bool) or typing.get_origin(o)
                                                      is typing.Literal for o in options):
            if any(o in _NUMBER_TYPES for o in options):
                raise ScenarioError(path, _join(field, key), _type_name(tp), value)
        if isinstance(value, dict):
            for option in options:
                if dataclasses.is_dataclass(option):
                    known = {f.name for f in dataclasses.fields(option)}
                    unknown = sorted(set(value) - known, key=str)
                    if unknown:
                        raise ScenarioError(path, _join(field, f"{key}.{unknown[0]}"), None,
                                            hint=f"unknown key; {did_you_mean(str(unknown[0]), known)}")
                    _reject_coercions(option, value, path, _join(field, key))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _expected_type(cls: type, loc: tuple) -> str | None:
    """A readable type name for the field at ``loc`` (e.g. 'int', 'float', 'one of a, b')."""
    try:
        hints = typing.get_type_hints(cls)
        tp = hints[loc[0]]
    except Exception:
        return None
    if len(loc) > 1:
        return None
    return _type_name(tp)


_UNION_ORIGINS = (typing.Union, types.UnionType)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in _UNION_ORIGINS:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))
