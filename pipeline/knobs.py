"""The machinery of typed, documented, validated parameters: :func:`knob` fields and :func:`build_section`.

A section of params is a dataclass whose fields are made with :func:`knob`: a default, a help text and, where
a value can be wrong, a ``check`` that returns what is wrong or None. :func:`build_section` validates a raw
mapping against such a dataclass and raises :class:`ConfigError` with one line naming the key, the value and
what is allowed. :func:`coerce` and :func:`type_name` also validate data rows (``pipeline.records``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Literal

from pipeline.errors import ConfigError

Check = Callable[[Any], str | None]


def knob(default: Any, help: str, check: Check | None = None) -> Any:
    """A dataclass field with its documentation and an optional validity check."""
    kwargs: dict[str, Any] = {"metadata": {"help": help, "check": check}}
    if isinstance(default, (list, dict)):
        kwargs["default_factory"] = lambda d=default: type(d)(d)
    else:
        kwargs["default"] = default
    return field(**kwargs)


def at_least(low: float, why: str = "") -> Check:
    return lambda v: None if v >= low else f"must be at least {low}" + (f" {why}" if why else "")


def between(low: float, high: float, why: str = "") -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}" + (f" {why}" if why else "")


def positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def temperature_check(v: float) -> str | None:
    return None if v >= 0 else "must be at least 0 (0 means greedy)"


def top_p_check(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def template_check(*variables: str, verdict: str | None = None) -> Check:
    """A role's template: it exists (under prompts/ or as a path), parses, and uses exactly ``variables``.

    A judging role (``verdict``: judge, meta_judge, compare) also needs the declaration that reads the template's
    verdict: its own ``<name>.verdict.yaml`` beside it, or the role's default (``pipeline.declarations``).
    """
    def check(name: str) -> str | None:
        from pipeline.templates import check_template

        problem = check_template(name, frozenset(variables), frozenset(variables))
        if problem is None and verdict is not None:
            from pipeline.declarations import template_problem

            problem = template_problem(name, verdict)
        return problem

    return check


def url_check(url: str) -> str | None:
    """Why ``url`` cannot be a server's base URL, or None."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1"
    return None


def one_of(names: tuple[str, ...], what: str) -> Check:
    """A value, or every item of a list value, is one of ``names`` (with a did-you-mean hint)."""
    def check(values: str | list[str]) -> str | None:
        for v in [values] if isinstance(values, str) else values:
            if v not in names:
                near = difflib.get_close_matches(v, names, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(names)}"
                return f"{v!r} is not {what} — {hint}"
        return None

    return check


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        item = typing.get_args(tp)[0]
        plural = {str: "strings", int: "integers", float: "finite numbers", bool: "true/false values"}
        return f"a list of {plural.get(item, type_name(item))}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
            type(None): "null", dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


NOT = object()  # what coerce returns for a value that does not fit the type


def coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp``, or ``NOT`` when it does not fit."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value if value in typing.get_args(tp) else NOT
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            out = coerce(value, arg)
            if out is not NOT:
                return out
        return NOT
    if origin is list:
        if not isinstance(value, list):
            return NOT
        items = [coerce(v, typing.get_args(tp)[0]) for v in value]
        return NOT if any(i is NOT for i in items) else items
    if origin is dict or tp is dict:
        return value if isinstance(value, dict) else NOT
    if tp is type(None):
        return None if value is None else NOT
    if tp is bool:
        return value if isinstance(value, bool) else NOT
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else NOT
    if tp is float:
        if isinstance(value, bool):
            return NOT
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                out = float(value)
            except ValueError:
                return NOT
        else:
            return NOT
        return out if math.isfinite(out) else NOT  # .inf and .nan pass YAML but no computation wants them
    if tp is str:
        return value if isinstance(value, str) else NOT
    if dataclasses.is_dataclass(tp):  # a nested section given as something other than a mapping
        return NOT
    return value


def unknown_key(where: str, key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(known)}"
    return f"{where}{key}: unknown key — {hint}"


def nested_section(tp: Any) -> type | None:
    """The dataclass in ``tp`` (``LoraSpec`` or ``LoraSpec | None``), if any: a nested section."""
    for arg in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return arg
    return None


def build_section(cls: type, raw: Mapping[str, Any] | None, where: str, prefix: str | None = None) -> Any:
    """Validate ``raw`` against dataclass ``cls``; ``where`` prefixes a key's errors (``params.yaml: sample.``),
    ``prefix`` the checks that read several keys (default: the file part of ``where``)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where.rstrip('.')}: {raw!r} — must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(unknown_key(where, str(key), list(fields)))
        nested = nested_section(hints[key])
        if nested is not None and isinstance(value, Mapping):
            values[key] = build_section(nested, value, f"{where}{key}.", prefix=f"{where}{key}:")
            continue
        out = coerce(value, hints[key])
        if out is NOT:
            raise ConfigError(f"{where}{key}: {value!r} — must be {type_name(hints[key])}")
        check = fields[key].metadata.get("check")
        problem = check(out) if check and out is not None else None
        if problem:
            raise ConfigError(f"{where}{key}: {value!r} — {problem}")
        values[key] = out
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{prefix or where.split(' ')[0]} {e}") from None
