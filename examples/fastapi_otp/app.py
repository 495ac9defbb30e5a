"""A FastAPI service that sends one-time codes through VairoSMS, safely under retries.

Run it against the emulator (or, with a real key and no `VAIRO_BASE_URL`, the real service)
after `pip install -e ".[examples]"`, from the repository's root:

    python -m vairo_async.testing --port 8080 &
    export VAIRO_BASE_URL=http://127.0.0.1:8080/Panel/api/v1/ VAIRO_API_KEY=test-api-key
    export VAIRO_SENDER=ACME OTP_JOURNAL_PATH=otp-journal.sqlite3
    uvicorn examples.fastapi_otp.app:app --workers 2
    curl -i -H "Idempotency-Key: signup-42" -H "Content-Type: application/json" \
        -d '{"phone": "0539 999 99 99", "code": "123456"}' http://127.0.0.1:8000/otp

- One `AsyncVairoClient` per process, and one `SqliteJournal` at `$OTP_JOURNAL_PATH`, opened
  by the lifespan and closed when the server stops; `get_vairo` hands the client to endpoints.
- The request's `Idempotency-Key` is the send's `idempotency_key=`: the same key with the
  same body sends one SMS however often it arrives, concurrently or from another worker
  (they share the SQLite file), and a repeat gets the first answer with `"replayed": true`.
  The caller chooses the code, so a retried request carries the same text. Keys are global
  to the journal (prefix them with the caller's identity if there are several callers).
  Without the header the code is sent with no such protection.
- Answers: 202 sent; 422 bad input, or the key reused for another body; 409 the same key in
  flight; 503 certainly not sent, retry (after `Retry-After` when VairoSMS gave one); 502
  the SMS may have gone out: do not resend.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, TypedDict

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from vairo_async import (
    APIError,
    AsyncVairoClient,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    SendInProgressError,
    SqliteJournal,
    VairoError,
)

__all__ = ["OtpRequest", "OtpSent", "app", "error_response", "get_vairo", "lifespan"]

# A child of uvicorn's logger, so that uvicorn's handlers print it; under another server,
# configure logging as usual.
log = logging.getLogger("uvicorn.error.otp")


class State(TypedDict):
    """What the lifespan shares with every request (`request.state`)."""

    vairo: AsyncVairoClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    """One client and its journal for the life of the process, closed at shutdown.

    `AsyncVairoClient()` reads `VAIRO_API_KEY`, `VAIRO_SENDER` and `VAIRO_BASE_URL`; a
    missing key stops the start-up with a `ConfigurationError`.
    """
    path = os.environ.get("OTP_JOURNAL_PATH", "otp-journal.sqlite3")
    async with SqliteJournal(path) as journal, AsyncVairoClient(journal=journal) as vairo:
        log.info("VairoSMS client open: %r, journal %r", vairo, journal)
        yield {"vairo": vairo}
    log.info("VairoSMS client and journal closed")


def get_vairo(request: Request) -> AsyncVairoClient:
    """The application's client, for `Depends`: never one per request."""
    vairo: AsyncVairoClient = request.state.vairo
    return vairo


Vairo = Annotated[AsyncVairoClient, Depends(get_vairo)]


class OtpRequest(BaseModel):
    """A code to send to a phone."""

    phone: str = Field(description="a Turkish mobile number, in any common spelling")
    code: str = Field(pattern=r"^[0-9]{4,8}$", description="the code, 4 to 8 digits")


class OtpSent(BaseModel):
    """The package VairoSMS accepted; `replayed` when an earlier request with the key sent it."""

    package_id: int
    replayed: bool


app = FastAPI(title="One-time codes over VairoSMS", lifespan=lifespan)


@app.post("/otp", status_code=202)
async def send_otp(
    otp: OtpRequest,
    vairo: Vairo,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> OtpSent:
    """Send the code; failures are answered by `error_response`."""
    submission = await vairo.send(
        f"Doğrulama kodunuz: {otp.code}", to=otp.phone, idempotency_key=idempotency_key
    )
    return OtpSent(package_id=submission.package_id, replayed=submission.replayed)


@app.get("/health")
async def health() -> dict[str, object]:
    """Up and serving; `pid` tells the workers of `uvicorn --workers N` apart."""
    return {"status": "ok", "pid": os.getpid()}


def error_response(exc: VairoError) -> JSONResponse:
    """What the caller should do: fix the request (4xx), retry (503) or not resend (502)."""
    error = type(exc).__name__
    if isinstance(exc, InvalidRequestError):
        return JSONResponse({"detail": list(exc.problems), "error": error}, status_code=422)
    if isinstance(exc, IdempotencyKeyReusedError):
        detail = "this Idempotency-Key was used for another request; nothing was sent"
        return JSONResponse({"detail": detail, "error": error}, status_code=422)
    if isinstance(exc, SendInProgressError):
        detail = "a request with this Idempotency-Key is in progress; retry it shortly"
        headers = {"Retry-After": "1"}
        return JSONResponse({"detail": detail, "error": error}, status_code=409, headers=headers)
    if exc.certainly_not_sent:
        log.warning("one-time code not sent: %s", exc)
        headers = {}
        if isinstance(exc, APIError) and exc.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(exc.retry_after))
        detail = "the SMS was not sent; retry later"
        return JSONResponse({"detail": detail, "error": error}, status_code=503, headers=headers)
    log.error("one-time code may or may not have been sent: %s", exc)
    detail = "the SMS may have been sent: do not resend"
    return JSONResponse({"detail": detail, "error": error}, status_code=502)


@app.exception_handler(VairoError)
async def vairo_error(request: Request, exc: VairoError) -> JSONResponse:
    """Every SDK error, answered by `error_response`."""
    return error_response(exc)
