"""vairo-async: an asyncio SDK for the VairoSMS bulk-SMS API."""

from ._client import AsyncVairoClient
from ._errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    VairoError,
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

__all__ = [
    "APIError",
    "AsyncVairoClient",
    "AuthenticationError",
    "BatchOutcome",
    "BatchState",
    "BulkProgress",
    "BulkResult",
    "ClientClosedError",
    "ConfigurationError",
    "Encoding",
    "FailureLog",
    "InvalidRequestError",
    "Message",
    "OutcomeUnknownError",
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
    "WaitTimeoutError",
    "__version__",
    "segments",
    "transliterate_turkish",
]
