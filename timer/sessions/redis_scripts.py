"""Lua scripts of the Redis session store; each runs atomically in one command.

Records are ``"<last_n>|<L or C>|<token>"`` (see records.py). KEYS are the bucket hashes, newest
first; every write goes to KEYS[1] and renews its expiry. Scripts run on connect and close, never
per interval: Redis counts the commands a script runs, so the periodic checkpoint is a plain
MULTI of six commands instead (see redis_store.py).
"""

# Claim a session for a new connection. ARGV: client id, token, expiry in ms, live-hash prefix,
# node-registry key, the oldest checkpoint time (wall-clock seconds) of a node still alive.
# Returns {newest record before the claim or false, its owner's live count or false}.
#
# Live hashes (one per node, rewritten every interval) map client id -> "<count>|<sequence>",
# the connection's token being "<node channel>#<sequence>". When the newest record is live, its
# owner's live hash holds a newer count than the claim; that hash's name is only known from the
# record, hence read here (a single Redis, not a cluster). When there is no record at all, the
# session may still be live: its claim aged out while the connection lasted longer than the TTL,
# or Redis restarted empty and the owner has since written its checkpoint back. The registry of
# nodes (a sorted set scored by each node's last checkpoint) names the live hashes to look in.
# The claim's count mirrors records.resume_last().
OPEN = """
local function live_count(owner)
  local value = redis.call('HGET', ARGV[4] .. owner, ARGV[1])
  if not value then return false, false end
  local n, sequence = string.match(value, '^(-?%d+)|(.*)$')
  if not n then return false, false end
  return tonumber(n), sequence
end

local previous = false
for i = 1, #KEYS do
  previous = redis.call('HGET', KEYS[i], ARGV[1])
  if previous then break end
end
local last = -1
local live = false
if previous then
  local n, state, token = string.match(previous, '^(-?%d+)|([LC])|(.*)$')
  if n then
    last = tonumber(n)
    if state == 'L' then
      local owner = string.match(token, '^(.*)#%d+$')
      if owner then
        live = live_count(owner)
        if live and live > last then last = live end
      end
      last = last + 1
    end
  end
else
  for _, owner in ipairs(redis.call('ZRANGEBYSCORE', ARGV[5], ARGV[6], '+inf')) do
    local n, sequence = live_count(owner)
    if n and n >= last then
      last = n
      previous = n .. '|L|' .. owner .. '#' .. sequence
    end
  end
  if previous then last = last + 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], last .. '|L|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if live then live = tostring(live) end
return {previous, live}
"""

# Record a connection's exact last count, unless another connection holds the session now.
# ARGV: client id, token, record, expiry in ms.
CLOSE = """
local current = false
for i = 1, #KEYS do
  current = redis.call('HGET', KEYS[i], ARGV[1])
  if current then break end
end
if current and string.sub(current, -#ARGV[2] - 1) ~= '|' .. ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
