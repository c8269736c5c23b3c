"""Config dataclasses that own their command-line options: fields carry their help, flag name and
choices (:func:`option`); validation errors name their field (:class:`ConfigError`); and one
generator turns a (nested) config dataclass into argparse options and back (:func:`add_arguments`,
:func:`from_arguments`), so ``qrnn train`` and ``qrnn eval`` never re-type a default or a help text.

A nested config's options are *flat*: every leaf field has one flag, named after the field unless
its ``flag`` metadata says otherwise (``QRNNSpec.n_qubits`` is ``--qubits``), unique over the whole
tree. :func:`leaves` lists them; :func:`build` makes a config from flat values (also how old flat
``config.json`` files migrate).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from .errors import QRNNError


class ConfigError(QRNNError, ValueError):
    """An invalid config value: ``field`` names it, ``reason`` says what is wrong (and what is
    right).

    ``str(error)`` reads "field reason"; the CLI shows the field's flag instead.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field} {reason}")


def require(ok: bool, field: str, reason: str) -> None:
    """Raise :class:`ConfigError` (``field``, ``reason``) unless ``ok``."""
    if not ok:
        raise ConfigError(field, reason)


def require_finite(value: float, field: str) -> None:
    """Refuse NaN and infinities (``--lr inf``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value!r}")


def require_choice(value: Any, choices: Sequence[Any], field: str) -> None:
    if value not in choices:
        raise ConfigError(field, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    resumable: bool = False,
    cli: bool = True,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field with its command-line help.

    ``flag``: the option's name without dashes (default: the field name, ``_`` → ``-``);
    ``choices``: allowed values (shown in the help, enforced by the config's own validation);
    ``resumable``: may differ when a run is resumed (how long, how it reports);
    ``cli``: False for fields the command line does not set; ``parse``: converts the command-line
    string (default: the field's type).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "choices": tuple(choices) if choices is not None else None,
        "resumable": resumable,
        "cli": cli,
        "parse": parse,
        "metavar": metavar,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Leaf:
    """One leaf field of a config tree: its path of attribute names, flag, type and metadata."""

    path: tuple[str, ...]
    flag: str
    type: Any
    default: Any
    help: str
    choices: tuple | None
    resumable: bool
    cli: bool
    parse: Callable[[str], Any] | None
    metavar: str | None

    @property
    def dest(self) -> str:
        """The argparse destination (the flag with ``_``)."""
        return self.flag.replace("-", "_")


def _is_config(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def leaves(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every leaf field of config class ``cls`` (nested config fields are walked), in order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if _is_config(kind):
            yield from leaves(kind, (*prefix, f.name))
            continue
        meta = f.metadata
        yield Leaf(
            path=(*prefix, f.name),
            flag=(meta.get("flag") or f.name).replace("_", "-"),
            type=kind,
            default=_default(f),
            help=meta.get("help", ""),
            choices=meta.get("choices"),
            resumable=bool(meta.get("resumable", False)),
            cli=bool(meta.get("cli", True)),
            parse=meta.get("parse"),
            metavar=meta.get("metavar"),
        )


def leaf_index(cls: type) -> dict[str, Leaf]:
    """{dest: leaf} of ``cls`` (flags are unique over the tree; a duplicate is a programming
    error)."""
    out: dict[str, Leaf] = {}
    for leaf in leaves(cls):
        if leaf.dest in out:
            raise TypeError(f"{cls.__name__}: option {leaf.flag!r} appears twice")
        out[leaf.dest] = leaf
    return out


def build(cls: type, values: Mapping[str, Any], *, base: Any = None) -> Any:
    """A ``cls`` from flat values {dest: value} (unknown names are a :class:`QRNNError`); unset
    fields come from ``base`` (a ``cls`` instance) or the defaults."""
    index = leaf_index(cls)
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise QRNNError(f"unknown option(s): {', '.join(unknown)}")
    by_path = {index[name].path: value for name, value in values.items()}
    return _build(cls, (), by_path, base)


def _build(cls: type, prefix: tuple[str, ...], values: dict, base: Any) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        current = getattr(base, f.name) if base is not None else _default(f)
        if _is_config(hints[f.name]):
            if any(p[: len(path)] == path for p in values):
                kwargs[f.name] = _build(
                    hints[f.name], path, values, None if current is MISSING else current
                )
            elif current is not MISSING:
                kwargs[f.name] = current
        elif path in values:
            kwargs[f.name] = values[path]
        elif current is not MISSING:
            kwargs[f.name] = current
        else:
            raise QRNNError(f"option {f.name!r} has no default and was not given")
    return cls(**kwargs)


def flatten(config: Any) -> dict[str, Any]:
    """{dest: value} of every leaf of ``config`` (the inverse of :func:`build`)."""
    out = {}
    for leaf in leaves(type(config)):
        value: Any = config
        for name in leaf.path:
            value = getattr(value, name)
        out[leaf.dest] = value
    return out


# ---------------------------------------------------------------------------------- command line
def _scalar(kind: Any) -> Any:
    """The scalar type of ``int | None`` style annotations (None for anything else)."""
    if kind in (int, float, str, bool):
        return kind
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return _scalar(args[0])
        if str in args:
            return str
    return None


def scalar_type(leaf: Leaf) -> type | None:
    """The scalar type (int, float, str or bool) of a leaf option (``int | None`` → int)."""
    return _scalar(leaf.type)


def _number(kind: type) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None

    parse.__name__ = kind.__name__
    return parse


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    defaults: Any = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    describe: Mapping[str, str] | None = None,
) -> None:
    """Add one option per leaf of ``cls`` (those with ``cli``; only ``include`` if given, minus
    ``exclude``, by dest) with help, default and choices from the fields. ``defaults``: a ``cls``
    instance whose values are the defaults shown and used; ``describe``: help overrides by dest."""
    values = flatten(defaults) if defaults is not None else {}
    for leaf in leaves(cls):
        if (
            not leaf.cli
            or leaf.dest in exclude
            or (include is not None and leaf.dest not in include)
        ):
            continue
        default = values.get(leaf.dest, leaf.default)
        text = (describe or {}).get(leaf.dest, leaf.help)
        scalar = _scalar(leaf.type)
        if scalar is bool:
            parser.add_argument(
                f"--{leaf.flag}", action=argparse.BooleanOptionalAction, default=default, help=text
            )
            continue
        shown = default if not isinstance(default, tuple) else ",".join(default)
        kwargs: dict[str, Any] = {
            "default": default,
            # a help text that states its default itself ("default: never") keeps it
            "help": (text if "default:" in text else f"{text} (default: {shown})")
            if text
            else f"(default: {shown})",
        }
        if leaf.parse is not None:
            kwargs["type"] = leaf.parse
        elif scalar in (int, float):
            kwargs["type"] = _number(scalar)
        if leaf.choices and leaf.parse is None and scalar is str:
            kwargs["choices"] = leaf.choices
        if leaf.metavar:
            kwargs["metavar"] = leaf.metavar
        parser.add_argument(f"--{leaf.flag}", **kwargs)


def from_arguments(cls: type, args: argparse.Namespace, *, base: Any = None) -> Any:
    """The ``cls`` config of parsed ``args`` (options not on the parser keep ``base``/defaults);
    a :class:`ConfigError` is re-raised naming the flag."""
    index = leaf_index(cls)
    values = {d: getattr(args, d) for d, leaf in index.items() if leaf.cli and hasattr(args, d)}
    try:
        return build(cls, values, base=base)
    except ConfigError as error:
        raise flag_error(cls, error) from None


def flag_error(cls: type, error: ConfigError) -> QRNNError:
    """``error`` reworded with the command-line flag of its field (``n_qubits`` → ``--qubits``)."""
    for leaf in leaves(cls):
        if error.field in (leaf.path[-1], leaf.dest, ".".join(leaf.path)):
            return QRNNError(f"--{leaf.flag} {error.reason}")
    return QRNNError(str(error))
