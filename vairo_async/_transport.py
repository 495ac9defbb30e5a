"""The default HTTP stack: an httpx transport that sends through aiohttp, and the SDK's client.

httpx stays the interface (hooks, timeouts, a caller's own client all work as usual), but
aiohttp's connection pool and parser cost several times less CPU per request than
httpcore's. httpx-aiohttp does the same, but maps a server that closed the connection
mid-request to `httpx.ConnectTimeout`: to a retry policy that would mean "never reached the
server" and a resent SMS. This transport maps every aiohttp failure to the httpx exception
that says what is known: only a failure to connect says the request never left.

`make_http_client` builds the `httpx.AsyncClient` the SDK owns (a caller's own client is
used as it is): one without a cookie store, whose answers are freed as soon as they are
dropped, and whose TLS context is loaded once, when the client is built, and only for https.
"""

from __future__ import annotations

import base64
import functools
import http.cookiejar
import socket
import ssl
import urllib.request
from typing import Any

import aiohttp
import httpx
import yarl

from ._constants import DEFAULT_KEEPALIVE_EXPIRY
from ._intercept import httpx_is_patched
from ._wording import (
    BAD_URL,
    CLOSED_BEFORE_ANSWER,
    LOST_READING,
    LOST_WRITING,
    NOT_HTTP,
    PROXY_REFUSED,
    WORDED,
    connect_failed,
    cut_answer,
    timed_out,
)

__all__ = ["AiohttpTransport", "make_http_client"]

# Most specific first: the first match wins.
_EXCEPTIONS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # pool wait or connect: not sent
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS, proxy: not sent
    (aiohttp.ClientHttpProxyError, httpx.ConnectError),  # the proxy refused the tunnel: not sent
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectionResetError, httpx.WriteError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientError, httpx.ReadError),
)


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return "TLS handshake failed"
    cause = exc.os_error
    if isinstance(cause, socket.gaierror):
        return "host name not resolved"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return cause.strerror or type(cause).__name__


