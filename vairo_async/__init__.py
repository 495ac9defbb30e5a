"""vairo-async: an asyncio SDK for the VairoSMS bulk-SMS API."""

import logging as _logging
import types as _types

import attrs as _attrs

from ._bulk import Messages, ProgressHook
from ._client import AsyncVairoClient
from ._errors import (
    APIError,
    AuthenticationError,
    BulkInputError,
    CampaignMismatchError,
    ClaimLostError,
    ClientClosedError,
    ConfigurationError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    JournalError,
    JournalUnavailableError,
    OutcomeUnknownError,
    PackageExpiredError,
    RateLimiterError,
    RateLimitError,
    SendInProgressError,
    SentNotRecordedError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
    WaitAllError,
    WaitTimeoutError,
    WrongEventLoopError,
)
from ._journal import (
    Claim,
    Journal,
    JournalRecord,
    MemoryJournal,
    RecordState,
    RedisJournal,
    SqliteJournal,
)
from ._models import (
    BatchOutcome,
    BatchState,
    BulkProgress,
    BulkResult,
    FailureLog,
    Message,
    PackageReport,
    PackageStatus,
    Rejection,
    Submission,
)
from ._rate import RateLimiter, RedisRateLimiter
from ._segments import Encoding, Segments, segments, transliterate_turkish
from ._version import __version__

# A library logs, the application decides where to: no output unless logging is configured.
_logging.getLogger("vairo_async").addHandler(_logging.NullHandler())

__all__ = [
    "APIError",
    "AsyncVairoClient",
    "AuthenticationError",
    "BatchOutcome",
    "BatchState",
    "BulkInputError",
    "BulkProgress",
    "BulkResult",
    "CampaignMismatchError",
    "Claim",
    "ClaimLostError",
    "ClientClosedError",
    "ConfigurationError",
    "Encoding",
    "FailureLog",
    "IdempotencyKeyReusedError",
    "InvalidRequestError",
    "Journal",
    "JournalError",
    "JournalRecord",
    "JournalUnavailableError",
    "MemoryJournal",
    "Message",
    "Messages",
    "OutcomeUnknownError",
    "PackageExpiredError",
    "PackageReport",
    "PackageStatus",
    "ProgressHook",
    "RateLimitError",
    "RateLimiter",
    "RateLimiterError",
    "RecordState",
    "RedisJournal",
    "RedisRateLimiter",
    "Rejection",
    "Segments",
    "SendInProgressError",
    "SentNotRecordedError",
    "ServerError",
    "SqliteJournal",
    "Submission",
    "TransportError",
    "UnexpectedResponseError",
    "VairoError",
    "WaitAllError",
    "WaitTimeoutError",
    "WrongEventLoopError",
    "__version__",
    "segments",
    "transliterate_turkish",
]

# Tracebacks and reprs name the public path (`vairo_async.OutcomeUnknownError`), not the private
# module. Field types are resolved first, against the modules that define them, so tools that
# read them later (cattrs, attrs.resolve_types) do not look them up in this namespace.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _attrs.has(_value):
        _attrs.resolve_types(_value)
    if isinstance(_value, type | _types.FunctionType):
        _value.__module__ = __name__
del _name, _value
