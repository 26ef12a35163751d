"""The server-side steps that must be atomic: Lua scripts, each run with EVALSHA.

Every script touches only metadata keys of one namespace (one hash tag, so one cluster
slot) and reads the server's clock, so times agree whichever client writes. A script
that finds its work already done (a commit whose etag is already in place) answers as
if it had done it, so a call sent twice changes nothing the second time. Steps that
check names first drop the index entries of objects that expired (``prune``).

Statuses a script answers with, besides ``ok``: ``match`` (if_match failed),
``exists`` (if_none_match failed), ``isdir`` (a directory has the name), ``parent``
(a parent is a file), ``file`` (a file has the directory's name), ``missing`` (no
source object), ``swept`` (the write's generation was swept as abandoned).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from storager._errors import (
    AlreadyExistsError,
    NotFoundError,
    ObjectModeInvalidError,
    PreconditionFailedError,
    ServiceInternalError,
    StorageError,
)
from storager.services.redis._link import Link
from storager.services.redis._plan import Plan, RoundTrip, run

__all__ = ["REFUSALS", "Script", "Scripts", "commit_args", "refusal"]

_PRELUDE = r"""
local function now_parts()
  local t = redis.call('TIME')
  local usec = tonumber(t[2])
  return tonumber(t[1]) + usec / 1000000, t[1] .. '.' .. string.format('%06d', usec)
end
local function score(x) return string.format('%.6f', x) end
-- One manifest lets go of a generation; the last one schedules it for deletion. The
-- generation of an object written with an expiry was scheduled for its expiry already.
local function release(refs, doomed, gen, now, exp)
  if not gen or gen == '' or exp then return end
  if redis.call('HINCRBY', refs, gen, -1) <= 0 then
    redis.call('HDEL', refs, gen)
    redis.call('ZADD', doomed, score(now), gen)
  end
end
-- Whether anything (object or marker) lies under path .. '/'.
local function has_children(index, path)
  return redis.call('ZRANGEBYLEX', index, '[' .. path .. '/', '(' .. path .. '/\255',
                    'LIMIT', 0, 1)[1] ~= nil
end
-- The first directory of path (from the root down) that is a file, or nil.
local function file_parent(index, path)
  local i = 1
  while true do
    local j = string.find(path, '/', i + 1, true)
    if not j then return nil end
    local parent = string.sub(path, 1, j - 1)
    if redis.call('ZSCORE', index, parent) then return parent end
    i = j
  end
end
-- Drop the index entries of objects that expired (Redis removed their manifests).
-- The manifests share the tag of the index, so they are in this script's slot.
local function prune(index, expiring, manifest_prefix, now)
  local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', score(now), 'LIMIT', 0, 100)
  for _, path in ipairs(due) do
    if redis.call('EXISTS', manifest_prefix .. path) == 0 then
      redis.call('ZREM', index, path)
    end
    redis.call('ZREM', expiring, path)
  end
  return #due
