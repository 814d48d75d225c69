"""Options shared by the command modules: numbers checked at parse time, and options built from a stage's config."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hexainst.kernel.settings import Spec, spec_of


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]`` (``high=None``: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be {high} or less, got {value}")
        return value

    return parse


# --- options built from a stage's config (hexainst.kernel.settings) ---------------------------------

#: Namespace attribute that maps each setting added by :func:`add_settings` to its flag (for errors).
FLAGS = "_setting_flags"


def _value_type(hint: Any) -> type:
    """The scalar type of a config field's annotation (``int | None`` -> ``int``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _parse(kind: type, spec: Spec, flag: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if kind is int:
            try:
                value: Any = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        elif kind is float:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        else:
            value = kind(text)
        problem = spec.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid <type> value" message
    return parse


def _list_parse(item: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    """A comma-separated list, each item parsed (and range-checked) by ``item``."""

    def parse(text: str) -> tuple[Any, ...]:
        return tuple(item(part.strip()) for part in text.split(",") if part.strip())

    parse.__name__ = "list"
    return parse


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(_shown(v) for v in default)
    return f"{default:g}" if isinstance(default, float) else str(default)


def add_settings(parser: argparse._ActionsContainer, config: type, names: Sequence[str],
                 *, flags: Mapping[str, str] | None = None, defaults: Mapping[str, Any] | None = None,
                 repeated: Sequence[str] = (), spaced: Sequence[str] = (), required: Sequence[str] = ()) -> None:
    """Add one option per setting of ``config`` named in ``names``: flag, type, range and help from the field.

    The flag is ``--name-with-dashes`` unless ``flags`` names another; ``defaults`` overrides a
    field's default for this command. A ``bool`` setting that defaults to ``True`` becomes
    ``--no-<name>``; one that defaults to ``False`` becomes ``--<name>``. The help ends with the
    default when there is one to show. A ``tuple[X, ...]`` setting takes a comma-separated list; named
    in ``repeated``, one value per use of its flag; named in ``spaced``, one or more values after it.
    A setting named in ``required`` must be given (no default shown). The parsed value lands under the setting's
    own name, so :func:`config_from` builds the config from the namespace.
    """
    hints = typing.get_type_hints(config)
    by_name = {f.name: f for f in dataclasses.fields(config)}
    shown = dict(flags or {})
    for name in names:
        field = by_name[name]
        spec = spec_of(field)
        if spec is None:
            raise TypeError(f"{config.__name__}.{name} is not declared with hexainst.kernel.settings.setting")
        default = (defaults or {}).get(name, field.default)
        if default is dataclasses.MISSING:  # a factory's value, or none for a field the config requires
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        kind = _value_type(hints[name])
        if kind is bool:
            flag = shown.get(name) or ("--no-" if default else "--") + name.replace("_", "-")
            parser.add_argument(flag, dest=name, action="store_false" if default else "store_true", default=default,
                                help=spec.help)
        else:
            flag = shown.get(name) or "--" + name.replace("_", "-")
            text = spec.help
            if default not in (None, (), "") and "(default" not in text and name not in required:
                text += f" (default {_shown(default)})"
            metavar = spec.metavar or (None if spec.choices else flag.lstrip("-").replace("-", "_").upper())
            if typing.get_origin(kind) is tuple:
                item = _parse(typing.get_args(kind)[0], spec, flag)
                must = name in required
                if name in repeated:
                    parser.add_argument(flag, dest=name, action="append", type=item, default=list(default),
                                        metavar=metavar, help=text, required=must)
                elif name in spaced:
                    parser.add_argument(flag, dest=name, nargs="+", type=item, default=default, metavar=metavar,
                                        help=text, required=must)
                else:
                    parser.add_argument(flag, dest=name, type=_list_parse(item), default=default, metavar=metavar,
                                        help=text, required=must)
            else:
                parser.add_argument(flag, dest=name, type=_parse(kind, spec, flag), default=default,
                                    choices=spec.choices, metavar=metavar, help=text, required=name in required)
        shown[name] = flag
    # An argument group shares its parser's defaults, so this reaches the parser either way.
    known = dict(parser.get_default(FLAGS) or {})
    known.update({n: shown[n] for n in names})
    parser.set_defaults(**{FLAGS: known})


#: Namespace attribute of the verbosity ``hexainst -q/-v`` chose (-1, 0, 1; :data:`hexainst.kernel.log.LEVELS`).
VERBOSITY = "verbosity"


def add_progress(parser: argparse._ActionsContainer) -> None:
    """``--no-progress``, on every command that shows progress bars: the value lands as ``progress`` (the
    field every stage config that shows bars has). ``hexainst -q`` turns the bars off too (:func:`shows_progress`)."""
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                        help="show no progress bars (hexainst -q turns them off too)")


def shows_progress(args: argparse.Namespace) -> None:
    """The one place that decides whether a command shows progress bars: not with ``--no-progress``, nor with
    ``hexainst -q`` (only warnings and errors are shown). Sets ``args.progress``, which the stage configs read."""
    if hasattr(args, "progress") and getattr(args, VERBOSITY, 0) < 0:
        args.progress = False


def add_quiet_alias(parser: argparse._ActionsContainer) -> None:
    """``--quiet`` after ``analyze``, ``baseline`` and ``finetune``: the same as ``hexainst -q/--quiet`` before the
    command (only warnings and errors, no progress bars). Scripts from before ``hexainst -q`` existed wrote it
    there (it meant ``--no-progress``, which ``-q`` now includes), so it stays accepted, hidden from --help."""
    parser.add_argument("--quiet", dest=VERBOSITY, action="store_const", const=-1, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def config_from(args: argparse.Namespace, config: type, *, skip: Sequence[str] = (), **values: Any) -> Any:
    """``config(...)`` from every setting of ``config`` that ``args`` holds, plus ``values``. ``skip``: settings of
    the same name that ``args`` holds for another config (e.g. the whole build's ``per_category``)."""
    present = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
               if f.init and hasattr(args, f.name) and f.name not in values and f.name not in skip}
    present = {k: tuple(v) if isinstance(v, list) else v for k, v in present.items()}  # repeated options
    return config(**present, **values)


def flag_for(args: argparse.Namespace | None, setting: str) -> str:
    """The flag the command line gives ``setting`` (``--name-with-dashes`` when none was added)."""
    flags = getattr(args, FLAGS, None) or {}
    return flags.get(setting, "--" + setting.replace("_", "-"))


def help_of(config: type, name: str) -> str:
    """The help text of setting ``name`` of ``config``, for an option the shell writes by hand (e.g. a repeatable one)."""
    spec = spec_of(next(f for f in dataclasses.fields(config) if f.name == name))
    if spec is None:
        raise TypeError(f"{config.__name__}.{name} is not declared with hexainst.kernel.settings.setting")
    return spec.help
