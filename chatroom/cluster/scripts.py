"""The Lua scripts that make Redis the cluster's one order and its one name table.

Every change to who is where goes through :data:`APPLY` in one atomic step: the next
id, the checks (the node's lease, the member's session, names with their look-alike
keys, nonces) and the append to the stream. A node therefore never decides anything
alone; it proposes, and learns the outcome by reading the stream like every other node.

Keys, all under ``chatroom:``:

- ``epoch``: a random string set when the data set is new; a node that finds another
  one (Redis lost its data) starts over from a new stream and never reuses an id.
  ``floor``: the first id of this epoch; a resume from before it has a gap.
- ``next_id``: the last id handed out. ``events``: the stream, fields ``id``, ``event``
  (the event's NDJSON frame, no newline), ``node`` and ``meta`` (JSON for the nodes).
- ``lease:NODE``: the node's current token, with a time to live. ``nodes``: a hash of
  ``NODE/TOKEN`` incarnations to reap when their lease is gone; ``inc:NODE/TOKEN``: the
  sessions of one incarnation.
- ``s:CID``: a session (``name``, ``keys`` as JSON, ``inc``, ``tok``, ``scope`` of its
  nonces, kept across reconnects); ``r:CID``: its rooms (case-folded), each with the id
  of its join there; ``roomnames``: a room's first spelling, its name for good;
  ``names``: name key -> CID; ``tok:HASH``: the session a reconnect token belongs to;
  ``topics``: room (case-folded) -> topic; ``nonce:SCOPE:NONCE``: the id a nonce got
  and its stream entry.
"""

from __future__ import annotations

__all__ = ["APPLY", "REAP", "REFRESH", "REGISTER", "SNAPSHOT"]

# Shared by the scripts: the checks and the append. An event made by a node comes as a
# head and a tail around its id, so the stream holds exactly the bytes members are sent
# and no node encodes it again; leaves and nicks the script makes itself.
_COMMON = r"""
local P = 'chatroom:'
local MAXLEN = tonumber(ARGV[5])

-- Ids pass through Lua as doubles: exact up to 2^53, but printed as 1.7e+15 unless
-- formatted, and cjson would round them; they leave as strings.
local function append(event, node, meta)
  local id = string.format('%.0f', redis.call('INCR', P .. 'next_id'))
  local body = event[1] .. id .. event[2]
  local entry = redis.call('XADD', P .. 'events', 'MAXLEN', '~', MAXLEN, '*',
                           'id', id, 'event', body, 'node', node, 'meta', meta)
  return id, entry
end

local function leave_event(ts, room, name, reason)
  return {'{"type":"leave","id":', ',"ts":' .. cjson.encode(ts) .. ',"room":' ..
          cjson.encode(room) .. ',"name":' .. cjson.encode(name) .. ',"reason":' ..
          cjson.encode(reason) .. '}'}
end

-- A session's rooms as spelled when each was first created, in a stable order.
local function rooms_of(cid)
  local keys = redis.call('HKEYS', P .. 'r:' .. cid)
  table.sort(keys)
  local rooms = {}
  for _, room_key in ipairs(keys) do
    table.insert(rooms, redis.call('HGET', P .. 'roomnames', room_key) or room_key)
  end
  return rooms
end

-- Ends a session: a leave in each of its rooms, its names freed. Returns the count.
local function end_session(cid, reason, ts, node)
  local key = P .. 's:' .. cid
  local name = redis.call('HGET', key, 'name')
  if not name then return 0 end
  local rooms = rooms_of(cid)
  local meta = cjson.encode({cid = cid, op = 'leave'})
  for _, room in ipairs(rooms) do
    append(leave_event(ts, room, name, reason), node, meta)
  end
  for _, k in ipairs(cjson.decode(redis.call('HGET', key, 'keys'))) do
    if redis.call('HGET', P .. 'names', k) == cid then
      redis.call('HDEL', P .. 'names', k)
    end
  end
  local tok = redis.call('HGET', key, 'tok')
  if tok and tok ~= '' and redis.call('GET', P .. 'tok:' .. tok) == cid then
    redis.call('DEL', P .. 'tok:' .. tok)
  end
  redis.call('SREM', P .. 'inc:' .. redis.call('HGET', key, 'inc'), cid)
  redis.call('DEL', key, P .. 'r:' .. cid)
  -- Not an event (no id): tells every node the session's name is free again.
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', MAXLEN, '*',
             'id', 0, 'event', '', 'node', node, 'meta', cjson.encode({cid = cid, op = 'gone'}))
  return #rooms
end
"""

