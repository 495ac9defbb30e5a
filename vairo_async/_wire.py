"""Wire <-> model conversion: one cattrs converter, and the reading of HTTP answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._constants import ISTANBUL, MAX_BODY_EXCERPT
from ._errors import APIError, UnexpectedResponseError, api_error_class
from ._models import FailureLog, Message, PackageId, PackageReport, PackageStatus
from ._redact import key_forms, redact, redact_value

__all__ = [
    "SendRequest",
    "converter",
    "decode",
    "dumps",
    "encode_send",
    "loads",
    "make_converter",
]

orjson: ModuleType | None
try:
    import orjson
except ImportError:  # a --no-deps install, or a platform without orjson wheels
    orjson = None


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON: orjson's, some twenty times faster than the json module's."""
    if orjson is not None:
        return orjson.dumps(payload)  # type: ignore[no-any-return]
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def loads(content: bytes) -> Any:
    """Parse JSON; raises ValueError for anything that is not JSON."""
    if orjson is not None:
        return orjson.loads(content)
    return json.loads(content)


T = TypeVar("T")

_INT = re.compile(r"-?[0-9]+")
_DURATION = re.compile(r"([0-9]+):([0-5][0-9]):([0-5][0-9])")
_NO_TIME = frozenset({"", "0000-00-00 00:00:00", "0000-00-00"})


@attrs.frozen
class _Envelope:
    """Every answer: `{"durum": bool, "aciklama": payload or error message}`."""

    durum: bool
    aciklama: Any


@attrs.frozen
class SendRequest:
    """The SmsGonder body; `tr_char` is left out when false, as the API's own example does."""

    baslik: str
    mesajlar: list[Message]
    tr_char: bool = False


def _structure_int(value: object, _: object) -> int:
    if type(value) is int:
        return value
    if type(value) is str and _INT.fullmatch(value):
        return int(value)
    raise ValueError(f"expected an integer or a string of digits, got {value!r}")


def _structure_package_id(value: object, _: object) -> PackageId:
    """The one rule for a package id, in a send's answer and in a report's `id`."""
    if type(value) is int or (type(value) is str and _INT.fullmatch(value)):
        number = int(value)
        if number > 0:
            return PackageId(number)
    raise ValueError(f"expected a package id (a positive integer), got {value!r}")


