"""Defaults in one place: endpoints, timeouts, retry knobs, input limits."""

from __future__ import annotations

from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_AFTER_MAX",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_BACKOFF_MAX",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_SENDER",
    "ISTANBUL",
    "MAX_ALPHANUMERIC_SENDER",
    "MAX_BODY_EXCERPT",
    "MAX_NUMERIC_SENDER",
    "REPORT_ENDPOINT",
    "SEND_ENDPOINT",
]

DEFAULT_BASE_URL = "https://vairosms.com/Panel/api/v1/"
SEND_ENDPOINT = "SmsGonder"
REPORT_ENDPOINT = "GonderimBilgisi"

ENV_API_KEY = "VAIRO_API_KEY"
ENV_SENDER = "VAIRO_SENDER"
ENV_BASE_URL = "VAIRO_BASE_URL"

#: Seconds for reading, writing and waiting for a pooled connection.
DEFAULT_TIMEOUT = 30.0
#: Seconds to establish a connection; short, because a failed connect is safe to retry.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Connections the default transport keeps open; 64 single sends in flight never queue.
DEFAULT_MAX_CONNECTIONS = 100

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

#: GSM alphanumeric originators hold 11 characters, numeric ones up to 16 digits.
MAX_ALPHANUMERIC_SENDER = 11
MAX_NUMERIC_SENDER = 16

#: How much of an unexpected response body an exception keeps.
MAX_BODY_EXCERPT = 1000

#: Wall-clock times on the wire are Turkish local time.
ISTANBUL = ZoneInfo("Europe/Istanbul")