# ARGV: node, token, epoch, ts, maxlen, a JSON list of operations, the last id the node
# applied. Returns a JSON
# list of results in the same order: {"id": N} (the first id it got), {"err": CODE,
# "detail": TEXT}, or {"dup": N} for a nonce seen before.
APPLY = (
    _COMMON
    + r"""
local node, token, epoch, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', P .. 'epoch') ~= epoch then
  return cjson.encode({fatal = 'epoch'})
end
if redis.call('GET', P .. 'lease:' .. node) ~= token then
  return cjson.encode({fatal = 'lease'})
end
local inc = node .. '/' .. token
-- A Redis that lost its last writes (an AOF synced once a second, say) would hand out
-- ids that members already hold: the counter never goes below what a node has applied.
local applied = tonumber(ARGV[7])
if tonumber(redis.call('GET', P .. 'next_id') or '0') < applied then
  redis.call('SET', P .. 'next_id', ARGV[7])
end
local results = {}

local function session(cid)
  local key = P .. 's:' .. cid
  if redis.call('HGET', key, 'inc') ~= inc then return nil end
  return key
end

local function holder_of(keys, cid, also_free)
  for _, k in ipairs(keys) do
    local holder = redis.call('HGET', P .. 'names', k)
    if holder and holder ~= cid and holder ~= also_free then
      return redis.call('HGET', P .. 's:' .. holder, 'name') or '?', k
    end
  end
  return nil
end

local function in_room(cid, room_key)
  return redis.call('HEXISTS', P .. 'r:' .. cid, room_key) == 1
end

-- A room's first spelling is its name for good, as on a single server.
local function enter(cid, op, id)
  redis.call('HSETNX', P .. 'roomnames', op.room_key, op.room)
  redis.call('HSET', P .. 'r:' .. cid, op.room_key, id)
end

for _, op in ipairs(cjson.decode(ARGV[6])) do
  local kind, cid = op.op, op.cid
  local result
  if kind == 'join' then
    -- A reconnect names its old session by token. The name is checked first, with the
    -- old session's own keys counting as free: a refused hello changes nothing. Then
    -- the old session ends (its leaves) and the new one keeps its nonce scope, so a
    -- resend after a failover is recognised.
    local old = nil
    if op.old_tok ~= cjson.null then
      old = redis.call('GET', P .. 'tok:' .. op.old_tok)
      if old == cid then old = nil end
    end
    local holder, k = holder_of(op.keys, cid, old)
    if holder then
      result = {err = 'name_taken', detail = holder, key = k}
    else
      local scope = cid
      local took_over = 0
      if old then
        scope = redis.call('HGET', P .. 's:' .. old, 'scope') or scope
        took_over = end_session(old, 'timeout', ts, node)
      end
      local key = P .. 's:' .. cid
      redis.call('HSET', key, 'name', op.name, 'keys', cjson.encode(op.keys), 'inc', inc,
                 'tok', op.tok, 'scope', scope)
      for _, k2 in ipairs(op.keys) do redis.call('HSET', P .. 'names', k2, cid) end
      redis.call('SET', P .. 'tok:' .. op.tok, cid)
      redis.call('SADD', P .. 'inc:' .. inc, cid)
      local id = append(op.event, node, op.meta)
      enter(cid, op, id)
      result = {id = id, took_over = took_over}
    end
  elseif not session(cid) then
    result = {err = 'gone'}
  elseif kind == 'room' then
    if in_room(cid, op.room_key) then
      result = {err = 'bad_request', detail = 'already in ' .. op.room}
    elseif redis.call('HLEN', P .. 'r:' .. cid) >= op.max_rooms then
      result = {err = 'too_many_rooms'}
    else
      local id = append(op.event, node, op.meta)
      enter(cid, op, id)
      result = {id = id}
    end
  elseif kind == 'part' then
    if not in_room(cid, op.room_key) then
      result = {err = 'not_joined'}
    else
      redis.call('HDEL', P .. 'r:' .. cid, op.room_key)
      result = {id = append(op.event, node, op.meta)}
    end
  elseif kind == 'say' or kind == 'dm' then
    local ok = true
    if kind == 'say' and not in_room(cid, op.room_key) then
      result = {err = 'not_joined'}
      ok = false
    elseif kind == 'dm' then
      local to = redis.call('HGET', P .. 'names', op.to_key)
      if not to or redis.call('HGET', P .. 's:' .. to, 'name') ~= op.to then
        result = {err = 'no_such_member'}
        ok = false
      end
    end
    if ok and op.nonce ~= cjson.null then
      local scope = redis.call('HGET', P .. 's:' .. cid, 'scope')
      local nonce_key = P .. 'nonce:' .. scope .. ':' .. op.nonce
      local seen = redis.call('GET', nonce_key)
      if seen then
        -- The stored event itself, while the stream still has it: the resend's
        -- acknowledgement is then the very frame everyone else was sent.
        local space = string.find(seen, ' ', 1, true)
        local found = redis.call('XRANGE', P .. 'events', string.sub(seen, space + 1),
                                 string.sub(seen, space + 1))
        local stored = nil
        if #found > 0 then
          local fields = found[1][2]
          for i = 1, #fields, 2 do
            if fields[i] == 'event' then stored = fields[i + 1] end
          end
        end
        result = {dup = string.sub(seen, 1, space - 1), event = stored}
        ok = false
      else
        local id, entry = append(op.event, node, op.meta)
        redis.call('SET', nonce_key, id .. ' ' .. entry, 'EX', op.nonce_ttl)
        result = {id = id}
        ok = false
      end
    end
    if ok then result = {id = append(op.event, node, op.meta)} end
  elseif kind == 'topic' then
    if not in_room(cid, op.room_key) then
      result = {err = 'not_joined'}
    else
      redis.call('HSET', P .. 'topics', op.room_key, op.text)
      result = {id = append(op.event, node, op.meta)}
    end
  elseif kind == 'nick' then
    local holder, k = holder_of(op.keys, cid)
    if holder then
      result = {err = 'name_taken', detail = holder, key = k}
    else
      local key = P .. 's:' .. cid
      local old = redis.call('HGET', key, 'name')
      for _, k2 in ipairs(cjson.decode(redis.call('HGET', key, 'keys'))) do
        redis.call('HDEL', P .. 'names', k2)
      end
      for _, k2 in ipairs(op.keys) do redis.call('HSET', P .. 'names', k2, cid) end
      redis.call('HSET', key, 'name', op.name, 'keys', cjson.encode(op.keys))
      local rooms = rooms_of(cid)
      if #rooms == 0 then rooms = {''} end
      local first = nil
      for _, room in ipairs(rooms) do
        local ev = {'{"type":"nick","id":', ',"ts":' .. cjson.encode(ts) .. ',"room":' ..
                    cjson.encode(room) .. ',"old":' .. cjson.encode(old) .. ',"new":' ..
                    cjson.encode(op.name) .. '}'}
        local id = append(ev, node, op.meta)
        first = first or id
      end
      result = {id = first}
    end
  elseif kind == 'leave' then
    end_session(cid, op.reason, ts, node)
    result = {id = '0'}
  else
    result = {err = 'bad_request', detail = 'unknown operation'}
  end
  table.insert(results, result)
end
return cjson.encode(results)
"""
)