def _structure_bool(value: object, _: object) -> bool:
    if type(value) is bool:
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_str(value: object, _: object) -> str:
    if type(value) is str:
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _structure_datetime(value: object, _: object) -> datetime:
    if type(value) is not str:
        raise ValueError(f"expected a 'YYYY-MM-DD HH:MM:SS' string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=ISTANBUL)
    return parsed.astimezone(ISTANBUL)


def _structure_optional_datetime(value: object, _: object) -> datetime | None:
    if value is None or value in _NO_TIME:
        return None
    return _structure_datetime(value, _)


def _structure_timedelta(value: object, _: object) -> timedelta:
    match = _DURATION.fullmatch(value) if type(value) is str else None
    if match is None:
        raise ValueError(f"expected an 'HH:MM:SS' duration, got {value!r}")
    hours, minutes, seconds = map(int, match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _structure_status(value: object, _: object) -> PackageStatus:
    return PackageStatus(_structure_int(value, _))


def _keeping_raw(
    base: Callable[[Mapping[str, Any], Any], T],
) -> Callable[[Mapping[str, Any], Any], T]:
    """Wrap a generated hook so the model also keeps every wire field in `raw`."""

    def structure(data: Mapping[str, Any], cls: Any) -> T:
        if not isinstance(data, Mapping):
            raise ValueError(f"expected an object, got {data!r}")
        return attrs.evolve(base(data, cls), raw=dict(data))  # type: ignore[misc]

    return structure


# Model attribute -> wire field, where they differ.
_REPORT_NAMES = {
    "package_id": "id",
    "sender": "sms_baslik",
    "recipient_count": "numara_toplam",
    "credits": "kredi_toplam",
    "expires_at": "sonlanma_zamani",
    "scheduled_at": "ileri_tarih",
    "validity": "gecerlilik_suresi",
    "status": "paket_durum",
    "failure": "log",
}
_LOG_NAMES = {"message": "mesaj", "kind": "tip", "section": "bolum", "route": "rota"}
_WIRE_NAMES = {**_REPORT_NAMES, **_LOG_NAMES}
_PATH_PART = re.compile(r"(?<=\.)[a-z_]+")


def configure_converter(c: cattrs.Converter) -> None:
    """Teach `c` the VairoSMS wire rules.

    - int: an int or a string of digits (the send answer's id arrives either way); no bools.
    - PackageId (a send's answer, a report's `id`): such an int, and positive; -5 or 0 is
      an unexpected answer (for a send, an unknown outcome), never a package.
    - bool: only true or false; str: only a string (a number is a wrong type, not its digits).
    - datetime: "YYYY-MM-DD HH:MM:SS" is Europe/Istanbul wall-clock time -> aware datetime.
    - datetime | None: "0000-00-00 00:00:00", "" and null mean no time -> None.
    - timedelta: "HH:MM:SS", hours may exceed 24 ("36:30:00").
    - PackageStatus: `paket_durum`; a value with no name becomes UNKNOWN_<n>, never an error.
    - PackageReport and FailureLog: Turkish wire names renamed; unknown fields kept in `raw`.
    - Message unstructures to {"msg", "dest"}, its `ref` never sent; SendRequest omits
      `tr_char` when false.
    """
    c.register_structure_hook(int, _structure_int)
    c.register_structure_hook(PackageId, _structure_package_id)
    c.register_structure_hook(bool, _structure_bool)
    c.register_structure_hook(str, _structure_str)
    c.register_structure_hook(datetime, _structure_datetime)
    c.register_structure_hook_func(lambda t: t == (datetime | None), _structure_optional_datetime)
    c.register_structure_hook(timedelta, _structure_timedelta)
    c.register_structure_hook(PackageStatus, _structure_status)

    for cls, names in ((FailureLog, _LOG_NAMES), (PackageReport, _REPORT_NAMES)):
        renames: dict[str, Any] = {field: override(rename=wire) for field, wire in names.items()}
        if cls is PackageReport:
            renames["package_id"] = override(rename="id", struct_hook=_structure_package_id)
        c.register_structure_hook(
            cls, _keeping_raw(make_dict_structure_fn(cls, c, raw=override(omit=True), **renames))
        )
    c.register_unstructure_hook(
        Message,
        make_dict_unstructure_fn(
            Message,
            c,
            to=override(rename="dest"),
            text=override(rename="msg"),
            ref=override(omit=True),
        ),
    )
    c.register_unstructure_hook(
        SendRequest,
        make_dict_unstructure_fn(SendRequest, c, _cattrs_omit_if_default=True),
    )


def make_converter() -> cattrs.Converter:
    """A fresh converter with every wire rule of `configure_converter`."""
    c = cattrs.Converter()
    configure_converter(c)
    return c


converter = make_converter()


def encode_send(sender: str, messages: list[Message], tr_char: bool) -> bytes:
    """The SmsGonder request body as UTF-8 JSON.

    Byte for byte what the converter makes of `SendRequest(sender, messages, tr_char)` (the
    tests hold the two equal), written out here because the converter's hook call per row
    costs more than the row's dictionary itself, and a campaign encodes every row.
    """
    if orjson is not None and len(messages) >= _VERBATIM_FROM and type(tr_char) is bool:
        body = _encode_verbatim(orjson, sender, messages, tr_char)
        if body is not None:
            return body
    payload: dict[str, Any] = {
        "baslik": sender,
        "mesajlar": [{"dest": message.to, "msg": message.text} for message in messages],
    }
    if tr_char:
        payload["tr_char"] = tr_char
    return dumps(payload)


# Below this many rows, checking them costs more than the dictionaries it saves.
_VERBATIM_FROM = 32
_BETWEEN = '","msg":"'
_NEXT = '"},{"dest":"'


def _encode_verbatim(
    codec: ModuleType, sender: str, messages: list[Message], tr_char: bool
) -> bytes | None:
    """The SmsGonder body spliced from the rows' own strings, if JSON carries them verbatim.

    That holds when every number and text is ASCII with nothing JSON escapes (a quote, a
    backslash, a control character): exactly when each list's JSON is its characters plus
    two quotes and a comma apiece, which one encoder call per list tells. A campaign's rows
    are mostly such; the splice skips building a dictionary per row. None for any other.
    """
    count = len(messages)
    numbers = [message.to for message in messages]
    texts = [message.text for message in messages]
    try:
        verbatim = count and all(
            len(codec.dumps(strings)) == len("".join(strings)) + 3 * count + 1
            for strings in (numbers, texts)
        )
    except TypeError:  # not strings: the general path encodes (or refuses) them
        return None
    if not verbatim:
        return None
    parts = [_BETWEEN] * (4 * count - 1)
    parts[0::4] = numbers
    parts[2::4] = texts
    parts[3::4] = [_NEXT] * (count - 1)
    return b"".join(
        (
            b'{"baslik":',
            codec.dumps(sender),
            b',"mesajlar":[{"dest":"',
            "".join(parts).encode("ascii"),
            b'"}],"tr_char":true}' if tr_char else b'"}]}',
        )
    )


_NOT_JSON = object()
_BOM = b"\xef\xbb\xbf"


def _loads(content: bytes) -> Any:
    """An answer's JSON, past one UTF-8 BOM (PHP back ends may emit one); or `_NOT_JSON`."""
    try:
        return loads(content.removeprefix(_BOM))
    except ValueError:
        return _NOT_JSON


def _excerpt(content: bytes, secret: str) -> str:
    # Redacted before the cut, over enough text that a key straddling the cut is whole.
    forms = key_forms(secret)
    room = MAX_BODY_EXCERPT + (len(forms[0]) if forms else 0)
    text = content[: room * 4].decode("utf-8", "replace")[:room]
    return redact(text, secret)[:MAX_BODY_EXCERPT]


def _shape_error(
    exc: Exception, status: int, content: bytes, secret: str
) -> UnexpectedResponseError:
    if isinstance(exc, cattrs.BaseValidationError):
        # Name fields as the wire does ("$.kredi_toplam"), not as the model does.
        detail = _PATH_PART.sub(
            lambda m: _WIRE_NAMES.get(m[0], m[0]), "; ".join(cattrs.transform_error(exc))
        )
    else:
        detail = str(exc)
    return UnexpectedResponseError(
        redact(f"HTTP {status} answer does not match the documented shape: {detail}", secret),
        status_code=status,
        body=_excerpt(content, secret),
    )


_SHAPE_ERRORS = (cattrs.BaseValidationError, ValueError, TypeError, KeyError)


def decode(
    status: int,
    content: bytes,
    retry_after: float | None,
    target: type[T],
    secret: str,
    echoes: Mapping[str, object] | None = None,
) -> T:
    """Turn an HTTP answer into `target`, or raise the `VairoError` it amounts to.

    `echoes` maps attributes of the decoded answer to the values they must hold (the
    package id a report was asked for).

    Raises:
        APIError: `durum: false`, or an HTTP error status (the subclass follows the status).
        UnexpectedResponseError: A success status whose body is not the documented shape,
            or whose answer is not about what was asked.
    """
    payload = _loads(content)
    envelope: _Envelope | None = None
    shape_error: Exception | None = None
    if payload is not _NOT_JSON:
        try:
            envelope = converter.structure(payload, _Envelope)
        except _SHAPE_ERRORS as exc:
            shape_error = exc
    if 200 <= status < 300:
        if envelope is None:
            if shape_error is not None:
                raise _shape_error(shape_error, status, content, secret) from None
            raise UnexpectedResponseError(
                f"HTTP {status} answer is not JSON",
                status_code=status,
                body=_excerpt(content, secret),
            )
        if not envelope.durum:
            raise APIError(
                _message(envelope.aciklama, secret),
                status_code=status,
                body=_excerpt(content, secret),
            )
        try:
            answer = converter.structure(envelope.aciklama, target)
        except _SHAPE_ERRORS as exc:
            shape_error = exc
        else:
            for name, asked in (echoes or {}).items():
                if (got := getattr(answer, name)) != asked:
                    raise UnexpectedResponseError(
                        f"HTTP {status} answer is about {name}={got!r}, "
                        f"not the {asked!r} asked for",
                        status_code=status,
                        body=_excerpt(content, secret),
                    )
            if isinstance(answer, PackageReport):
                return _redacted_report(answer, secret)  # type: ignore[return-value]
            return answer
        # Raised outside the except clause: the converter's error, which may quote the key,
        # is not kept as a hidden context.
        assert shape_error is not None
        raise _shape_error(shape_error, status, content, secret)
    if envelope is not None and not envelope.durum:
        message = _message(envelope.aciklama, secret)
    elif payload is _NOT_JSON:
        message = "answer is not JSON (a proxy or server error page?)"
    else:
        message = "answer without a VairoSMS error message"
    raise api_error_class(status)(
        message, status_code=status, body=_excerpt(content, secret), retry_after=retry_after
    )


def _redacted_report(report: PackageReport, secret: str) -> PackageReport:
    """`report` without the client's key, nor any `api_key=` value, in any of its strings.

    A failed package's log may carry the key or the URL called (`api`, `rota`).
    """
    raw = redact_value(report.raw, secret)
    if raw == report.raw:  # the usual case: every string the model holds comes from `raw`
        return report
    failure = report.failure
    if failure is not None:
        failure = attrs.evolve(
            failure,
            **{
                field.name: redact_value(getattr(failure, field.name), secret)
                for field in attrs.fields(FailureLog)
                if field.name in _LOG_TEXT
            },
        )
    return attrs.evolve(report, failure=failure, raw=raw)


_LOG_TEXT = frozenset({"message", "kind", "section", "api", "route", "ip", "context", "raw"})


def _message(aciklama: object, secret: str) -> str:
    text = aciklama if isinstance(aciklama, str) else json.dumps(aciklama, ensure_ascii=False)
    return redact(text, secret)
