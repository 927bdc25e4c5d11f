"""Lua scripts of the Redis session store; each runs atomically in one command.

Records are ``"<last_n>|<L or C>|<token>"`` (see records.py). Claims live in hashes bucketed by
time (``<prefix><bucket>``); every write goes to the newest bucket and renews its expiry. Time is
always Redis's own (``TIME``), never a node's clock: nodes whose clocks disagree still choose the
same buckets and score the node registry alike. The keys a script touches are built inside it
from prefixes, which a single Redis allows (not a Redis Cluster).

Redis counts the commands a script runs, so the periodic checkpoint runs a fixed handful
whatever the number of connections (one HSET per 3,000 of them).

The epoch key (``wstime:epoch``, no expiry) tells a node that Redis lost its data: it is created
by the first checkpoint that finds it missing, as ``"<Redis time ms>:<N or R>"``, R when the
creating node knew an earlier epoch (Redis restarted empty under a running cluster).
"""

# Shared prologue: Redis's time and the bucket keys, newest first.
# ARGV[1] claim-hash prefix, ARGV[2] bucket length in ms, ARGV[3] buckets to read.
_BUCKETS = """
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local newest = math.floor(now_ms / tonumber(ARGV[2]))
local buckets = {}
for age = 0, tonumber(ARGV[3]) - 1 do
  buckets[#buckets + 1] = ARGV[1] .. (newest - age)
end
local function newest_record(client_id)
  for i = 1, #buckets do
    local value = redis.call('HGET', buckets[i], client_id)
    if value then return value end
  end
  return false
end
"""

# Claim a session for a new connection. ARGV after the prologue's: 4 client id, 5 token,
# 6 expiry in ms, 7 live-hash prefix, 8 node-registry key, 9 epoch key, 10 the epoch this node
# knows ('' if none), 11 recovery grace in ms, 12 the least count to claim (what this node's
# memory knows of a close not yet written back, -1 if nothing), 13 revocation-set prefix.
# Returns {the record the claim resumed from or false, epoch or false, 1 if claimed or 0 if
# refused because Redis recently lost its data, the claimed count, the tokens it revoked}.
#
# The count resumes from the highest of: the newest claim record (exact, closed or live: a
# connection sends nothing until a checkpoint lists it, so a claim whose handshake failed or
# timed out costs no count) and every live count of this id in the live hashes of the nodes
# in the registry (+ 1: the client may have seen one frame past a checkpoint; exact for a close
# its node holds back), except the entry of the very connection whose close the record holds
# (the close is exact and newer). Live hashes (one per node, rewritten every interval) map
# client id -> "<count>|<sequence>" ("<count>|<sequence>|C" for a held-back close), the
# connection's token being "<node channel>#<sequence>"; the registry is a sorted set scored by
# each node's last checkpoint, in Redis time. Reading them all (a few nodes) covers a claim's owner being newer
# in its live hash than in its claim, a claim aged out while its connection lasted longer than
# the TTL, a Redis restarted empty whose nodes have written their checkpoints back, and an
# older connection still ticking elsewhere (a takeover that did not reach it, or a claim written
# by a handshake that timed out): the returned record then names that connection, so the node
# can take it over.
#
# Refused: this node knew another epoch (Redis lost its data since this node's last checkpoint,
# which will write its sessions back), or the epoch is a recovery younger than the grace (other
# nodes may not have written theirs back yet). Opening then could reset a count.
#
# Revoked: every other connection that may still hold the session, whatever its count: the
# newest claim if live, and every live entry not closed. Each is added to its node's revocation
# set (``<prefix><node channel>``, members "<client id>|<sequence>"), which that node's next
# checkpoint reads (CHECKPOINT below): the connection's lease is never raised again, so it sends
# at most the one frame this claim already counted, and its node closes it. The takeover
# message the node also sends over the channel layer only makes that quicker.
OPEN = (
    _BUCKETS
    + """
local epoch = redis.call('GET', ARGV[9])
if ARGV[10] ~= '' and epoch ~= ARGV[10] then return {false, epoch, 0, -1, {}} end
if epoch then
  local created, kind = string.match(epoch, '^(%d+):([NR])$')
  if kind == 'R' and now_ms - tonumber(created) < tonumber(ARGV[11]) then
    return {false, epoch, 0, -1, {}}
  end
end

local previous = false
local last = -1
local skip = false
local revoked, is_revoked = {}, {}
local function revoke(token)
  local owner, sequence = string.match(token, '^(.*)#([^#]*)$')
  if owner and token ~= ARGV[5] and not is_revoked[token] then
    is_revoked[token] = true
    revoked[#revoked + 1] = token
    redis.call('SADD', ARGV[13] .. owner, ARGV[4] .. '|' .. sequence)
    redis.call('PEXPIRE', ARGV[13] .. owner, ARGV[6])
  end
end
local record = newest_record(ARGV[4])
if record then
  local n, state, token = string.match(record, '^(-?%d+)|([LC])|(.*)$')
  if n then
    previous = record
    last = tonumber(n)
    -- A live claim is exact: its connection sends no frame before a checkpoint lists it
    -- (hub.Connection's lease), and from then on its live entry below counts + 1.
    if state == 'C' then skip = token else revoke(token) end
  end
end
local oldest = (now_ms - tonumber(ARGV[6])) / 1000
for _, owner in ipairs(redis.call('ZRANGEBYSCORE', ARGV[8], oldest, '+inf')) do
  local value = redis.call('HGET', ARGV[7] .. owner, ARGV[4])
  if value then
    -- "<count>|<sequence>" for a live connection, "<count>|<sequence>|C" for a close its
    -- node holds back until Redis takes it: that count is exact, not + 1.
    local n, sequence, closed = string.match(value, '^(-?%d+)|([^|]*)|?(C?)$')
    local token = owner .. '#' .. (sequence or '')
    if n and token ~= skip then
      local resume = tonumber(n)
      if closed ~= 'C' then
        resume = resume + 1
        revoke(token)
      end
      if resume > last then
        last = resume
        previous = n .. '|' .. (closed == 'C' and 'C' or 'L') .. '|' .. token
      end
    end
  end
end
if tonumber(ARGV[12]) > last then last = tonumber(ARGV[12]) end
redis.call('HSET', buckets[1], ARGV[4], last .. '|L|' .. ARGV[5])
redis.call('PEXPIRE', buckets[1], ARGV[6])
return {previous, epoch, 1, last, revoked}
"""
)