# ARGV: node, token, ttl_ms, new epoch, the id to start from when the data set is new.
# Returns {epoch, 'ok'|'busy'}: busy while another process holds the node id's lease.
REGISTER = r"""
local P = 'chatroom:'
local node, token, ttl, epoch, floor = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local current = redis.call('GET', P .. 'epoch')
if not current then
  current = epoch
  redis.call('SET', P .. 'epoch', epoch)
  redis.call('SET', P .. 'floor', ARGV[5])
  local next_id = tonumber(redis.call('GET', P .. 'next_id') or '0')
  if next_id < floor - 1 then
    redis.call('SET', P .. 'next_id', string.format('%.0f', floor - 1))
  end
end
local holder = redis.call('GET', P .. 'lease:' .. node)
if holder and holder ~= token then return {current, 'busy'} end
redis.call('SET', P .. 'lease:' .. node, token, 'PX', ttl)
redis.call('HSET', P .. 'nodes', node .. '/' .. token, 1)
return {current, 'ok'}
"""

# ARGV: node, token, ttl_ms, epoch. 1: the lease goes on; 0: it is gone (or Redis is a
# new data set), and nothing this incarnation appends will be taken again.
REFRESH = r"""
local P = 'chatroom:'
if redis.call('GET', P .. 'epoch') ~= ARGV[4] then return 0 end
if redis.call('GET', P .. 'lease:' .. ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', P .. 'lease:' .. ARGV[1], ARGV[3])
return 1
"""

