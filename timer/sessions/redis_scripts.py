"""Lua scripts of the Redis session store; each runs atomically in one command.

Records are ``"<last_n>|<L or C>|<token>"`` (see records.py). KEYS are the bucket hashes, newest
first; every write goes to KEYS[1] and renews its expiry.
"""

# Claim a session for a new connection and return the newest record before the claim.
# ARGV: client id, token, expiry in ms. The claim's count mirrors records.resume_last().
OPEN = """
local previous = false
for i = 1, #KEYS do
  previous = redis.call('HGET', KEYS[i], ARGV[1])
  if previous then break end
end
local last = -1
if previous then
  local n, state = string.match(previous, '^(-?%d+)|([LC])|')
  if n then
    last = tonumber(n)
    if state == 'L' then last = last + 1 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], last .. '|L|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return previous
"""

# Write the live counts of one node's connections, skipping a session another connection has
# claimed since (its record names another token). KEYS: the newest two buckets (a live session's
# record is always in one of them). ARGV: expiry in ms, then triples of id, token, record.
CHECKPOINT = """
local written = 0
for i = 2, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current then current = redis.call('HGET', KEYS[2], ARGV[i]) end
  if (not current) or string.sub(current, -#ARGV[i + 1] - 1) == '|' .. ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    written = written + 1
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return written
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
