"""`RemoteFakeVairo`: `FakeVairo`'s record and control methods for an emulator elsewhere."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import httpx

from .._constants import DEFAULT_KEEPALIVE_EXPIRY
from ._app import DEFAULT_API_KEY
from ._codec import BadInput, CompleteRequest, DuplicateRow, InjectRequest, decode, encode
from ._control import CONTROL_DIR
from ._faults import Fault, RandomFaults, Target
from ._state import Package, RequestRecord, SentMessage

__all__ = ["RemoteFakeVairo", "RemoteFakeVairoError"]

_EXCERPT = 200


class RemoteFakeVairoError(Exception):
    """The emulator's control endpoints refused a request or answered something unexpected.

    Attributes:
        status_code: The HTTP status of the answer.

    .. versionadded:: 0.2.0
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class RemoteFakeVairo:
    """Inspect and steer an emulator served by another process, as `FakeVairo` does in-process.

    Each method has the name, arguments and return type of the `FakeVairo` member it mirrors,
    and is a coroutine; `FakeVairo`'s properties (`messages`, `packages`, `requests`,
    `random_faults`, `pending_faults`) are methods here. It talks to the control endpoints
    under `{base_url}_emulator/`, sending the key as `Authorization: Bearer <key>`.

    Args:
        base_url: The emulator's API base URL, as `python -m vairo_async.testing` prints it in
            its `VAIRO_BASE_URL=` line (e.g. `http://127.0.0.1:8080/Panel/api/v1/`).
        api_key: The key the emulator accepts.
        timeout: Seconds to wait for each answer.

    Raises:
        ValueError: From a method, for an argument the emulator refused (HTTP 400).
        KeyError: From `complete_now`, for a package the emulator does not know.
        RemoteFakeVairoError: A wrong key (HTTP 401), no emulator at `base_url`, or any
            other unexpected answer.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self, base_url: str, *, api_key: str = DEFAULT_API_KEY, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}{CONTROL_DIR}/",
            headers={"authorization": f"Bearer {api_key}"},
            timeout=timeout,
            # Idle connections retire before the emulator closes them (see the constant).
            limits=httpx.Limits(keepalive_expiry=DEFAULT_KEEPALIVE_EXPIRY),
            # The emulator is local; a proxy from the environment must not stand in between.
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"RemoteFakeVairo({self.base_url!r})"

    async def __aenter__(self) -> RemoteFakeVairo:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections; the emulator keeps running."""
        await self._http.aclose()

    # -- records -------------------------------------------------------------------------------

    async def messages(self) -> tuple[SentMessage, ...]:
        """Every accepted message, in order of acceptance."""
        result: tuple[SentMessage, ...] = await self._get("messages", tuple[SentMessage, ...])
        return result

    async def packages(self) -> Mapping[int, Package]:
        """Accepted packages by id (a read-only snapshot)."""
        found: tuple[Package, ...] = await self._get("packages", tuple[Package, ...])
        return types.MappingProxyType({package.package_id: package for package in found})

    async def requests(self) -> tuple[RequestRecord, ...]:
        """Every request seen, in order of arrival."""
        result: tuple[RequestRecord, ...] = await self._get("requests", tuple[RequestRecord, ...])
        return result

    async def sent_to(self, dest: str) -> list[SentMessage]:
        """Messages accepted for the 10-digit number `dest`, oldest first."""
        result: list[SentMessage] = await self._get("sent_to", list[SentMessage], {"dest": dest})
        return result

    async def peak_concurrency(self, endpoint: str = "send") -> int:
        """Most requests to `endpoint` ("send" or "report") that were in progress at once."""
        result: int = await self._get("peak_concurrency", int, {"endpoint": endpoint})
        return result

    async def duplicates(self) -> dict[tuple[str, str], int]:
        """`(dest, text)` pairs accepted more than once; `{}` means no SMS was sent twice."""
        rows: list[DuplicateRow] = await self._get("duplicates", list[DuplicateRow])
        return {(row.dest, row.text): row.count for row in rows}

    async def request_count(self, endpoint: str | None = None, outcome: str | None = None) -> int:
        """Requests seen, filtered by `endpoint` ("send", "report", "other") and `outcome`."""
        params = {
            name: str(value)
            for name, value in (("endpoint", endpoint), ("outcome", outcome))
            if value is not None
        }
        result: int = await self._get("request_count", int, params)
        return result

    async def complete_now(self, package_id: int | None = None) -> None:
        """Make one package (or every package) final now, whatever its rule."""
        await self._post("complete_now", CompleteRequest(package_id), missing=package_id)

    async def reset(self) -> None:
        """Forget packages, messages, requests, faults and peaks; ids continue where they were."""
        await self._post("reset", None)

    # -- faults --------------------------------------------------------------------------------

    async def inject(self, fault: Fault, *, endpoint: Target = "send", times: int = 1) -> None:
        """Give the next `times` requests to `endpoint` ("send", "report", "both") `fault`."""
        await self._post("inject", InjectRequest(fault, endpoint, times))

    async def set_random_faults(self, faults: RandomFaults | None) -> None:
        """Replace the random faults (None: no more), reseeding the emulator's generator."""
        await self._post("set_random_faults", faults)

    async def random_faults(self) -> RandomFaults | None:
        """The random faults in force."""
        result: RandomFaults | None = await self._get("random_faults", RandomFaults | None)
        return result

    async def pending_faults(self) -> int:
        """Scripted faults not yet used."""
        result: int = await self._get("pending_faults", int)
        return result

    async def clear_faults(self) -> None:
        """Forget scripted and random faults."""
        await self._post("clear_faults", None)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _get(self, name: str, target: Any, params: Mapping[str, str] | None = None) -> Any:
        answer = await self._http.get(name, params=params)
        self._check(answer, name)
        try:
            return decode(answer.content, target)
        except BadInput as exc:
            raise RemoteFakeVairoError(
                f"the emulator's answer to {name} is not what it should be: {exc}",
                status_code=answer.status_code,
            ) from None

    async def _post(self, name: str, payload: Any, *, missing: int | None = None) -> None:
        content = b"null" if payload is None else encode(payload)
        answer = await self._http.post(
            name, content=content, headers={"content-type": "application/json"}
        )
        if answer.status_code == 404 and name == "complete_now" and missing is not None:
            raise KeyError(missing)
        self._check(answer, name)

    def _check(self, answer: httpx.Response, name: str) -> None:
        status = answer.status_code
        if 200 <= status < 300:
            return
        message = _error_message(answer)
        if status == 400:
            raise ValueError(message)
        if status == 401:
            raise RemoteFakeVairoError(
                f"the emulator at {self.base_url} refused the API key (HTTP 401)",
                status_code=status,
            )
        if status == 404:
            raise RemoteFakeVairoError(
                f"no emulator control endpoint {name!r} under {self.base_url}; is it the "
                f"base URL the emulator printed? (HTTP 404: {message})",
                status_code=status,
            )
        raise RemoteFakeVairoError(
            f"the emulator answered {name} with HTTP {status}: {message}", status_code=status
        )


def _error_message(answer: httpx.Response) -> str:
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else answer.text[:_EXCERPT]
