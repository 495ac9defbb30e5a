"""vairo-async: an asyncio SDK for the VairoSMS bulk-SMS API."""

import logging as _logging

from ._client import AsyncVairoClient
from ._errors import (
    APIError,
    AuthenticationError,
    BulkInputError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    PackageExpiredError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
    WaitAllError,
    WaitTimeoutError,
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
    "ClientClosedError",
    "ConfigurationError",
    "Encoding",
    "FailureLog",
    "InvalidRequestError",
    "Message",
    "OutcomeUnknownError",
    "PackageExpiredError",
    "PackageReport",
    "PackageStatus",
    "RateLimitError",
    "Rejection",
    "Segments",
    "ServerError",
    "Submission",
    "TransportError",
    "UnexpectedResponseError",
    "VairoError",
    "WaitAllError",
    "WaitTimeoutError",
    "__version__",
    "segments",
    "transliterate_turkish",
]
