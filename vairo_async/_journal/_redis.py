"""`RedisJournal`: the journal in Redis (or Valkey), shared by workers on many machines.

Each record is a hash; the claim and every later write are Lua scripts (run by EVALSHA), so
each is atomic on the server and compares the owner token before it writes. `redis` is
imported only when a `RedisJournal` is made, so the SDK never needs it otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from .._errors import ClaimLostError, JournalUnavailableError
from .._redis_client import open_redis
from ._base import (
    Claim,
    Clock,
    JournalRecord,
    RecordState,
    check_claim_args,
    check_lease,
    check_package_id,
    check_resolvable,
    dump_json,
    load_json,
    sort_key,
)

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisJournal"]

_T = TypeVar("_T")

# Every script treats a record whose expires_at has passed (on the caller's clock) as absent.
_LIVE = """
local function live(rec, now)
  local expires = redis.call('HGET', rec, 'expires_at')
  if expires and tonumber(expires) <= now then
    redis.call('DEL', rec)
    return false
  end
  return redis.call('EXISTS', rec) == 1
end
"""

# KEYS: record, unresolved set. ARGV: now, key, fingerprint, owner, lease_expires, campaign,
# batch, meta, expires_at, retention_ms, campaign index key.
_CLAIM = (
    _LIVE
    + """
local rec = KEYS[1]
local now = tonumber(ARGV[1])
if live(rec, now) then
  return {0, redis.call('HGETALL', rec)}
end
redis.call('HSET', rec, 'key', ARGV[2], 'state', 'claimed', 'fingerprint', ARGV[3],
  'owner', ARGV[4], 'lease_expires', ARGV[5], 'meta', ARGV[8],
  'created_at', ARGV[1], 'updated_at', ARGV[1])
if ARGV[6] ~= '' then
  redis.call('HSET', rec, 'campaign', ARGV[6], 'batch', ARGV[7])
  redis.call('ZADD', ARGV[11], tonumber(ARGV[7]), ARGV[2])
end
if ARGV[9] ~= '' then
  redis.call('HSET', rec, 'expires_at', ARGV[9])
  redis.call('PEXPIRE', rec, ARGV[10])
end
redis.call('SADD', KEYS[2], ARGV[2])
return {1, redis.call('HGETALL', rec)}
"""
)

# KEYS: record, unresolved set. ARGV: now, owner, mode ('sent' or 'unknown'), package_id,
# recipient_count, estimated_credits ('' for none), detail, key.
# Returns {1, record} when written (or already so), {0, record-or-empty} when the claim is lost.
_SETTLE = (
    _LIVE
    + """
local rec = KEYS[1]
local now = tonumber(ARGV[1])
if not live(rec, now) then
  return {0, {}}
end
local state = redis.call('HGET', rec, 'state')
local owner = redis.call('HGET', rec, 'owner')
if owner == ARGV[2] then
  if ARGV[3] == 'sent' and state == 'sent'
      and redis.call('HGET', rec, 'package_id') == ARGV[4] then
    return {1, redis.call('HGETALL', rec)}
  end
  if ARGV[3] == 'unknown' and state == 'unknown' then
    return {1, redis.call('HGETALL', rec)}
  end
end
if state ~= 'claimed' or owner ~= ARGV[2] then
  return {0, redis.call('HGETALL', rec)}
end
redis.call('HDEL', rec, 'lease_expires')
redis.call('HSET', rec, 'state', ARGV[3], 'updated_at', ARGV[1])
if ARGV[3] == 'sent' then
  redis.call('HSET', rec, 'package_id', ARGV[4], 'recipient_count', ARGV[5])
  if ARGV[6] ~= '' then
    redis.call('HSET', rec, 'estimated_credits', ARGV[6])
  end
  redis.call('SREM', KEYS[2], ARGV[8])
else
  redis.call('HSET', rec, 'detail', ARGV[7])
end
return {1, redis.call('HGETALL', rec)}
"""
)

# KEYS: record, unresolved set. ARGV: now, owner, lease_expires.
# Returns {1, record} when renewed, {0, record-or-empty} when the claim is lost.
_RENEW = (
    _LIVE
    + """
local rec = KEYS[1]
if not live(rec, tonumber(ARGV[1])) then
  return {0, {}}
