"""Defaults in one place: the base URL, timeouts, retry knobs, polling, input limits."""

from __future__ import annotations

from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_EXPIRY_GRACE",
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RETRY_AFTER_MAX",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_BACKOFF_MAX",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT_CONCURRENCY",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_SENDER",
    "ISTANBUL",
    "MAX_ALPHANUMERIC_SENDER",
    "MAX_BODY_EXCERPT",
    "MAX_NUMERIC_SENDER",
    "POLL_BACKOFF",
    "POLL_JITTER",
]

DEFAULT_BASE_URL = "https://vairosms.com/Panel/api/v1/"

ENV_API_KEY = "VAIRO_API_KEY"
ENV_SENDER = "VAIRO_SENDER"
ENV_BASE_URL = "VAIRO_BASE_URL"

#: Seconds for reading, writing and waiting for a pooled connection.
DEFAULT_TIMEOUT = 30.0
#: Seconds to establish a connection; short, because a failed connect is safe to retry.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Connections the default transport keeps open; 64 single sends in flight never queue.
DEFAULT_MAX_CONNECTIONS = 100
#: Seconds an idle connection is reused for: below the 5 s after which Apache, uvicorn and
#: Node close one. A send written as the server closes its connection gets no answer and
#: cannot be told from one that went out, so it would be reported as of unknown outcome.
DEFAULT_KEEPALIVE_EXPIRY = 4.0

DEFAULT_MAX_RETRIES = 3
#: First backoff in seconds; it doubles each retry, plus up to as much again of jitter.
DEFAULT_RETRY_BACKOFF = 0.5
DEFAULT_RETRY_BACKOFF_MAX = 8.0
#: The longest `Retry-After` honoured; a longer hint is raised to the caller instead.
DEFAULT_RETRY_AFTER_MAX = 60.0

#: Rows per SmsGonder call of a bulk campaign, at most.
DEFAULT_BATCH_SIZE = 1000
#: Batches of a bulk campaign in flight, at most.
DEFAULT_CONCURRENCY = 4

#: Seconds before the first poll: a package is seldom final within a second of its send.
DEFAULT_POLL_INTERVAL = 1.0
#: The longest interval between two polls of one package.
DEFAULT_MAX_POLL_INTERVAL = 30.0
#: Each interval is this many times the one before, up to the cap.
POLL_BACKOFF = 1.5
#: Each interval is shortened at random by up to this fraction of itself.
POLL_JITTER = 0.2
#: Seconds a package may stay unsettled after its validity ended before the wait gives up.
DEFAULT_EXPIRY_GRACE = 3600.0
#: Report requests in flight at most during one `wait_all`.
DEFAULT_WAIT_CONCURRENCY = 10

#: GSM alphanumeric originators hold 11 characters, numeric ones up to 16 digits.
MAX_ALPHANUMERIC_SENDER = 11
MAX_NUMERIC_SENDER = 16

#: How much of an unexpected response body an exception keeps.
MAX_BODY_EXCERPT = 1000

#: Wall-clock times on the wire are Turkish local time.
ISTANBUL = ZoneInfo("Europe/Istanbul")
