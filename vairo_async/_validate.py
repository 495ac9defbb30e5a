"""Input rules, shared by single sends and bulk campaigns, and `Problems`, which collects
every bad argument of a call or a configuration into one error."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeGuard, TypeVar

from ._constants import MAX_ALPHANUMERIC_SENDER, MAX_NUMERIC_SENDER
from ._errors import ConfigurationError, InvalidRequestError
from ._models import Message
from ._phone import in_wire_form, normalize_number

__all__ = ["Problems", "check_message", "check_sender", "describe", "is_number"]

P = ParamSpec("P")
T = TypeVar("T")

_MAX_SHOWN = 40
# Half of a UTF-16 surrogate pair on its own: not a character, and not encodable as UTF-8.
_UNSENDABLE = re.compile("[\ud800-\udfff]")


def describe(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    shown = repr(value)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + "...'"


def is_number(value: object) -> TypeGuard[int | float]:
    """True for a finite int or float; a bool is not a number here, nor an int too large to
    be a float (every duration and rate is used as a float)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


class Problems:
    """Every problem found in a set of arguments, raised together as one error.

    Each check appends one line naming the bad value and what it must be, so one error
    lists every mistake and the caller fixes them all at once.

    Args:
        error: What `check` raises: `InvalidRequestError` for a call's arguments,
            `ConfigurationError` for the client's.
    """

    def __init__(self, error: type[InvalidRequestError | ConfigurationError]) -> None:
        self._error = error
        self.lines: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.lines)

    def add(self, line: str) -> None:
        """Record one problem."""
        self.lines.append(line)

    def extend(self, lines: Iterable[str]) -> None:
        """Record several problems."""
        self.lines.extend(lines)

    def integer(self, name: str, value: object, *, minimum: int) -> bool:
        """Record a problem unless `value` is an int (not a bool) of at least `minimum`.

        Returns:
            Whether `value` passed.
        """
        if type(value) is int and value >= minimum:
            return True
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        self.add(f"{name}={describe(value)}: must be {what}")
        return False

    def number(
        self,
        name: str,
        value: object,
        *,
        minimum: float = 0.0,
        strict: bool = False,
        optional: bool = False,
        what: str = "",
    ) -> bool:
        """Record a problem unless `value` is a finite number `>= minimum` (`>` if `strict`),
        or None when `optional`.

        Args:
            name: The argument's name, as the caller spells it.
            value: Its value.
            minimum: The smallest allowed value (excluded when `strict`).
            strict: Whether `minimum` itself is refused.
            optional: Whether None is allowed.
            what: How `minimum` reads in the message, e.g. "retry_backoff (0.5)".

        Returns:
            Whether `value` passed (None included, when `optional`).
        """
        if value is None and optional:
            return True
        if is_number(value) and (value > minimum if strict else value >= minimum):
            return True
        bound = f"{'>' if strict else '>='} {what or f'{minimum:g}'}"
        self.add(f"{name}={describe(value)}: must be a number {bound}{', or None' * optional}")
        return False

    def build(self, make: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
        """`make(*args, **kwargs)`, or None with its problems recorded if it raised this
        collection's error (a settings class that checks itself, for example)."""
        try:
            return make(*args, **kwargs)
        except self._error as exc:
            self.extend(exc.problems)
            return None

    def check(self) -> None:
        """Raise the error listing every problem recorded, if there is any.

        Raises:
            InvalidRequestError | ConfigurationError: The `error` given at construction.
        """
        if self.lines:
            raise self._error(self.lines)


def check_sender(sender: object) -> str:
    """Return the sender (`baslik`) if it is usable.

    Raises:
        ValueError: With the reason: missing, empty, or longer than GSM allows.
    """
    if sender is None:
        raise ValueError("no sender: pass sender= or set VAIRO_SENDER")
    if not isinstance(sender, str):
        raise ValueError(f"sender must be a string, not {type(sender).__name__}")
    if not sender.strip():
        raise ValueError("empty sender")
    # Numeric means ASCII digits: str.isdigit() also holds for other scripts' digits.
    numeric = sender.isascii() and sender.isdigit()
    limit = MAX_NUMERIC_SENDER if numeric else MAX_ALPHANUMERIC_SENDER
    if len(sender) > limit:
        raise ValueError(f"sender longer than {limit} characters")
    return sender


def check_message(message: object) -> Message:
    """Return the message with its number in wire form.

    Raises:
        TypeError: `message` is not a `Message`.
        ValueError: With every reason the message is unusable, joined by "; ".
    """
    if not isinstance(message, Message):
        raise TypeError(f"expected a Message, not {type(message).__name__}: {describe(message)}")
    to, text = message.to, message.text
    # Most rows are already in wire form with plain text: checked without the general path.
    if (
        in_wire_form(to)
        and type(text) is str
        and text
        and not text.isspace()
        and (text.isascii() or _UNSENDABLE.search(text) is None)
    ):
        return message
    reasons = []
    try:
        to = normalize_number(to)
    except ValueError as exc:
        reasons.append(f"to={describe(message.to)}: {exc}")
    if not isinstance(text, str):
        reasons.append(f"text must be a string, not {type(text).__name__}")
    elif not text or text.isspace():
        reasons.append(f"text={describe(text)}: empty text")
    elif not text.isascii() and _UNSENDABLE.search(text):
        reasons.append(f"text={describe(text)}: holds a lone surrogate, which no SMS can carry")
    if reasons:
        raise ValueError("; ".join(reasons))
    return message if to == message.to else Message(to=to, text=text)