end
-- The manifest key prefix, from a manifest key and its path.
local function prefix_of(manifest_key, path)
  return string.sub(manifest_key, 1, #manifest_key - #path)
end
-- Give a manifest the expiry (seconds since the epoch, as text) it carries, or none.
local function set_expiry(expiring, manifest_key, path, exp)
  if exp then
    redis.call('PEXPIREAT', manifest_key, math.floor(tonumber(exp) * 1000))
    redis.call('ZADD', expiring, exp, path)
  else
    redis.call('ZREM', expiring, path)
  end
end
"""

# KEYS: manifest, staged manifest
# ARGV (each may be left off, from the last): generation ('' or absent: inline), chunk
#       count, if_match, if_none_match, time to live in ms ('0' for none).
# The staged manifest (written in the same transaction, just before) holds the fields
# the client knows (kind and etag too), data included, so the data never passes through
# Lua (a 4 KiB argument costs a script about 5 us). It becomes the manifest by RENAME, or is deleted
# when the write is refused. The path and the write's etag are read from the two keys,
# and the namespace's other keys are built from their hash tag (``_keys`` lays them
# out), so a plain write sends the script two arguments. An overwrite costs four calls
# (TIME, HMGET, RENAME, HSET of mtime; a chunked one also releases the old generation):
# a manifest that exists has its index entry already, and no expired entry can be in
# its way. Each redis.call costs the server about a microsecond of its own.
_COMMIT = r"""
local ns = string.match(KEYS[1], '^{[^}]*}:')
local path = string.sub(KEYS[1], #ns + 3)
local new_etag = string.sub(KEYS[2], #ns + 3)
local index, refs, counts = ns .. 'i', ns .. 'r', ns .. 'n'
local pending, doomed, expiring = ns .. 'p', ns .. 'g', ns .. 'x'
local gen, chunks = ARGV[1] or '', ARGV[2]
local if_match, if_none_match = ARGV[3] or '', ARGV[4] or ''
local ttl = tonumber(ARGV[5] or '0')
local t = redis.call('TIME')
-- The time as text without a float or string.format (most commits need no number).
local mtime = t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2]
local function now() return tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local cur = redis.call('HMGET', KEYS[1], 'etag', 'gen', 'exp')
local etag = cur[1]
local function refuse(status)
  redis.call('DEL', KEYS[2])
  return {status}
end
if etag and etag == new_etag then
  redis.call('DEL', KEYS[2])
  return {'ok', redis.call('HGET', KEYS[1], 'mtime')}
end
if if_match ~= '' and etag ~= if_match then return refuse('match') end
if if_none_match ~= '' and etag and (if_none_match == '*' or if_none_match == etag) then
  return refuse('exists')
end
if gen ~= '' and not redis.call('ZSCORE', pending, gen) then return refuse('swept') end
if not etag then
  prune(index, expiring, ns .. 'm:', now())
  if has_children(index, path) then return refuse('isdir') end
  if file_parent(index, path) then return refuse('parent') end
end
local exp = nil
if ttl > 0 then exp = string.format('%.3f', now() + ttl / 1000) end
if gen ~= '' then
  redis.call('ZREM', pending, gen)
  redis.call('HSET', counts, gen, chunks)
  if exp then
    redis.call('ZADD', doomed, exp, gen)
  else
    redis.call('HINCRBY', refs, gen, 1)
  end
end
if cur[2] and cur[2] ~= '' then release(refs, doomed, cur[2], now(), cur[3]) end
redis.call('RENAME', KEYS[2], KEYS[1])
if exp then
  redis.call('HSET', KEYS[1], 'mtime', mtime, 'exp', exp)
else
  redis.call('HSET', KEYS[1], 'mtime', mtime)
end
if exp or cur[3] then set_expiry(expiring, KEYS[1], path, exp) end
if not etag then redis.call('ZADD', index, 0, path) end
return {'ok', mtime}
"""

# KEYS: manifest, index, refs, doomed, expiring
# ARGV: path
_DELETE = r"""
local now = now_parts()
local cur = redis.call('HMGET', KEYS[1], 'kind', 'gen', 'exp')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if not cur[1] then return 0 end
release(KEYS[3], KEYS[4], cur[2], now, cur[3])
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: source manifest, destination manifest, index, refs, doomed, expiring
# ARGV: source path, destination path, new etag, 'copy' or 'move'
_COPY = r"""
local now, mtime = now_parts()
prune(KEYS[3], KEYS[6], prefix_of(KEYS[1], ARGV[1]), now)
local dst = redis.call('HMGET', KEYS[2], 'etag', 'gen', 'exp')
if dst[1] and dst[1] == ARGV[3] then return {'ok'} end
local src = redis.call('HGETALL', KEYS[1])
if #src == 0 then return {'missing'} end
if ARGV[1] == ARGV[2] then return {'ok'} end
if not dst[1] then
  if has_children(KEYS[3], ARGV[2]) then return {'isdir'} end
  if file_parent(KEYS[3], ARGV[2]) then return {'parent'} end
end
local fields, gen, exp = {}, nil, nil
for i = 1, #src, 2 do
  local name = src[i]
  if name == 'gen' then gen = src[i + 1] end
  if name == 'exp' then exp = src[i + 1] end
  if name ~= 'etag' and name ~= 'mtime' then
    fields[#fields + 1] = name
    fields[#fields + 1] = src[i + 1]
  end
end
if ARGV[4] == 'copy' and gen and gen ~= '' and not exp then
  redis.call('HINCRBY', KEYS[4], gen, 1)
end
release(KEYS[4], KEYS[5], dst[2], now, dst[3])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'etag', ARGV[3], 'mtime', mtime, unpack(fields))
set_expiry(KEYS[6], KEYS[2], ARGV[2], exp)
redis.call('ZADD', KEYS[3], 0, ARGV[2])
if ARGV[4] == 'move' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
end
return {'ok'}
"""

# KEYS: marker manifest, index, expiring
# ARGV: marker path (ending with '/'), etag
_CREATE_DIR = r"""
prune(KEYS[2], KEYS[3], prefix_of(KEYS[1], ARGV[1]), now_parts())
local taken = file_parent(KEYS[2], ARGV[1])
if taken then
  if taken .. '/' == ARGV[1] then return {'file'} end
  return {'parent'}
end
local mtime = redis.call('HGET', KEYS[1], 'mtime')
if mtime then return {'ok', mtime} end
local _, now = now_parts()
redis.call('HSET', KEYS[1], 'kind', 'd', 'etag', ARGV[2], 'mtime', now)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return {'ok', now}
"""

# KEYS: index, expiring
# ARGV: manifest key prefix
# Drops the index entries of expired objects; answers how many it looked at (at most 100).
_PRUNE = r"""
return prune(KEYS[1], KEYS[2], ARGV[1], now_parts())
"""

# KEYS: index, expiring
# ARGV: manifest key prefix, path (without its trailing '/')
# Whether anything lies under the path, once expired entries are gone.
_HAS_CHILDREN = r"""
prune(KEYS[1], KEYS[2], ARGV[1], now_parts())
if has_children(KEYS[1], ARGV[2]) then return 1 end
return 0
"""

# KEYS: pending, counts
# ARGV: generation, chunk-count bound, '1' to register (else only while still pending)
_HEARTBEAT = r"""
if ARGV[3] ~= '1' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local now = now_parts()
redis.call('ZADD', KEYS[1], score(now), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: pending, doomed
# ARGV: generation
_ABANDON = r"""
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
return 1
"""

# KEYS: pending, doomed, counts
# ARGV: grace, limit
# Claims writes not heard from for grace seconds (moved to doomed), then answers the
# doomed generations released at least grace seconds ago with their chunk counts.
_CLAIM = r"""
local now = now_parts()
local cutoff = score(now - tonumber(ARGV[1]))
local limit = tonumber(ARGV[2])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, limit)
for _, gen in ipairs(stale) do
  redis.call('ZREM', KEYS[1], gen)
  redis.call('ZADD', KEYS[2], 0, gen)
end
local out = {}
for _, gen in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, limit)) do
  out[#out + 1] = gen
  out[#out + 1] = redis.call('HGET', KEYS[3], gen) or '0'
end
return out
"""

# KEYS: doomed, counts
# ARGV: generations whose chunks are gone
_FORGET = r"""
for _, gen in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], gen)
  redis.call('HDEL', KEYS[2], gen)
