"""The API's endpoints, each described once: the client, its retry policy and the emulator
read these descriptions instead of spelling names, methods and paths out themselves.

Adding an endpoint means one `Endpoint` here and one client method calling `_request` with it.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

import attrs

from ._models import PackageId, PackageReport

__all__ = ["ENDPOINTS", "REPORT", "SEND", "Endpoint"]

T = TypeVar("T", covariant=True)

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _placeholders(endpoint: Endpoint[object]) -> tuple[str, ...]:
    return tuple(_PLACEHOLDER.findall(endpoint.path))


def _path_pattern(endpoint: Endpoint[object]) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(endpoint.path)
    # split() alternates literal text and placeholder names: each name matches one segment.
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


@attrs.frozen(kw_only=True)
class Endpoint(Generic[T]):
    """One endpoint of the VairoSMS API.

    Attributes:
        name: Its name in the API document and in log lines, e.g. "SmsGonder".
        method: The HTTP method.
        path: The path below the base URL; `{name}` stands for one path segment given per
            call (e.g. "GonderimBilgisi/{package_id}").
        sends_sms: Whether a call may send SMS. Such a call is retried only when the server
            certainly did not act on it, and an ambiguous failure is an `OutcomeUnknownError`;
            any other call is retried on every transient failure.
        answer: The type a success answer's `aciklama` is decoded into.
        echoes: Path arguments the answer carries back, as attributes of the same name; an
            answer holding another value is unexpected (the report of another package).
        placeholders: The names of the path's placeholders, in order (derived from `path`).
    """

    name: str
    method: str
    path: str
    sends_sms: bool
    answer: type[T]
    echoes: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = attrs.field(
        init=False, eq=False, default=attrs.Factory(_placeholders, takes_self=True)
    )
    _pattern: re.Pattern[str] = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_path_pattern, takes_self=True)
    )

    def path_for(self, **arguments: object) -> str:
        """The path with each placeholder filled in.

        Raises:
            ValueError: An argument is missing, unexpected, empty or holds a "/".
        """
        if set(arguments) != set(self.placeholders):
            raise ValueError(
                f"{self.name} takes path arguments {self.placeholders}, got {tuple(arguments)}"
            )
        values = {name: str(value) for name, value in arguments.items()}
        for name, value in values.items():
            if not value or "/" in value:
                raise ValueError(f"{self.name}: {name}={value!r} is not one path segment")
        return self.path.format(**values)

    def match(self, path: str) -> dict[str, str] | None:
        """The path arguments if `path` (below the base URL) is this endpoint's, else None.

        A trailing "/" is ignored, as the service ignores it.
        """
        found = self._pattern.fullmatch(path.rstrip("/"))
        return None if found is None else found.groupdict()


SEND: Endpoint[int] = Endpoint(
    name="SmsGonder", method="POST", path="SmsGonder", sends_sms=True, answer=PackageId
)
"""Send one package of messages; the answer is its package id (a positive integer)."""

REPORT: Endpoint[PackageReport] = Endpoint(
    name="GonderimBilgisi",
    method="GET",
    path="GonderimBilgisi/{package_id}",
    sends_sms=False,
    answer=PackageReport,
    echoes=("package_id",),
)
"""One package's report."""

ENDPOINTS: tuple[Endpoint[object], ...] = (SEND, REPORT)
"""Every endpoint, for code that routes by path (the emulator)."""
