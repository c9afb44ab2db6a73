/*
 * The Lua scripts of the Redis Streams broker: each is one atomic check-then-act that two consumers
 * could otherwise interleave.
 */

/**
 * Sets the idle time of pending entry ARGV[3] (group ARGV[1]) to ARGV[4] ms, only while consumer
 * ARGV[2] owns it (XCLAIM ... JUSTID leaves the delivery counter alone). 1 when set, 0 when the entry
 * is no longer this consumer's (acked, or claimed by another after `ackWaitMs`).
 */
export const SET_IDLE_IF_OWNER = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
return 1
`;

/**
 * A member's heartbeat in a group's member set KEYS[1] (a sorted set scored by expiry time on
 * Redis's clock): adds or refreshes ARGV[1] for ARGV[2] ms, drops the expired, returns the live
 * members (by score). Redis's clock, so the processes' clocks need not agree.
 */
export const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

/**
 * Removes from group ARGV[1] of stream KEYS[1] every consumer with nothing pending that has been idle
 * at least ARGV[2] ms (a crashed subscription's name). Atomic, so a consumer that reads meanwhile is
 * never removed with entries pending (which would drop them from the group). Returns how many.
 */
export const REMOVE_IDLE_CONSUMERS = `
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
`;

/**
 * XADD to stream KEYS[1] unless message id KEYS[2] (a dedup key) was added within the window: then
 * the entry id it got. ARGV[1] is the window in ms, ARGV[2] the MAXLEN (`~`) or empty, the rest the
 * entry's fields and values.
 */
export const ADD_ONCE = `
local prev = redis.call('GET', KEYS[2])
if prev then return prev end
local id
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id
`;

/** Extends lease KEYS[1] to ARGV[2] ms while ARGV[1] holds it: 1, else 0. */
export const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** Deletes lease KEYS[1] while ARGV[1] holds it. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** The scripts above, loaded on one connection (EVALSHA, falling back to EVAL once per script). */
export interface Scripts {
  setIdleIfOwner(
    stream: string,
    group: string,
    consumer: string,
    id: string,
    idleMs: number,
  ): Promise<number>;
  heartbeat(membersKey: string, member: string, ttlMs: number): Promise<string[]>;
  renewLease(leaseKey: string, holder: string, ttlMs: number): Promise<number>;
  releaseLease(leaseKey: string, holder: string): Promise<number>;
  removeIdleConsumers(stream: string, group: string, idleMs: number): Promise<number>;
  addOnce(
    stream: string,
    dedupKey: string,
    windowMs: number,
    maxLength: number | undefined,
    fields: (string | Buffer)[],
  ): Promise<unknown>;
}

/** What `scriptsOn` needs of an ioredis client. */
interface ScriptHost {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
}

type Call = (...args: (string | number | Buffer)[]) => Promise<unknown>;

export function scriptsOn(redis: ScriptHost): Scripts {
  const define = (name: string, lua: string, numberOfKeys = 1): Call => {
    redis.defineCommand(name, { numberOfKeys, lua });
    const fn = (redis as unknown as Record<string, Call>)[name]!;
    return (...args) => fn.apply(redis, args);
  };
  const setIdle = define("weftSetIdleIfOwner", SET_IDLE_IF_OWNER);
  const heartbeat = define("weftHeartbeat", HEARTBEAT);
  const renew = define("weftRenewLease", RENEW_LEASE);
  const release = define("weftReleaseLease", RELEASE_LEASE);
  const removeIdle = define("weftRemoveIdleConsumers", REMOVE_IDLE_CONSUMERS);
  const addOnce = define("weftAddOnce", ADD_ONCE, 2);
  return {
    setIdleIfOwner: async (stream, group, consumer, id, idleMs) =>
      Number(await setIdle(stream, group, consumer, id, Math.max(0, Math.round(idleMs)))),
    heartbeat: async (key, member, ttlMs) => (await heartbeat(key, member, ttlMs)) as string[],
    renewLease: async (key, holder, ttlMs) => Number(await renew(key, holder, ttlMs)),
    releaseLease: async (key, holder) => Number(await release(key, holder)),
    removeIdleConsumers: async (stream, group, idleMs) => Number(await removeIdle(stream, group, idleMs)),
    addOnce: (stream, dedupKey, windowMs, maxLength, fields) =>
      addOnce(stream, dedupKey, windowMs, maxLength ?? "", ...fields),
  };
}