# Record a connection's exact last count. ARGV after the prologue's: 4 client id, 5 token,
# 6 last count, 7 expiry in ms, 8 live-hash prefix. Returns 1 when written; 2 when another
# connection holds the session with a lower count (its owner and state stay, its count is
# raised: counts only go up over a session's life, so the higher one is the newer, "max wins");
# 0 when refused (another connection holds the session at this count or higher).
#
# Whatever the reply, the connection's entry in its node's live hash, if any, is marked closed
# at the exact count: until the node's next checkpoint drops it, an open must not count one
# frame past it (its claim record may already be overwritten by a newer, abandoned claim).
CLOSE = (
    _BUCKETS
    + """
local count = tonumber(ARGV[6])
local owner, sequence = string.match(ARGV[5], '^(.*)#([^#]*)$')
if owner then
  local live = ARGV[8] .. owner
  local entry = redis.call('HGET', live, ARGV[4])
  if entry and string.match(entry, '^-?%d+|([^|]*)') == sequence then
    redis.call('HSET', live, ARGV[4], count .. '|' .. sequence .. '|C')
  end
end
local current = newest_record(ARGV[4])
if current then
  local n, state, token = string.match(current, '^(-?%d+)|([LC])|(.*)$')
  if n and token ~= ARGV[5] then
    if tonumber(n) >= count then return 0 end
    redis.call('HSET', buckets[1], ARGV[4], count .. '|' .. state .. '|' .. token)
    redis.call('PEXPIRE', buckets[1], ARGV[7])
    return 2
  end
end
redis.call('HSET', buckets[1], ARGV[4], count .. '|C|' .. ARGV[5])
redis.call('PEXPIRE', buckets[1], ARGV[7])
return 1
"""
)

# Replace one node's live counts. KEYS: none. ARGV: 1 live hash, 2 node channel, 3 registry key,
# 4 expiry in ms, 5 epoch key, 6 the epoch this node knows ('' if none), 7 this checkpoint's
# sequence number, 8 this node's revocation set, 9 the lowest token sequence of a handshake still
# in progress on the node (else its next one), 10 the entries as one MessagePack array of field,
# value, field, value... (client id, "<count>|<token sequence>", or "<count>|<token sequence>|C"
# for a close not yet written).
# Returns {epoch, 1 if written or 0 if a later checkpoint of this node was already applied,
# the revoked connections it listed ("<client id>|<sequence>")}.
#
# A listed connection that a newer claim revoked (OPEN) is left out of the hash, so its lease is
# not raised, and returned, so that its node closes it. Its mark stays while the node may still
# list it: when listed (a reply lost to a timeout revokes it again next time), and when not yet
# listed because its handshake is still in progress (ARGV 9). It goes once neither can be.
#
# The sequence guards against a checkpoint that timed out on the node's side but reaches Redis
# after a later one (a stalled Redis): applying it would lower counts the node has since relied
# on. It is kept in the hash under '#seq', which no client id can be.
CHECKPOINT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local epoch = redis.call('GET', ARGV[5])
if not epoch then
  local kind = 'N'
  if ARGV[6] ~= '' then kind = 'R' end
  epoch = math.floor(now * 1000) .. ':' .. kind
  redis.call('SET', ARGV[5], epoch)
end
local applied = tonumber(redis.call('HGET', ARGV[1], '#seq') or '-1')
if applied >= tonumber(ARGV[7]) then return {epoch, 0, {}} end
redis.call('DEL', ARGV[1])
local entries = cmsgpack.unpack(ARGV[10])
local chunk = 6000
redis.call('HSET', ARGV[1], '#seq', ARGV[7], unpack(entries, 1, math.min(chunk, #entries)))
for first = 1 + chunk, #entries, chunk do
  redis.call('HSET', ARGV[1], unpack(entries, first, math.min(first + chunk - 1, #entries)))
end
redis.call('PEXPIRE', ARGV[1], ARGV[4])
local revoked = {}
for _, member in ipairs(redis.call('SMEMBERS', ARGV[8])) do
  local client_id, sequence = string.match(member, '^(.*)|([^|]*)$')
  local value = client_id and redis.call('HGET', ARGV[1], client_id)
  local listed, closed = false, ''
  if value then listed, closed = string.match(value, '^-?%d+|([^|]*)|?(C?)$') end
  if listed == sequence and closed ~= 'C' then
    redis.call('HDEL', ARGV[1], client_id)
    revoked[#revoked + 1] = member
  elseif listed ~= sequence and (tonumber(sequence) or -1) >= tonumber(ARGV[9]) then
    -- not listed yet: its handshake may still be in progress
  else
    redis.call('SREM', ARGV[8], member)
  end
end
redis.call('ZADD', ARGV[3], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', ARGV[3], '-inf', '(' .. (now - tonumber(ARGV[4]) / 1000))
redis.call('PEXPIRE', ARGV[3], ARGV[4])
return {epoch, 1, revoked}
"""
