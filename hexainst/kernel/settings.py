"""Settings declared once: a config dataclass field carries its default, help text and range.

A stage's config is a frozen dataclass whose fields are made with :func:`setting`::

    @dataclass(frozen=True)
    class SyntheticConfig:
        candidates: int = setting(2, "candidates generated per slot", low=1, high=16)

From that one declaration :func:`check_ranges` checks a value (raising :class:`SettingError`, which
names the *setting*, never a command-line flag), and the shell builds its options
(``hexainst.cli.options.add_settings``): the flag, its type, its range checked at parse time, and
its help with the default. The config knows nothing about argparse; the shell turns a setting's
name into its flag when it prints a :class:`SettingError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hexainst.kernel.errors import UserError

#: Key of a field's metadata that holds its setting description.
KEY = "hexainst.setting"


class SettingError(UserError, ValueError):
    """A setting's value is out of range: ``setting`` is the field name, ``problem`` what is wrong."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting} {problem}")

    def naming(self, flag: str) -> str:
        """The message with the setting called by ``flag`` (how the shell prints it)."""
        return f"{flag} {self.problem}"


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one setting accepts, and the sentence that explains it."""

    help: str
    low: float | None = None
    high: float | None = None
    #: ``low`` itself is not allowed (``> low``), e.g. a timeout.
    low_open: bool = False
    #: ``high`` itself is not allowed (``< high``), e.g. a fraction in (0, 1).
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None

    def describe(self, integer: bool) -> str | None:
        """``in 1..16``, ``>= 1``, ``in (0, 1]``, ``> 0`` or ``one of a, b``; None without a rule."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        low, high = self.low, self.high
        if low is None and high is None:
            return None

        def num(v: float) -> str:
            return str(int(v)) if integer or float(v).is_integer() else f"{v:g}"

        if low is not None and high is not None:
            if integer and not self.low_open and not self.high_open:
                return f"in {num(low)}..{num(high)}"
            return f"in {'(' if self.low_open else '['}{num(low)}, {num(high)}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{'>' if self.low_open else '>='} {num(low)}"
        return f"{'<' if self.high_open else '<='} {num(high)}"  # type: ignore[arg-type]

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (``must be in 1..16, got 0``), or None when it is."""
        if value is None:
            return None
        if isinstance(value, tuple):  # a list setting: each item in range
            return next((p for p in map(self.problem, value) if p is not None), None)
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.describe(False)}, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above or value != value:  # NaN is in no range
            return f"must be {self.describe(isinstance(value, int))}, got {value}"
        return None


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with its help and range (see the module docstring)."""
    spec = Spec(help=help, low=low, high=high, low_open=low_open, high_open=high_open,
                choices=tuple(choices) if choices is not None else None, metavar=metavar)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={KEY: spec})
    return dataclasses.field(default=default, metadata={KEY: spec})


def spec_of(field: dataclasses.Field) -> Spec | None:
    """The setting description of a dataclass field, or None for a plain field."""
    return field.metadata.get(KEY)


def check_ranges(config: Any) -> None:
    """Raise :class:`SettingError` for the first field of ``config`` whose value is out of its range."""
    for field in dataclasses.fields(config):
        spec = spec_of(field)
        if spec is None:
            continue
        problem = spec.problem(getattr(config, field.name))
        if problem is not None:
            raise SettingError(field.name, problem)
