"""``RedisSyncTarget``: the replicated keys mirrored into Redis (redis-py).

Layout ``hash`` (the default): ``<key_prefix><key>`` is a hash with ``value``,
``content_type``, ``hlc``, ``origin`` and ``deleted`` (``1`` for a tombstone, which keeps no
value). Layout ``string``: ``<key_prefix><key>`` holds the plain value (deleted: no key), and
the hash ``<key_prefix>_versions`` maps each key to ``<hlc> <origin>``, tombstones included.
The hash ``<key_prefix>_sync`` holds the checkpoints (field ``cp:<target>:<source>``: ``<source
epoch> <seq>``) and the incarnation (field ``incarnation``, made when the hash is missing: a
Redis that lost its data is a new incarnation, and the node resends).

One Lua script per batch (REPLICATION 7) does what a PostgreSQL transaction does: the
checkpoint checks, the upsert of every item guarded by its version, and the new checkpoint,
atomically. The guard is the PostgreSQL target's: a key takes a version that has seen it (its
vector covers the key's version), else only a greater one; a replay or an older version never
moves a key backwards. Versions compare as ``(hlc, origin)``: the hlc, a u64, as a zero-padded
decimal string (Lua numbers are doubles, exact only to 2**53), both compared byte by byte
(Lua's ``<`` on strings follows the locale).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from kvdb import ApplyResult, RemoteBatch

from ..errors import ResyncNeeded, TargetError, TargetMismatch, TargetRefused, TargetUnavailable
from ..protocol import Hello, Mode, Welcome
from .options import RedisOptions, redact_url

__all__ = ["RedisSyncTarget"]

log = logging.getLogger("sync.targets.redis")

_SCRIPT = r"""
local function pad(h) return string.rep('0', 20 - #h) .. h end
local function lt(a, b)  -- byte-wise a < b
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function older(h1, o1, h2, o2)  -- (h1, o1) < (h2, o2)
  local p1, p2 = pad(h1), pad(h2)
  if p1 ~= p2 then return lt(p1, p2) end
  return lt(o1, o2)
end
local function seen(vector, h, o)  -- vector ('<origin> <hlc> ...') covers the version (h, o)
  for vo, vh in string.gmatch(vector, '(%S+) (%d+)') do
    if vo == o then return not lt(pad(vh), pad(h)) end
  end
  return false
end

local sync, versions = KEYS[1], KEYS[2]
local op, field, epoch, target_epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local prev, last, layout, fresh = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local prefix_length = tonumber(ARGV[9])

local incarnation = redis.call('HGET', sync, 'incarnation')
if not incarnation then
  incarnation = fresh
  redis.call('HSET', sync, 'incarnation', incarnation)
end
local checkpoint, same = 0, false
local stored = redis.call('HGET', sync, field)
if stored then
  local e, s = string.match(stored, '^(%S+) (%d+)$')
  if e == epoch then checkpoint, same = tonumber(s), true end
end
if op == 'handshake' then return {'ok', incarnation, checkpoint, 0} end
if target_epoch ~= '' and target_epoch ~= incarnation then return {'epoch', incarnation, 0, 0} end
if op == 'log' then
  if not same and prev ~= 0 then return {'unknown', incarnation, 0, 0} end
  if last <= checkpoint then return {'duplicate', incarnation, checkpoint, 0} end
  if prev > checkpoint then return {'gap', incarnation, checkpoint, 0} end
end

local applied = 0
for i = 3, #KEYS do
  local a = 10 + (i - 3) * 7
  local seq, deleted, value, ctype, hlc, origin, vector = tonumber(ARGV[a]), ARGV[a + 1],
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  if op ~= 'log' or seq > checkpoint then
    local key = KEYS[i]
    local name = string.sub(key, prefix_length + 1)
    local h, o
    if layout == 'hash' then
      local cur = redis.call('HMGET', key, 'hlc', 'origin')
      h, o = cur[1], cur[2]
    else
      local cur = redis.call('HGET', versions, name)
      if cur then h, o = string.match(cur, '^(%d+) (.*)$') end
    end
    if not h or older(h, o, hlc, origin)
        or ((h ~= hlc or o ~= origin) and seen(vector, h, o)) then
      applied = applied + 1
      if layout == 'hash' then
        if deleted == '1' then
          redis.call('HDEL', key, 'value', 'content_type')
          redis.call('HSET', key, 'hlc', hlc, 'origin', origin, 'deleted', '1')
        else
          redis.call('HSET', key, 'value', value, 'content_type', ctype, 'hlc', hlc,
                     'origin', origin, 'deleted', '0')
        end
      else
        if deleted == '1' then redis.call('DEL', key) else redis.call('SET', key, value) end
        redis.call('HSET', versions, name, hlc .. ' ' .. origin)
      end
    end
  end
end
if op ~= 'snapshot' then
  checkpoint = last
  redis.call('HSET', sync, field, epoch .. ' ' .. last)
end
return {'ok', incarnation, checkpoint, applied}
"""


class RedisSyncTarget:
    kind = "redis"

    def __init__(self, name: str, options: RedisOptions, *, timeout_ms: int = 10_000) -> None:
        self.node_id = name
        self.options = options
        self.failovers = 0
        prefix = options.key_prefix
        self._keys = (prefix + "_sync", prefix + "_versions")
        self._prefix = prefix.encode()
        timeout = timeout_ms / 1000
        self._redis = aioredis.Redis.from_url(
            options.url, socket_timeout=timeout, socket_connect_timeout=timeout,
            health_check_interval=0, retry_on_timeout=False, retry=None,
        )  # fmt: skip
        self._script = self._redis.register_script(_SCRIPT)

    @property
    def endpoint(self) -> str:
        return redact_url(self.options.url)

    async def handshake(self, hello: Hello) -> Welcome:
        if hello.target != self.node_id:
            raise TargetMismatch(f"this is Redis target {self.node_id!r}, not {hello.target!r}")
        args = self._args("handshake", hello.source, hello.source_epoch, None, 0, 0)
        _, incarnation, checkpoint, _ = await self._call(list(self._keys), args)
        return Welcome(self.node_id, incarnation, checkpoint)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        keys: list[Any] = list(self._keys)
        args = self._args(mode, batch.source, batch.source_epoch, batch.target_epoch,
                          batch.prev_seq, batch.last_seq)  # fmt: skip
        for item in batch.items:
            keys.append(self._prefix + item.key.encode())
            vector = " ".join(f"{origin} {hlc}" for origin, hlc in item.vector.items())
            args += [item.seq, b"1" if item.deleted else b"0", item.value or b"",
                     item.content_type or "", str(item.hlc), item.origin, vector]  # fmt: skip
        status, _, checkpoint, applied = await self._call(keys, args)
        if status == "duplicate":
            return ApplyResult(checkpoint, 0, len(batch.items), 0, duplicate=True)
        if status == "epoch":
            raise ResyncNeeded(f"Redis {self.endpoint} lost its data or was flushed since the "
                               "handshake", reason="epoch")  # fmt: skip
        if status == "unknown":
            raise ResyncNeeded(f"Redis has no checkpoint of this incarnation of {batch.source}",
                               reason="epoch")  # fmt: skip
        if status == "gap":
            raise ResyncNeeded(
                f"Redis holds {batch.source}'s log up to seq {checkpoint}, not {batch.prev_seq}",
                reason="sequence_gap", checkpoint=checkpoint,
            )  # fmt: skip
        return ApplyResult(checkpoint, applied, len(batch.items) - applied, 0)

    async def check_health(self) -> bool:
        try:
            return bool(await self._redis.execute_command("PING"))
        except redis_errors.RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    def _args(
        self, op: str, source: str, epoch: str, target_epoch: str | None, prev: int, last: int
    ) -> list[Any]:
        return [op, f"cp:{self.node_id}:{source}", epoch, target_epoch or "", prev, last,
                self.options.layout, os.urandom(8).hex(), len(self._prefix)]  # fmt: skip

    async def _call(self, keys: list[Any], args: list[Any]) -> tuple[str, str, int, int]:
        try:
            status, incarnation, checkpoint, applied = await self._script(keys=keys, args=args)
        except redis_errors.RedisError as exc:
            raise self._translate(exc) from None
        return status.decode(), incarnation.decode(), int(checkpoint), int(applied)

    def _translate(self, exc: redis_errors.RedisError) -> TargetError:
        where = f"Redis {self.endpoint}"
        message = str(exc) or type(exc).__name__
        if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
            return TargetRefused(f"{where}: {message}; check the url's user and password",
                                 endpoint=self.endpoint)  # fmt: skip
        if isinstance(exc, redis_errors.ResponseError) and message.startswith(
            ("NOPERM", "WRONGPASS", "NOAUTH")
        ):
            return TargetRefused(f"{where}: {message}", endpoint=self.endpoint)
        if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError
                      | redis_errors.BusyLoadingError | redis_errors.ReadOnlyError):  # fmt: skip
            return TargetUnavailable(f"{where}: {message}", endpoint=self.endpoint)
        return TargetRefused(f"{where}: {message}", endpoint=self.endpoint)
