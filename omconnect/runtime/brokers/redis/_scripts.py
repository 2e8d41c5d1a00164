"""The Lua scripts of the driver: each is one atomic step on the server, one round trip.

Why scripts rather than a MULTI of single commands: redis-py parses replies in Python, one
element at a time, so a MULTI of 1000 ``XADD`` costs 1000 ``QUEUED`` replies plus 1000 ids
(about 30 thousand messages a second), and a plain ``XREADGROUP`` reply costs a dozen parsed
elements per entry (about 20 thousand). A script is as atomic as a MULTI/EXEC, and these
take and return whole columns instead: ``APPEND`` gets every column of a batch as a few
strings (offsets, bytes, validity) and does the ``XADD`` calls on the server; ``READ`` does
the ``XAUTOCLAIM`` / ``XREADGROUP`` calls and returns the entries' fields as columns (lengths
packed little-endian, bytes concatenated) that become Arrow arrays without a loop over
messages in Python.

Entry ids are ``0-<n>``: ``XADD key 0-* ...`` numbers entries 1, 2, 3... per stream, from the
stream's own last id, so the offset of an entry is ``n - 1``: from 0, without gaps, whoever
writes, and trimming keeps the ids of what is left.
"""

from __future__ import annotations

# Fields of an entry: value, key, timestamp (decimal text), message_id, one ``h:<name>``
# per header (``n:<name>`` with an empty value for a header whose value is null) and
# ``headers`` (empty) when the header map is empty rather than null. Absent value, key or id
# fields mean null.
APPEND = r"""
local n = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local retention_ms = tonumber(ARGV[3])
local vo, vd, vv = ARGV[4], ARGV[5], ARGV[6]
local ko, kd, kv = ARGV[7], ARGV[8], ARGV[9]
local tso, tsd = ARGV[10], ARGV[11]
local io, idd, iv = ARGV[12], ARGV[13], ARGV[14]
local mo, mv = ARGV[15], ARGV[16]
local no, nd = ARGV[17], ARGV[18]
local ho, hd, hv = ARGV[19], ARGV[20], ARGV[21]
local sub, byte, unpack_int = string.sub, string.byte, struct.unpack
local function at(offsets, i)
  return (unpack_int('<i4', offsets, 4 * i + 1))
end
local function slice(offsets, data, i)
  return sub(data, at(offsets, i) + 1, at(offsets, i + 1))
end
local first, last
for i = 0, n - 1 do
  local f = {}
  local c = 0
  if byte(vv, i + 1) == 1 then
    f[c + 1] = 'value'; f[c + 2] = slice(vo, vd, i); c = c + 2
  end
  if byte(kv, i + 1) == 1 then
    f[c + 1] = 'key'; f[c + 2] = slice(ko, kd, i); c = c + 2
  end
  f[c + 1] = 'timestamp'; f[c + 2] = slice(tso, tsd, i); c = c + 2
  if byte(iv, i + 1) == 1 then
    f[c + 1] = 'message_id'; f[c + 2] = slice(io, idd, i); c = c + 2
  end
  if byte(mv, i + 1) == 1 then
    local h0, h1 = at(mo, i), at(mo, i + 1)
    if h0 == h1 then
      f[c + 1] = 'headers'; f[c + 2] = ''; c = c + 2
    end
    for j = h0, h1 - 1 do
      local name = slice(no, nd, j)
      if byte(hv, j + 1) == 1 then
        f[c + 1] = 'h:' .. name; f[c + 2] = slice(ho, hd, j)
      else
        f[c + 1] = 'n:' .. name; f[c + 2] = ''
      end
      c = c + 2
    end
  end
  last = redis.call('XADD', KEYS[1], '0-*', unpack(f))
  first = first or last
end
if maxlen > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
end
if retention_ms > 0 then
  -- A checkpoint (time, last entry) at most every 1/100 of the retention: entries up to a
  -- checkpoint older than the retention go, whole stream nodes at a time.
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local step = math.max(1000, math.floor(retention_ms / 100))
  local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if not newest[2] or now - tonumber(newest[2]) >= step then
    redis.call('ZADD', KEYS[2], now, sub(last, 3))
  end
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - retention_ms)
  if #old > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', '0-' .. old[#old])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - retention_ms)
  end
end
return {first, last}
"""