end
return #ARGV
"""


class Script:
    """One Lua script: EVALSHA, and EVAL (which caches it) when the server lacks it."""

    def __init__(self, body: str, *, frees_memory: bool = False) -> None:
        # The shebang makes Redis refuse a script that writes when the server is out of
        # memory (OOM); scripts without one run anyway. Scripts that only delete or
        # move bookkeeping carry allow-oom, so a full server can still be emptied.
        shebang = "#!lua flags=allow-oom\n" if frees_memory else "#!lua\n"
        self.text = shebang + _PRELUDE + body
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def __call__(self, link: Link, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run the script over a sync link; return its reply."""
        return run(self.steps(keys, args), link)

    def command(
        self, keys: Sequence[bytes], args: Sequence[Any], *, load: bool = False
    ) -> tuple[Any, ...]:
        """Return the command that runs the script: EVALSHA, or EVAL when ``load``."""
        if load:
            return ("EVAL", self.text, len(keys), *keys, *args)
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def steps(self, keys: Sequence[bytes], args: Sequence[Any]) -> Plan[Any]:
        """Return the plan that runs the script (EVALSHA; EVAL if the server lacks it)."""
        try:
            return (yield RoundTrip.call(*self.command(keys, args)))
        except NoScriptError:
            return (yield RoundTrip.call(*self.command(keys, args, load=True)))

    def staged_steps(
        self,
        staged: bytes,
        fields: Sequence[Any],
        keys: Sequence[bytes],
        args: Sequence[Any],
    ) -> Plan[Any]:
        """Return the plan that writes the Hash ``staged`` from ``fields``, then runs the
        script, atomically.

        Both go in one ``MULTI``/``EXEC``, so the script finds the Hash in place and
        nobody else ever sees it; the script must consume or delete it.
        """
        store = ("HSET", staged, *fields)
        replies = yield RoundTrip("transaction", (store, self.command(keys, args)))
        if isinstance(replies[1], NoScriptError):
            replies = yield RoundTrip("transaction", (store, self.command(keys, args, load=True)))
        reply = replies[1]
        if isinstance(reply, Exception):
            with contextlib.suppress(RedisError, OSError):
                yield RoundTrip.call("DEL", staged)
            raise reply
        return reply