end
if redis.call('HGET', rec, 'state') ~= 'claimed' or redis.call('HGET', rec, 'owner') ~= ARGV[2]
then
  return {0, redis.call('HGETALL', rec)}
end
redis.call('HSET', rec, 'lease_expires', ARGV[3], 'updated_at', ARGV[1])
return {1, redis.call('HGETALL', rec)}
"""
)

# KEYS: record, unresolved set. ARGV: now, owner, key, campaign index prefix.
_RELEASE = (
    _LIVE
    + """
local rec = KEYS[1]
if not live(rec, tonumber(ARGV[1])) then
  redis.call('SREM', KEYS[2], ARGV[3])
  return {1, {}}
end
if redis.call('HGET', rec, 'state') ~= 'claimed' or redis.call('HGET', rec, 'owner') ~= ARGV[2]
then
  return {0, redis.call('HGETALL', rec)}
end
local campaign = redis.call('HGET', rec, 'campaign')
if campaign then
  redis.call('ZREM', ARGV[4] .. campaign, ARGV[3])
end
redis.call('DEL', rec)
redis.call('SREM', KEYS[2], ARGV[3])
return {1, {}}
"""
)

# KEYS: record, unresolved set. ARGV: now, package_id ('' for not sent), recipient_count
# ('' to keep), key, campaign index prefix. Returns {code, record}: code is 'ok', 'deleted',
# 'missing', 'live' or 'sent' (SENT with another package id).
_RESOLVE = (
    _LIVE
    + """
local rec = KEYS[1]
local now = tonumber(ARGV[1])
if not live(rec, now) then
  return {'missing', {}}
end
local state = redis.call('HGET', rec, 'state')
if state == 'claimed' and tonumber(redis.call('HGET', rec, 'lease_expires')) > now then
  return {'live', redis.call('HGETALL', rec)}
end
if state == 'sent' then
  if redis.call('HGET', rec, 'package_id') == ARGV[2] then
    return {'ok', redis.call('HGETALL', rec)}
  end
  return {'sent', redis.call('HGETALL', rec)}
end
if ARGV[2] == '' then
  local campaign = redis.call('HGET', rec, 'campaign')
  if campaign then
    redis.call('ZREM', ARGV[5] .. campaign, ARGV[4])
  end
  redis.call('DEL', rec)
  redis.call('SREM', KEYS[2], ARGV[4])
  return {'deleted', {}}
end
redis.call('HDEL', rec, 'owner', 'lease_expires')
redis.call('HSET', rec, 'state', 'sent', 'package_id', ARGV[2], 'updated_at', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', rec, 'recipient_count', ARGV[3])
end
redis.call('SREM', KEYS[2], ARGV[4])
return {'ok', redis.call('HGETALL', rec)}
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: float) -> str:
    return repr(float(value))


def _record(flat: list[Any] | Mapping[Any, Any]) -> JournalRecord | None:
    if isinstance(flat, Mapping):
        fields = {_text(k): _text(v) for k, v in flat.items()}
    else:
        fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    if "state" not in fields:
        return None

    def real(name: str) -> float | None:
        return float(fields[name]) if name in fields else None

    def whole(name: str) -> int | None:
        return int(fields[name]) if name in fields else None

    return JournalRecord(
        key=fields["key"],
        campaign=fields.get("campaign"),
        batch=whole("batch"),
        state=RecordState(fields["state"]),
        fingerprint=fields["fingerprint"],
        owner=fields.get("owner"),
        lease_expires=real("lease_expires"),
        package_id=whole("package_id"),
        recipient_count=whole("recipient_count"),
        estimated_credits=whole("estimated_credits"),
        detail=fields.get("detail"),
        meta=load_json(fields.get("meta", "{}")),
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
        expires_at=real("expires_at"),
    )


