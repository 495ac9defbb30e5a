"""The emulator's answers in VairoSMS's wire shapes: report objects, failure logs, error pages."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import attrs

from .._constants import ISTANBUL
from . import _texts as t
from ._state import FAILED, Package

__all__ = [
    "NOT_SCHEDULED",
    "Answer",
    "error",
    "format_validity",
    "format_wall_time",
    "html_page",
    "report_body",
    "report_object",
    "server_error",
    "success",
]

NOT_SCHEDULED = "0000-00-00 00:00:00"
"""`ileri_tarih` of a package sent immediately."""

_JSON = (b"content-type", b"application/json; charset=utf-8")


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


@attrs.frozen
class Answer:
    """A complete HTTP answer: status, headers and body."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = (_JSON,)

    def with_header(self, name: str, value: str) -> Answer:
        """A copy with one more header."""
        return attrs.evolve(self, headers=(*self.headers, (name.encode(), value.encode())))


def _json(status: int, payload: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def success(aciklama: Any) -> Answer:
    """`{"durum": true, "aciklama": ...}` with HTTP 200."""
    return _json(200, {"durum": True, "aciklama": aciklama})


def error(status: int, message: str) -> Answer:
    """`{"durum": false, "aciklama": message}` with `status`."""
    return _json(status, {"durum": False, "aciklama": message})


def server_error(status: int) -> Answer:
    """A 5xx answer with a JSON `durum: false` body in Turkish."""
    return error(status, t.SERVER_ERRORS.get(status, t.SERVER_ERRORS[500]))


def html_page(status: int) -> Answer:
    """The kind of bare error page a reverse proxy serves when the backend is unreachable."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Answer(status, page.encode(), ((b"content-type", b"text/html"),))


def format_wall_time(moment: datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS` in Istanbul time; a naive datetime is taken as Istanbul time."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(ISTANBUL)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_validity(validity: timedelta) -> str:
    """`HH:MM:SS` with hours past 24 when needed, as `gecerlilik_suresi` is written."""
    seconds = int(validity.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def report_body(
    package: Package, *, validity: timedelta, id_as_string: bool = False
) -> dict[str, Any]:
    """The `aciklama` object of GonderimBilgisi: every field of the API's documented sample
    report, plus `log`."""
    failed = package.status == FAILED
    return report_object(
        package_id=str(package.package_id) if id_as_string else package.package_id,
        sender=package.sender,
        recipients=len(package.messages),
        credits=0 if failed else package.credits,
        created_at=package.created_at,
        validity=validity,
        status=package.status,
        log=_failure_log(package, format_wall_time(package.created_at)) if failed else None,
    )


def report_object(
    *,
    package_id: int | str,
    sender: str,
    recipients: int,
    credits: int,
    created_at: datetime,
    validity: timedelta,
    status: int,
    log: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A report's wire fields from plain values; `report_body` fills them from a `Package`."""
    return {
        "id": package_id,
        "sms_baslik": sender,
        "numara_toplam": recipients,
        "kredi_toplam": credits,
        "sonlanma_zamani": format_wall_time(created_at + validity),
        "ileri_tarih": NOT_SCHEDULED,
        "gecerlilik_suresi": format_validity(validity),
        "paket_durum": status,
        "created_at": format_wall_time(created_at),
        "log": log,
    }


def _failure_log(package: Package, created: str) -> dict[str, Any]:
    return {
        "id": package.log_id,
        "user_id": 1,
        "mesaj": t.FAILURE_LOG.format(package_id=package.package_id, code=package.failure_code),
        "tip": "error",
        "bolum": "sms",
        "api": "",
        "rota": package.route,
        "ip": package.client_ip,
        "context": "",
        "created_at": created,
        "updated_at": created,
    }