class Scripts:
    """Every script the store runs."""

    commit = Script(_COMMIT)
    delete = Script(_DELETE, frees_memory=True)
    copy = Script(_COPY)
    create_dir = Script(_CREATE_DIR)
    prune = Script(_PRUNE, frees_memory=True)
    has_children = Script(_HAS_CHILDREN, frees_memory=True)
    heartbeat = Script(_HEARTBEAT)
    abandon = Script(_ABANDON, frees_memory=True)
    claim = Script(_CLAIM, frees_memory=True)
    forget = Script(_FORGET, frees_memory=True)


#: What each refusal of a script means.
REFUSALS: Mapping[bytes, tuple[type[StorageError], str]] = {
    b"match": (PreconditionFailedError, "etag does not match (if_match); nothing changed"),
    b"exists": (AlreadyExistsError, "object exists (if_none_match); nothing changed"),
    b"isdir": (ObjectModeInvalidError, "a directory has this name"),
    b"parent": (ObjectModeInvalidError, "a parent is not a directory"),
    b"file": (AlreadyExistsError, "an object has this name"),
    b"missing": (NotFoundError, "not found"),
    b"swept": (
        ServiceInternalError,
        "the write paused longer than sweep_grace and its chunks were swept; nothing changed",
    ),
}


def commit_args(
    generation: bytes | None,
    chunks: int,
    if_match: str | None,
    if_none_match: str | None,
    expire: int | None,
) -> list[bytes | str | int]:
    """Return the commit script's arguments, less those at the end that are defaults."""
    args: list[bytes | str | int] = [
        generation or b"",
        chunks,
        if_match or "",
        if_none_match or "",
        (expire or 0) * 1000,
    ]
    while args and not args[-1]:
        args.pop()
    return args


def refusal(status: bytes, op: str, service: str, path: str) -> StorageError:
    """Return the error a script's refusal ``status`` means."""
    cls, reason = REFUSALS.get(status, (ServiceInternalError, f"unexpected answer {status!r}"))
    return cls(op, service, path, reason)