class RedisJournal:
    """A `Journal` in Redis (or Valkey): one store for workers on many machines.

    Needs the `redis` extra (`pip install 'vairo-async[redis]'`, redis-py 5 or newer).
    A record is a hash under `{prefix}r:{key}`; a campaign's batch keys are indexed in
    `{prefix}c:{campaign}`, the keys still CLAIMED or UNKNOWN in `{prefix}unresolved`, and the
    campaign headers in `{prefix}campaigns`. Single sends expire by `PEXPIRE` at their
    retention. Scripts touch keys the server computes, so use one server (with replicas if you
    like), not a Redis Cluster.

    Durability is the server's: a record is only as safe as Redis keeps its writes. Run it
    with `appendonly yes` and `appendfsync always` so every acknowledged write is on disk;
    with the default `appendfsync everysec` a crash of the server loses up to a second of
    records, and without the append-only file everything since the last snapshot. With
    replicas, a failover loses what a replica had not received: `WAITAOF` (Redis 7.2+) or
    `WAIT` on your side narrows that; this class does not wait for replicas.

    Args:
        url_or_client: A `redis://` / `rediss://` / `unix://` URL (the journal makes and
            closes its own client), or a `redis.asyncio.Redis` you keep and close.
        prefix: Put before every key this journal writes.
        timeout: Socket and connect timeout in seconds of a client made from a URL.
        clock: Seconds since the epoch; `time.time` by default. Leases and retention are
            compared on this clock, so every worker's clock should be in sync (NTP).

    Raises:
        ConfigurationError: The `redis` package is not installed.
        JournalUnavailableError: (from every method) the server could not be reached or
            refused the command; the message names the URL with its password removed.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        *,
        prefix: str = "vairo:",
        timeout: float = 10.0,
        clock: Clock = time.time,
    ) -> None:
        self._redis = open_redis(url_or_client, timeout=timeout, needed_by="RedisJournal")
        self._client = self._redis.client
        self._prefix = prefix
        self._unresolved_key = f"{prefix}unresolved"
        self._campaigns_key = f"{prefix}campaigns"
        self._clock = clock
        self._closed = False
        self._claim = self._client.register_script(_CLAIM)
        self._settle = self._client.register_script(_SETTLE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._resolve = self._client.register_script(_RESOLVE)

    def __repr__(self) -> str:
        return f"RedisJournal({self._redis.where!r}, prefix={self._prefix!r})"

    def _rec(self, key: str) -> str:
        return f"{self._prefix}r:{key}"

    async def _call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        if self._closed:
            raise JournalUnavailableError(f"{self!r} is closed")
        try:
            return await fn()
        except self._redis.errors as exc:
            raise JournalUnavailableError(self._redis.failure("the Redis journal", exc)) from exc

    async def _script(self, script: Any, key: str, *args: Any) -> list[Any]:
        result = await self._call(
            lambda: script(keys=[self._rec(key), self._unresolved_key], args=list(args))
        )
        assert isinstance(result, list)
        return result

    async def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        owner: str,
        lease: float,
        campaign: str | None = None,
        batch: int | None = None,
        retention: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Claim:
        """See `Journal.claim`."""
        lease_s, retention_s, meta_json = check_claim_args(
            key,
            fingerprint=fingerprint,
            owner=owner,
            lease=lease,
            campaign=campaign,
            batch=batch,
            retention=retention,
            meta=meta,
        )
        now = self._clock()
        claimed, flat = await self._script(
            self._claim,
            key,
            _num(now),
            key,
            fingerprint,
            owner,
            _num(now + lease_s),
            campaign or "",
            "" if batch is None else str(batch),
            meta_json,
            "" if retention_s is None else _num(now + retention_s),
            "" if retention_s is None else str(max(1, round(retention_s * 1000))),
            f"{self._prefix}c:{campaign}",
        )
        record = _record(flat)
        assert record is not None
        return Claim(bool(claimed), record)

    async def renew(self, key: str, *, owner: str, lease: float) -> JournalRecord:
        """See `Journal.renew`."""
        lease_s = check_lease(lease)
        now = self._clock()
        renewed, flat = await self._script(self._renew, key, _num(now), owner, _num(now + lease_s))
        record = _record(flat)
        if not renewed:
            raise ClaimLostError(key, record)
        assert record is not None
        return record

    async def _settle_as(self, key: str, owner: str, *args: str) -> JournalRecord:
        done, flat = await self._script(self._settle, key, _num(self._clock()), owner, *args, key)
        record = _record(flat)
        if not done:
            raise ClaimLostError(key, record)
        assert record is not None
        return record

    async def mark_sent(
        self,
        key: str,
        *,
        owner: str,
        package_id: int,
        recipient_count: int,
        estimated_credits: int | None,
    ) -> JournalRecord:
        """See `Journal.mark_sent`."""
        return await self._settle_as(
            key,
            owner,
            "sent",
            str(int(package_id)),
            str(int(recipient_count)),
            "" if estimated_credits is None else str(int(estimated_credits)),
            "",
        )

    async def mark_unknown(self, key: str, *, owner: str, detail: str) -> JournalRecord:
        """See `Journal.mark_unknown`."""
        return await self._settle_as(key, owner, "unknown", "", "", "", str(detail))

    async def release(self, key: str, *, owner: str) -> None:
        """See `Journal.release`."""
        done, flat = await self._script(
            self._release, key, _num(self._clock()), owner, key, f"{self._prefix}c:"
        )
        if not done:
            raise ClaimLostError(key, _record(flat))

    async def get(self, key: str) -> JournalRecord | None:
        """See `Journal.get`."""
        record = _record(await self._call(lambda: self._client.hgetall(self._rec(key))))
        if record is None or record.is_expired(self._clock()):
            return None
        return record

    async def _load(self, keys: list[str]) -> list[JournalRecord]:
        async def load() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(self._rec(key))
                return await pipe.execute()

        now = self._clock()
        found = (_record(flat) for flat in (await self._call(load) if keys else []))
        live = [r for r in found if r is not None and not r.is_expired(now)]
        return sorted(live, key=sort_key)

    async def _keys(self, campaign: str | None) -> list[str]:
        if campaign is not None:
            members = await self._call(
                lambda: self._client.zrange(f"{self._prefix}c:{campaign}", 0, -1)
            )
            return [_text(member) for member in members]

        async def scan() -> list[str]:
            pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self._prefix) + "r:*"
            skip = len(self._prefix) + 2
            return [_text(name)[skip:] async for name in self._client.scan_iter(pattern, 1000)]

        return await self._call(scan)

    async def records(
        self, *, campaign: str | None = None, states: Collection[RecordState] | None = None
    ) -> list[JournalRecord]:
        """See `Journal.records`."""
        found = await self._load(await self._keys(campaign))
        if states is None:
            return found
        wanted = frozenset(states)
        now = self._clock()
        return [record for record in found if record.effective_state(now) in wanted]

    async def unresolved(self, *, campaign: str | None = None) -> list[JournalRecord]:
        """See `Journal.unresolved`."""
        members = await self._call(lambda: self._client.smembers(self._unresolved_key))
        found = await self._load([_text(member) for member in members])
        return [
            record
            for record in found
            if record.state is not RecordState.SENT
            and (campaign is None or record.campaign == campaign)
        ]

    async def resolve(
        self, key: str, *, package_id: int | None, recipient_count: int | None = None
    ) -> JournalRecord | None:
        """See `Journal.resolve`."""
        check_package_id(key, package_id)
        now = self._clock()
        code, flat = await self._script(
            self._resolve,
            key,
            _num(now),
            "" if package_id is None else str(package_id),
            "" if recipient_count is None else str(int(recipient_count)),
            key,
            f"{self._prefix}c:",
        )
        record = _record(flat)
        if _text(code) in ("missing", "live", "sent"):
            # The script refused on the record it returns, at `now`: the check says why.
            check_resolvable(key, record, package_id, now)
            raise AssertionError(f"resolve {key!r}: {_text(code)}")  # pragma: no cover
        return record

    async def put_campaign(self, campaign: str, header: Mapping[str, Any]) -> Mapping[str, Any]:
        """See `Journal.put_campaign`."""
        text = dump_json(header, "campaign header")

        async def put() -> Any:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hsetnx(self._campaigns_key, campaign, text)
                pipe.hget(self._campaigns_key, campaign)
                return (await pipe.execute())[1]

        return load_json(await self._call(put))

    async def get_campaign(self, campaign: str) -> Mapping[str, Any] | None:
        """See `Journal.get_campaign`."""
        text = await self._call(lambda: self._client.hget(self._campaigns_key, campaign))
        return None if text is None else load_json(text)

    async def campaigns(self) -> dict[str, Mapping[str, Any]]:
        """See `Journal.campaigns`."""
        stored = await self._call(lambda: self._client.hgetall(self._campaigns_key))
        pairs = sorted((_text(name), header) for name, header in stored.items())
        return {name: load_json(header) for name, header in pairs}

    async def aclose(self) -> None:
        """Close the client if the journal made it from a URL (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()

    async def __aenter__(self) -> Self:
        try:
            await self._call(lambda: self._client.ping())
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
