"""Helpers for typed configuration dataclasses.

A run is configured by a tree of dataclasses, one per component, each field with a type, a default and a
comment. This module turns command-line overrides into typed values and round-trips a config through JSON.

Example::

    @dataclass
    class OptimConfig:
        lr: float = 30.0  # learning rate
        nonmono: int = 5  # evaluations without improvement before averaging starts

    @dataclass
    class RunConfig:
        seed: int = 1  # seed for python, numpy and torch
        optim: OptimConfig = field(default_factory=OptimConfig)

    config = merge_from_args(RunConfig(), ["--optim.lr=20", "--seed=3"])
    assert config_from_dict(RunConfig, config_to_dict(config)) == config

A dataclass may accept other names for its fields, in overrides and in stored configs, with a class attribute
``config_aliases = {"old_name": "field_name"}`` (e.g. the loop's section was ``loop`` in tagger runs and is
``train`` everywhere now).

Supported field types: ``int``, ``float``, ``bool``, ``str``, :class:`pathlib.Path`, ``Literal[...]``,
``Optional[X]`` / ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

ConfigT = TypeVar("ConfigT")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


class ConfigError(ValueError):
    """An override or a stored config names an unknown key or holds a value of the wrong type."""


# --------------------------------------------------------------------------------------------------- introspection


def _field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass's init fields (string annotations are evaluated)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_dataclass_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _optional_inner(annotation: Any) -> Any | None:
    """``X`` for ``Optional[X]`` / ``X | None``; ``None`` when ``annotation`` is not optional."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable dotted key below ``cls`` (nested sections expanded)."""
    keys = []
    for name, annotation in _field_types(cls).items():
        if _is_dataclass_type(annotation):
            keys.extend(_valid_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


# --------------------------------------------------------------------------------------------- strings -> values


def parse_value(text: str, annotation: Any) -> Any:
    """Convert the command-line string ``text`` to a value of type ``annotation``.

    Raises:
        ValueError: when ``text`` does not denote a value of that type (the caller adds the key).
    """
    inner = _optional_inner(annotation)
    if inner is not None:
        return None if text.strip().lower() in _NONE else parse_value(text, inner)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return text
    if annotation is bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
    if annotation is int:
        return int(text.strip())
    if annotation is float:
        return float(text.strip())
    if annotation is str:
        return text
    if annotation is Path:
        return Path(text)
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {list(args)}")
    if origin in (tuple, list):
        body = text.strip()
        if body[:1] + body[-1:] in ("()", "[]"):
            body = body[1:-1]
        items = [item.strip() for item in body.split(",")] if body.strip() else []
        if origin is list:
            (item_type,) = args or (str,)
            return [parse_value(item, item_type) for item in items]
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item_type = args[0] if args else str
            return tuple(parse_value(item, item_type) for item in items)
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated items, got {len(items)}")
        return tuple(parse_value(item, item_type) for item, item_type in zip(items, args))
    raise ValueError(f"fields of type {_type_name(annotation)} cannot be set from the command line")


# ------------------------------------------------------------------------------------------------- overrides


def _split_override(arg: str) -> tuple[list[str], str]:
    if not arg.startswith("--") or "=" not in arg:
        raise ConfigError(f"bad override {arg!r}: expected --section.key=value")
    key, value = arg[2:].split("=", 1)
    path = key.split(".")
    if not all(path):
        raise ConfigError(f"bad override {arg!r}: empty key in {key!r}")
    return path, value


def _aliases(cls: type) -> dict[str, str]:
    """Other accepted names of ``cls``'s fields: ``{alias: field name}``."""
    return dict(getattr(cls, "config_aliases", None) or {})


def _with_value(config: Any, path: list[str], text: str, done: str) -> Any:
    """A copy of ``config`` with the field at ``path`` set from ``text``; ``done`` is the key walked so far."""
    cls = type(config)
    annotations = _field_types(cls)
    name, rest = path[0], path[1:]
    name = _aliases(cls).get(name, name)
    key = f"{done}{name}"
    if name not in annotations:
        where = f"in {done[:-1]!r}" if done else "at the top level"
        raise ConfigError(
            f"unknown config key {key!r}; valid keys {where}: {', '.join(_valid_keys(cls, done))}"
        )
    annotation = annotations[name]
    if _is_dataclass_type(annotation):
        if not rest:
            keys = ", ".join(_valid_keys(annotation, key + "."))
            raise ConfigError(f"{key!r} is a section, not a value; set one of its keys: {keys}")
        value = _with_value(getattr(config, name), rest, text, key + ".")
    else:
        if rest:
            full_key = ".".join([key, *rest])
            raise ConfigError(f"unknown config key {full_key!r}: {key!r} is a value, not a section")
        try:
            value = parse_value(text, annotation)
        except ValueError as error:
            raise ConfigError(f"bad value for {key!r} ({_type_name(annotation)}): {text!r}: {error}") from None
    try:
        return dataclasses.replace(config, **{name: value})
    except ConfigError:
        raise
    except ValueError as error:  # a __post_init__ check rejected the new value
        raise ConfigError(f"bad value for {key!r}: {text!r}: {error}") from None


def merge_from_args(config: ConfigT, args: Iterable[str]) -> ConfigT:
    """Return a copy of ``config`` with command-line overrides applied; ``config`` itself is not modified.

    Each override is ``--section.key=value`` (any depth of nested dataclasses; top-level fields are
    ``--key=value``). The string is converted to the field's annotated type: ``bool`` accepts
    true/false/1/0/yes/no/on/off, ``Optional`` fields accept ``none``, tuples and lists are comma-separated
    (brackets optional, an empty string is the empty tuple). Later overrides win. ``__post_init__`` checks run
    on every replaced dataclass.

    Args:
        config: a dataclass instance (frozen or not).
        args: the overrides, e.g. ``sys.argv[1:]``.

    Raises:
        ConfigError: for a malformed override, an unknown key (the message lists the valid keys), a section
            given a value, or a value that does not convert to the field's type.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"merge_from_args expects a dataclass instance, got {type(config).__name__}")
    for arg in args:
        path, text = _split_override(arg)
        config = _with_value(config, path, text, "")
    return config


def check_resume_overrides(overrides: Iterable[str], allowed: Sequence[str], what: str) -> list[str]:
    """The overrides of a resumed run, after checking that each changes only what a resumed run may change.

    Every task's ``train_*(config, run_dir, *, resume=False, overrides=(), ...)`` takes the same ``overrides``:
    ``--section.key=value`` changes applied to the new run's config or, on resume, to the stored one; this check
    keeps the rest of a resumed run as it was.

    Args:
        overrides: ``--section.key=value`` strings.
        allowed: prefixes an override may start with, e.g. ``("--train.", "--loop.", "--data=")``.
        what: the allowed changes in words, for the error message.

    Raises:
        ConfigError: naming the first override that does not start with an allowed prefix.
    """
    overrides = list(overrides)
    for override in overrides:
        if not override.startswith(tuple(allowed)):
            raise ConfigError(f"{override!r}: on --resume only {what} can change")
    return overrides


# ---------------------------------------------------------------------------------------------- dict round trip


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config: tuples become lists, paths become strings."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_to_dict expects a dataclass instance, got {type(config).__name__}")
    return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _from_plain(value: Any, annotation: Any, key: str) -> Any:
    """Check and convert a JSON value back to ``annotation``; raise ConfigError naming ``key``."""

    def mismatch() -> ConfigError:
        return ConfigError(f"bad value for {key!r}: expected {_type_name(annotation)}, got {value!r}")

    inner = _optional_inner(annotation)
    if inner is not None:
        return None if value is None else _from_plain(value, inner, key)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if _is_dataclass_type(annotation):
        if not isinstance(value, dict):
            raise mismatch()
        return _build(annotation, value, key + ".")
    if annotation is bool:
        if not isinstance(value, bool):
            raise mismatch()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise mismatch()
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise mismatch()
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise mismatch()
        return value
    if annotation is Path:
        if not isinstance(value, str):
            raise mismatch()
        return Path(value)
    if origin is typing.Literal:
        if value not in args:
            raise mismatch()
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise mismatch()
        if origin is list:
            (item_type,) = args or (Any,)
            return [_from_plain(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item_type = args[0] if args else Any
            return tuple(_from_plain(item, item_type, f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise mismatch()
        return tuple(_from_plain(item, t, f"{key}[{i}]") for i, (item, t) in enumerate(zip(value, args)))
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    annotations = _field_types(cls)
    aliases = _aliases(cls)
    if aliases:
        renamed: dict[str, Any] = {}
        for key, value in data.items():
            name = aliases.get(key, key)
            if name in renamed:
                raise ConfigError(f"stored config sets {prefix + name!r} twice (also as {prefix + key!r})")
            renamed[name] = value
        data = renamed
    unknown = sorted(set(data) - set(annotations))
    if unknown:
        where = f"in {prefix[:-1]!r}" if prefix else "at the top level"
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r} in stored config; valid keys {where}: "
            f"{', '.join(prefix + name for name in annotations)}"
        )
    values = {name: _from_plain(data[name], annotations[name], prefix + name) for name in data}
    try:
        return cls(**values)
    except TypeError as error:  # a required field is missing
        raise ConfigError(f"stored config for {cls.__name__} is incomplete: {error}") from None


def config_from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
    """Rebuild a config of dataclass type ``cls`` from :func:`config_to_dict` output (e.g. read from JSON).

    Keys missing from ``data`` take the field's default, so configs saved before a field was added still load.

    Raises:
        ConfigError: for an unknown key (naming it and listing the valid ones), a value of the wrong type, or a
            missing field that has no default.
    """
    if not _is_dataclass_type(cls):
        raise TypeError(f"config_from_dict expects a dataclass type, got {cls!r}")
    if not isinstance(data, dict):
        raise ConfigError(f"stored config for {cls.__name__} must be a JSON object, got {type(data).__name__}")
    return _build(cls, data, "")