# KEYS: the streams to read, in order. ARGV: group, consumer, budget, then per stream its
# mode ('c' claims the entries other consumers left pending, with ARGV min idle ms and
# scan cursor; 'r' reads new entries). Returns {meta, seqs, value lengths, values, key
# lengths, keys, timestamps, id lengths, ids, header counts, header name lengths, names,
# header value lengths, header values}; meta has per stream {count, mode, cursor, wait id}
# (wait id: the last entry id, for a blocking XREAD that wakes when something follows).
READ = r"""
local group, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local sub, pack, match = string.sub, struct.pack, string.match
local seqs, vl, vd, kl, kd, ts, il, idd = {}, {}, {}, {}, {}, {}, {}, {}
local hc, nl, nd, hl, hd = {}, {}, {}, {}, {}
local meta = {}
-- Packed lengths, made once per distinct length.
local L = setmetatable({}, {__index = function(t, size)
  local packed = pack('<i4', size)
  t[size] = packed
  return packed
end})
local NULL = L[-1]
local n, nv, nk, ni, nh = 0, 0, 0, 0, 0
local function emit(entry)
  local eid, f = entry[1], entry[2]
  if sub(eid, 1, 2) ~= '0-' then
    error('entry ' .. eid .. ' was not written by omconnect (ids are 0-<number>)')
  end
  n = n + 1
  seqs[n] = sub(eid, 3)
  vl[n], kl[n], il[n] = NULL, NULL, NULL
  local count, stamp = -1, '0'
  for j = 1, #f, 2 do
    local name, v = f[j], f[j + 1]
    if name == 'value' and vl[n] == NULL then
      nv = nv + 1; vd[nv] = v; vl[n] = L[#v]
    elseif name == 'key' and kl[n] == NULL then
      nk = nk + 1; kd[nk] = v; kl[n] = L[#v]
    elseif name == 'timestamp' and match(v, '^%-?%d+$') then
      stamp = v
    elseif name == 'message_id' and il[n] == NULL then
      ni = ni + 1; idd[ni] = v; il[n] = L[#v]
    elseif name == 'headers' then
      if count < 0 then count = 0 end
    else
      if count < 0 then count = 0 end
      count = count + 1
      nh = nh + 1
      local kind = sub(name, 1, 2)
      if kind == 'h:' or kind == 'n:' then name = sub(name, 3) end
      nl[nh] = L[#name]; nd[nh] = name
      if kind == 'n:' then hl[nh] = NULL; hd[nh] = '' else hl[nh] = L[#v]; hd[nh] = v end
    end
  end
  ts[n] = stamp
  hc[n] = L[count]
end
local function delivered(key)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, last
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] end
      if g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == group then return tonumber(sub(last, 3)) or 0, last end
  end
  return 0, '0-0'
end
-- Whether every entry up to ``last_id`` that another consumer has pending has been idle
-- ``min_idle`` ms: only then is a claim sure to skip none (claiming past an entry that is
-- not idle yet would deliver later entries before it).
local function settled(key, last_id, min_idle)
  local start = '-'
  while true do
    local page = redis.call('XPENDING', key, group, start, last_id, 1000)
    for _, p in ipairs(page) do
      if p[2] ~= consumer and p[3] < min_idle then return false end
    end
    if #page < 1000 then return true end
    start = '(' .. page[#page][1]
  end
end
-- Consumers of earlier owners with nothing pending any more: only bookkeeping, removed
-- (one with pending entries keeps them).
local function forget_idle_consumers(key)
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', key, group)) do
    local name, pending
    for j = 1, #c, 2 do
      if c[j] == 'name' then name = c[j + 1] end
      if c[j] == 'pending' then pending = c[j + 1] end
    end
    if name ~= consumer and pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', key, group, name)
    end
  end
end
for i, key in ipairs(KEYS) do
  local mode = ARGV[1 + 3 * i]
  local cursor = ARGV[3 + 3 * i]
  local count = 0
  if mode == 'c' and remaining > 0 then
    -- Entries up to the group's last delivered one; later ones come again through '>'.
    local upto, last_id = delivered(key)
    local min_idle = tonumber(ARGV[2 + 3 * i])
    local ready = cursor ~= '0-0' or min_idle == 0 or settled(key, last_id, min_idle)
    while ready and remaining > 0 do
      local claimed = redis.call(
        'XAUTOCLAIM', key, group, consumer, min_idle, cursor, 'COUNT', remaining)
      cursor = claimed[1]
      for _, entry in ipairs(claimed[2]) do
        if (tonumber(sub(entry[1], 3)) or 0) <= upto then
          emit(entry); count = count + 1; remaining = remaining - 1
        end
      end
      if cursor == '0-0' then
        mode = 'r'
        forget_idle_consumers(key)
        break
      end
    end
  end
  local wait = ''
  if mode == 'r' and remaining > 0 then
    local got = redis.call(
      'XREADGROUP', 'GROUP', group, consumer, 'COUNT', remaining, 'STREAMS', key, '>')
    local entries = got and got[1][2] or {}
    for _, entry in ipairs(entries) do
      emit(entry); count = count + 1; remaining = remaining - 1
    end
    if #entries == 0 then
      local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
      wait = newest[1] and newest[1][1] or '0-0'
    end
  end
  meta[i] = {count, mode, cursor, wait}
end
local c = table.concat
return {meta, c(seqs, ' '), c(vl), c(vd), c(kl), c(kd), c(ts, ' '), c(il), c(idd),
  c(hc), c(nl), c(nd), c(hl), c(hd)}
"""

