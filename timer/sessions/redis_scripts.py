"""Lua scripts of the Redis session store; each runs atomically in one command.

Records are ``"<last_n>|<L or C>|<token>"`` (see records.py). KEYS are the bucket hashes, newest
first; every write goes to KEYS[1] and renews its expiry. Scripts run on connect and close, never
per interval: Redis counts the commands a script runs, so the periodic checkpoint is a plain
MULTI of three commands instead (see redis_store.py).
"""

# Claim a session for a new connection. ARGV: client id, token, expiry in ms, live-hash prefix.
# Returns {newest record before the claim or false, its owner's live count or false}. When the
# newest record is live, its owner's live hash (one per node, rewritten every interval) holds a
# newer count than the claim; that hash's name is only known from the record, hence read here
# (a single Redis, not a cluster). The claim's count mirrors records.resume_last().
OPEN = """
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
        live = redis.call('HGET', ARGV[4] .. owner, ARGV[1])
        if live and tonumber(live) and tonumber(live) > last then last = tonumber(live) end
      end
      last = last + 1
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], last .. '|L|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
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
