"""Typed dataclass hyperparameters that generate the command line (open_lth style).

A field's metadata may hold ``help``, ``flags`` (extra spellings, e.g. ``('-v',)``) and ``choices``.
``bool`` fields become ``--flag/--no-flag``; ``list`` fields take several values; ``Optional`` fields
default to None. Library code receives the dataclasses, never an argparse Namespace.
"""
import argparse
import dataclasses
import math
import sys
import types
import typing


def hp(default, help, flags=(), choices=None):
    """A dataclass field with CLI metadata."""
    meta = {"help": help, "flags": tuple(flags), "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line naming the flag."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def finite_float(text):
    """float, but NaN and infinities are refused where the flag is parsed (a NaN LR would train silently)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


finite_float.__name__ = "float"  # argparse names the type in its "invalid float value" message


def _base_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return tp


def add_arguments(parser, cls, defaults=None, title=None, aliases=None, skip=(), only_existing=False):
    """Add one argument per field of dataclass ``cls``; ``defaults`` overrides per script, ``aliases`` adds
    spellings per field ({field: ("--learning_rate",)}), fields named in ``skip`` (already added by another
    class) are left out, and with ``only_existing`` those that only shape a new network (metadata
    ``new_network``). Returns {field name: its option strings}."""
    defaults, aliases = defaults or {}, aliases or {}
    group = parser.add_argument_group(title or cls.__name__)
    hints = typing.get_type_hints(cls)
    added = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or (only_existing and f.metadata.get("new_network")):
            continue
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        names = [flag] + list(f.metadata.get("flags", ())) + list(aliases.get(f.name, ()))
        if "_" in f.name and tp is not bool:
            names.append("--" + f.name)  # the reference spells some flags with underscores
        names = list(dict.fromkeys(names))
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        kwargs = dict(dest=f.name, default=default)
        if tp is bool:
            action = group.add_argument(*names, action=argparse.BooleanOptionalAction,
                                        help=help_text + " (default: %(default)s)", **kwargs)
            added[f.name] = list(action.option_strings)
            continue
        if typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            kwargs.update(nargs="*", type=finite_float if item is float else item)
        else:
            kwargs["type"] = finite_float if tp is float else tp
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(*names, help=help_text + " (default: %(default)s)", **kwargs)
        added[f.name] = names
    return added


def build_parser(description, *classes, defaults=None, epilog=None):
    parser = OneLineParser(description=description, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    for cls in classes:
        add_arguments(parser, cls, defaults)
    return parser


def from_namespace(cls, ns):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def parse(parser, classes, argv=None):
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return tuple(from_namespace(c, ns) for c in classes)


def named(argv, option_strings):
    """Whether the command line names one of ``option_strings`` (also as --flag=value)."""
    return any(a.partition("=")[0] in option_strings for a in argv)


def to_dict(*objs):
    out = {}
    for o in objs:
        out.update(dataclasses.asdict(o))
    return out