# ARGV: node, token, epoch, ts, maxlen. Every incarnation whose lease is gone: each of
# its sessions leaves (reason timeout) in one step, so exactly one survivor writes them.
REAP = (
    _COMMON
    + r"""
local node, token, epoch, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', P .. 'epoch') ~= epoch then return 0 end
if redis.call('GET', P .. 'lease:' .. node) ~= token then return 0 end
local reaped = 0
for _, inc in ipairs(redis.call('HKEYS', P .. 'nodes')) do
  local slash = string.find(inc, '/', 1, true)
  local owner, owner_token = string.sub(inc, 1, slash - 1), string.sub(inc, slash + 1)
  if redis.call('GET', P .. 'lease:' .. owner) ~= owner_token then
    for _, cid in ipairs(redis.call('SMEMBERS', P .. 'inc:' .. inc)) do
      end_session(cid, 'timeout', ts, node)
      reaped = reaped + 1
    end
    redis.call('DEL', P .. 'inc:' .. inc)
    redis.call('HDEL', P .. 'nodes', inc)
  end
end
return reaped
"""
)

# No ARGV. Who is where, at one point of the stream: {"last": stream id, "epoch",
# "sessions": [{cid, name, keys, rooms: [[room, join id]]}], "topics": {room: text}}.
# A starting node builds its hub from it and reads the stream from "last" on.
SNAPSHOT = r"""
local P = 'chatroom:'
local last = redis.call('XREVRANGE', P .. 'events', '+', '-', 'COUNT', 1)
local out = {last = '0-0', sessions = {}, topics = {},
             epoch = redis.call('GET', P .. 'epoch') or '',
             next_id = redis.call('GET', P .. 'next_id') or '0',
             floor = redis.call('GET', P .. 'floor') or '0'}
if #last > 0 then out.last = last[1][1] end
for _, inc in ipairs(redis.call('HKEYS', P .. 'nodes')) do
  for _, cid in ipairs(redis.call('SMEMBERS', P .. 'inc:' .. inc)) do
    local s = redis.call('HMGET', P .. 's:' .. cid, 'name', 'keys')
    if s[1] then
      -- Each room with the id of the member's join there: the order members are
      -- listed in, the same on a node that starts late as on one that saw the joins.
      local rooms = {}
      local pairs_ = redis.call('HGETALL', P .. 'r:' .. cid)
      for i = 1, #pairs_, 2 do
        local room = redis.call('HGET', P .. 'roomnames', pairs_[i]) or pairs_[i]
        table.insert(rooms, {room, pairs_[i + 1]})
      end
      table.insert(out.sessions, {cid = cid, name = s[1], keys = cjson.decode(s[2]),
                                  rooms = rooms})
    end
  end
end
local topics = redis.call('HGETALL', P .. 'topics')
for i = 1, #topics, 2 do
  local room = redis.call('HGET', P .. 'roomnames', topics[i]) or topics[i]
  out.topics[room] = topics[i + 1]
end
return cjson.encode(out)
"""