# KEYS: streams. Returns each one's last generated id number (0 for a missing stream): the
# offset after its last entry.
HIGH_WATERS = r"""
local result = {}
for i, key in ipairs(KEYS) do
  result[i] = '0'
  if redis.call('EXISTS', key) == 1 then
    local info = redis.call('XINFO', 'STREAM', key)
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then result[i] = string.sub(info[j + 1], 3) end
    end
  end
end
return result
"""

# KEYS[1]: a stream. ARGV: group, offset. The group reads from ``offset`` next (at most the
# high-water), creating the group there if needed.
SEEK = r"""
local target = ARGV[2]
local high = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for j = 1, #info, 2 do
    if info[j] == 'last-generated-id' then high = tonumber(string.sub(info[j + 1], 3)) end
  end
end
if tonumber(target) > high then target = tostring(high) end
local made = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0-' .. target, 'MKSTREAM')
if type(made) == 'table' and made.err then
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], '0-' .. target)
end
return target
"""

# KEYS[1]: a stream. ARGV: group, offset. Acknowledges every entry pending in the group
# before ``offset`` (a commit: they are processed). Returns how many.
ACK_BELOW = r"""
if tonumber(ARGV[2]) < 1 then return 0 end
local total = 0
while true do
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '0-' .. ARGV[2], 1000)
  if type(pending) ~= 'table' or pending.err or #pending == 0 then return total end
  local ids = {}
  for i, p in ipairs(pending) do ids[i] = p[1] end
  total = total + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  if #pending < 1000 then return total end
end
"""

# KEYS[1]: a group's heartbeats, KEYS[2]: its document. ARGV: member id, or '' to only
# look. Returns the server time (ms), every member's last heartbeat as a flat list, and the
# document (nil when there is none).
HEARTBEAT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
local beats = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
return {tostring(now), beats, redis.call('GET', KEYS[2])}
"""
