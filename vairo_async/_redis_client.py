"""A Redis client from a URL or the caller's, with its password kept out of every message.

`RedisJournal` and `RedisRateLimiter` open their server the same way through `open_redis`.
The `redis` package is imported only when one is made, so the SDK never needs it otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConfigurationError
from ._redact import REDACTED, scrub_exception

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisConnection", "open_redis", "redacted_url"]


def redacted_url(url: str) -> tuple[str, str]:
    """The URL with its password replaced, and the password ("" if none)."""
    parts = urlsplit(url)
    password = parts.password or ""
    if not password:
        return url, ""
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:{REDACTED}@{hostinfo}"
    return urlunsplit(parts._replace(netloc=netloc)), password


@attrs.frozen
class RedisConnection:
    """A Redis client, where it points (password removed), and whether we close it.

    Attributes:
        client: The client.
        where: The URL with its password replaced, or the client's host and port (or
            socket path) and database.
        password: The password, to remove from messages ("" if none).
        owns_client: The client was made from a URL, so `aclose` closes it.
        errors: The exceptions a command fails with: `redis.RedisError` and `OSError`.
    """

    client: redis.asyncio.Redis
    where: str
    password: str
    owns_client: bool
    errors: tuple[type[BaseException], ...]

    def failure(self, what: str, exc: BaseException) -> str:
        """Scrub the password from `exc`; the message that `what` could not be used."""
        if self.password:
            scrub_exception(exc, self.password)
        message = f"{what} at {self.where} could not be used: {exc}"
        if self.password:
            message = message.replace(self.password, REDACTED)
        return message

    async def aclose(self) -> None:
        """Close the client if it was made from a URL."""
        if self.owns_client:
            await self.client.aclose()


def open_redis(
    url_or_client: str | redis.asyncio.Redis, *, timeout: float, needed_by: str
) -> RedisConnection:
    """A client made from a `redis://` / `rediss://` / `unix://` URL, or the one given.

    Args:
        url_or_client: The URL, or a `redis.asyncio.Redis` the caller keeps and closes.
        timeout: Socket and connect timeout in seconds of a client made from a URL.
        needed_by: The class that needs it, for the message when `redis` is missing.

    Raises:
        ConfigurationError: The `redis` package is not installed, or the URL is not a Redis
            URL (named without its password).
    """
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise ConfigurationError(
            f"{needed_by} needs the redis package: pip install 'vairo-async[redis]'"
        ) from None
    errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError)
    if isinstance(url_or_client, str):
        where, password = redacted_url(url_or_client)
        try:
            client = aioredis.Redis.from_url(
                url_or_client, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"not a Redis URL: {where!r} ({exc})".replace(password or "\0", REDACTED)
            ) from None
        return RedisConnection(client, where, password, True, errors)
    kwargs = url_or_client.connection_pool.connection_kwargs
    host = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    password = str(kwargs.get("password") or "")
    return RedisConnection(
        url_or_client, f"{host} (db {kwargs.get('db', 0)})", password, False, errors
    )