def _words(
    exc: BaseException, httpx_class: type[httpx.TransportError], request: httpx.Request
) -> str:
    """What happened, in the SDK's words (`_wording`): aiohttp's own messages quote internal
    codes of its parser (`ContentLengthError: 400`) that read as HTTP statuses."""
    if issubclass(httpx_class, httpx.TimeoutException):
        return timed_out(httpx_class, request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failed(request, _connect_reason(exc))
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"{PROXY_REFUSED} (the proxy answered HTTP {exc.status})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return CLOSED_BEFORE_ANSWER
    if isinstance(exc, aiohttp.ClientPayloadError):
        return cut_answer(str(exc))
    if isinstance(exc, aiohttp.ClientResponseError):
        return NOT_HTTP
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return LOST_WRITING
    if isinstance(exc, aiohttp.InvalidURL):
        return BAD_URL
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return f"{LOST_READING} ({exc.strerror})"
    return f"the HTTP exchange failed ({type(exc).__name__})"


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    for aiohttp_class, httpx_class in _EXCEPTIONS:
        if isinstance(exc, aiohttp_class):
            # aiohttp puts the full URL, query and key included, into some messages
            # (ConnectionTimeoutError, ClientResponseError); none of them is kept.
            error = httpx_class(_words(exc, httpx_class, request), request=request)
            setattr(error, WORDED, True)  # a mark on a foreign class, read by `_wording.worded`
            return error
    raise AssertionError("unreachable: ClientError is the last entry")  # pragma: no cover


_Proxy = tuple[yarl.URL | None, str | None]


def _env_proxy(url: httpx.URL) -> _Proxy:
    """The proxy the environment names for `url` (`HTTP_PROXY`, `HTTPS_PROXY`), if any.

    None when there is none for its scheme or `NO_PROXY` exempts its host. Credentials in the
    proxy URL come back apart, as a `Proxy-Authorization` value, so that no URL an error
    message may quote carries them.
    """
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy:
        return None, None
    host = url.host if url.port is None else f"{url.host}:{url.port}"
    if url.host and urllib.request.proxy_bypass(host):
        return None, None
    parsed = yarl.URL(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.user is None and parsed.password is None:
        return parsed, None
    credentials = f"{parsed.user or ''}:{parsed.password or ''}".encode()
    return parsed.with_user(None), f"Basic {base64.b64encode(credentials).decode()}"


@functools.cache
def _verified_context() -> ssl.SSLContext:
    """Verifying TLS with certifi's roots, as httpx does; built once (it loads ~150 roots)."""
    return httpx.create_ssl_context()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one aiohttp session; the response body is read whole.

    httpx's timeouts map to aiohttp's: `read` bounds each socket read, `connect` the TCP and
    TLS set-up, and `pool + connect` the wait for a pooled connection and its set-up together
    (aiohttp times those as one). aiohttp has no write timeout.

    Proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`) are honoured, looked
    up once per origin (scheme, host, port) for the life of the transport.

    Args:
        max_connections: Connections kept open at most; keep it at least as large as the
            number of requests you have in flight, so none waits inside the pool.
        keepalive_expiry: Seconds an idle connection is reused for; keep it below the
            server's own keep-alive timeout, or a send can meet a connection as the server
            closes it, and its outcome is unknown.
        ssl_context: The TLS context of https connections. None uses aiohttp's own
            verifying context (the system's roots, loaded when aiohttp is imported), so a
            transport that only ever speaks plain http loads no certificates.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._proxies: dict[tuple[str, str, int | None], _Proxy] = {}
        self._mocked: httpx.AsyncHTTPTransport | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=True if self._ssl_context is None else self._ssl_context,
        )
        # httpx decodes the body itself, from the Content-Encoding header it is handed.
        # trust_env would read ~/.netrc in a worker thread on every request; proxies from
        # the environment are looked up once per origin instead (see `_proxy`).
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=False
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            total_connect = None if connect is None or pool is None else connect + pool
            timeout = aiohttp.ClientTimeout(
                total=None, connect=total_connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    def _proxy(self, url: httpx.URL) -> _Proxy:
        origin = (url.scheme, url.host, url.port)
        proxy = self._proxies.get(origin)
        if proxy is None:
            proxy = self._proxies[origin] = _env_proxy(url)
        return proxy

    async def _through_httpx(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through httpx's own transport, which a mocking library patched."""
        if self._mocked is None:
            self._mocked = httpx.AsyncHTTPTransport(
                verify=_verified_context(),
                limits=httpx.Limits(max_connections=self.max_connections),
            )
        return await httpx.AsyncHTTPTransport.handle_async_request(self._mocked, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if httpx_is_patched():  # respx or pytest-httpx is active: let it intercept
            return await self._through_httpx(request)
        session = self._session or self._open()
        headers = request.headers.multi_items()
        proxy, authorization = self._proxy(request.url)
        proxy_headers = None
        if authorization is not None:
            # An https request's credentials go on its CONNECT, never into the tunnel; a plain
            # http one is read by the proxy itself. (aiohttp deprecates its `proxy_auth`.)
            if request.url.scheme == "https":
                proxy_headers = {"Proxy-Authorization": authorization}
            else:
                headers.append(("Proxy-Authorization", authorization))
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as answer:
                content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = _httpx_error(exc, request)
        else:
            # A stream read at once, as httpx reads its own transports' answers: `content=`
            # would also add a Content-Length header the server may not have sent.
            response = httpx.Response(
                answer.status,
                headers=answer.raw_headers,
                stream=httpx.ByteStream(content),
                request=request,
                extensions={
                    "http_version": b"HTTP/1.1",
                    "reason_phrase": (answer.reason or "").encode(),
                },
            )
            response.read()
            return response
        # Raised outside the except clause, so the aiohttp exception is not kept as its
        # context: that one's request_info holds the URL with the key, and proxy credentials.
        # The name goes before the frame ends: the traceback keeps the frame, and a frame
        # holding its own exception is a reference cycle only the garbage collector frees.
        try:
            raise error
        finally:
            del error

    async def aclose(self) -> None:
        if self._mocked is not None:
            await self._mocked.aclose()
            self._mocked = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class _NullJar(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing and adds nothing."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """The SDK client's cookies: none, and no work per request.

    httpx hands every answer to its cookie jar through a `urllib.request.Request` and an
    `email.message.Message` built for the purpose, even when the answer sets no cookie and
    the jar would keep none: about 17 us of CPU a request, more than the jar itself costs.
    """

    def __init__(self) -> None:
        super().__init__(_NullJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()
_DEFAULT = httpx.USE_CLIENT_DEFAULT
# Stands in for an answer's stream once its body has been read whole.
_READ = httpx.ByteStream(b"")


class _SdkClient(httpx.AsyncClient):
    """The SDK's own `httpx.AsyncClient`: no cookie store, and answers freed when dropped.

    The API authenticates by its query string and sets no cookie the SDK needs. httpx binds
    each answer's stream to the answer (for `elapsed`), a reference cycle that leaves every
    answer, its request, headers and URL to the cyclic garbage collector; once the body is
    read, the stream is done with, and replacing it lets reference counting free them at
    once (the collector's passes cost about 17 us a request).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._merged_headers: dict[tuple[tuple[str, str], ...] | None, httpx.Headers] = {}

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("the SDK's own HTTP client keeps no cookies")

    def build_request(self, method: str, url: httpx.URL | str, **options: Any) -> httpx.Request:
        """As httpx builds it, with the client's headers merged once per set of extra headers.

        Only the SDK's own kind of request (an absolute `httpx.URL`, a body, headers as a
        dict, every other option unset, as `request()` passes them) takes the short way;
        anything else goes to httpx's `build_request`.
        """
        content = options.pop("content", None)
        headers = options.pop("headers", None)
        if (
            not isinstance(url, httpx.URL)
            or not url.is_absolute_url
            or not (headers is None or type(headers) is dict)
            or any(value is not None and value is not _DEFAULT for value in options.values())
        ):
            return super().build_request(method, url, content=content, headers=headers, **options)
        key = None if headers is None else tuple(headers.items())
        merged = self._merged_headers.get(key)
        if merged is None:
            merged = self._merged_headers[key] = httpx.Headers(self._merge_headers(headers))
        extensions = {"timeout": self.timeout.as_dict()}
        return httpx.Request(method, url, content=content, headers=merged, extensions=extensions)

    async def send(
        self, request: httpx.Request, *, stream: bool = False, **options: Any
    ) -> httpx.Response:
        try:
            response = await super().send(request, stream=stream, **options)
        except BaseException:
            del request  # its URL holds the key: no local of this frame may show it
            raise
        if response.is_closed:
            response.stream = _READ
        return response


def make_http_client(
    base_url: str,
    *,
    transport: httpx.AsyncBaseTransport | None,
    timeout: float | httpx.Timeout,
    max_connections: int,
) -> httpx.AsyncClient:
    """The `httpx.AsyncClient` an `AsyncVairoClient` builds for itself.

    Args:
        base_url: The checked API root; only an https one loads a TLS context, here.
        transport: The caller's httpx transport; None for the default aiohttp stack.
        timeout: The client's timeouts.
        max_connections: The default stack's pool size (not used with `transport`).
    """
    if transport is None:
        tls = _verified_context() if httpx.URL(base_url).scheme == "https" else None
        transport = AiohttpTransport(max_connections=max_connections, ssl_context=tls)
    return _SdkClient(transport=transport, timeout=timeout, cookies=_NullJar())
