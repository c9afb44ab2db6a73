/*
 * The Lua scripts the Redis limiters run, each atomic on the server. A negative `now` argument
 * means "use the server's clock" (`TIME`), so every process limits against one clock.
 */

/** Sets `now` from ARGV[4], or from the server's clock when it is negative. */
const NOW = `
local now = tonumber(ARGV[4])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
`;

/** KEYS[1] the bucket; ARGV rate (tokens/ms), capacity, permits, now (ms, < 0 for TIME). Returns {ok, retryAfterMs}. */
export const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local permits = tonumber(ARGV[3])
${NOW}local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local ok = 0
local retry = 0
if tokens >= permits then
  tokens = tokens - permits
  ok = 1
else
  retry = math.max(1, math.ceil((permits - tokens) / rate))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {ok, retry}
`;

/**
 * KEYS[1] the log (a sorted set of permits scored by time); ARGV limit, windowMs, permits, now
 * (ms, < 0 for TIME), a unique id for this request. Returns {ok, retryAfterMs}.
 */
export const SLIDING_WINDOW = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local permits = tonumber(ARGV[3])
${NOW}redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + permits <= limit then
  for i = 1, permits do
    redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window) + 1000)
  return {1, 0}
end
local nth = used + permits - limit - 1
local oldest = redis.call('ZRANGE', KEYS[1], nth, nth, 'WITHSCORES')
return {0, math.max(1, math.ceil(tonumber(oldest[2]) + window - now))}
`;
