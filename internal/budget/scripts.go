package budget

import "github.com/redis/rueidis"

// luaCommon is shared by the scripts: now in ms from the Redis clock (lease
// deadlines never depend on a gateway's clock), exact integer formatting,
// and the release of a lease's share of "reserved" along its chain.
const luaCommon = `
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function S(x)
  if x == 0 then return '0' end -- never "-0"
  return string.format('%.0f', x)
end
-- A lease contributes max(amount, 0) to "reserved" of every agent of its
-- chain; its amount goes negative when requests cost more than it held.
local function share(a) if a > 0 then return a end return 0 end
local function adjust(chain, delta)
  if not chain or delta == 0 then return end
  for a in string.gmatch(chain, '%S+') do
    local k = p .. 'r:' .. a
    if redis.call('INCRBY', k, S(delta)) <= 0 then redis.call('DEL', k) end
  end
end
`

// reserveLua: KEYS[1] = the tree's lease set. ARGV: prefix, lease member,
// requested, minimum grant, lease TTL ms, chain (ids separated by spaces),
// number of chain agents, then per agent: id, number of policies, and per
// policy: limit, granularity, number of buckets, newest bucket.
// Returns {granted, min headroom, binding agent index, binding policy index,
// 1 if the owner held a lease before the call, 1 if no policy limits the
// chain, the lease amount after the call}.
const reserveLua = luaCommon + `
local exp = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
for _, m in ipairs(exp) do
  local lk = p .. 'l:' .. m
  adjust(redis.call('HGET', lk, 'c'), -share(tonumber(redis.call('HGET', lk, 'a') or '0')))
  redis.call('DEL', lk)
  redis.call('ZREM', KEYS[1], m)
end
local requested = tonumber(ARGV[3])
local minGrant = tonumber(ARGV[4])
local n = tonumber(ARGV[7])
local i = 8
local minHead, bindA, bindP = nil, -1, -1
for ai = 0, n - 1 do
  local id = ARGV[i]
  local np = tonumber(ARGV[i + 1])
  i = i + 2
  local res = tonumber(redis.call('GET', p .. 'r:' .. id) or '0')
  for pi = 0, np - 1 do
    local limit, g = tonumber(ARGV[i]), ARGV[i + 1]
    local nb, newest = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    i = i + 4
    local keys = {}
    for b = newest - nb + 1, newest do keys[#keys + 1] = p .. 's:' .. id .. ':' .. g .. ':' .. S(b) end
    local sum = 0
    for _, v in ipairs(redis.call('MGET', unpack(keys))) do
      if v then sum = sum + tonumber(v) end
    end
    local head = limit - sum - res
    if minHead == nil or head < minHead then minHead, bindA, bindP = head, ai, pi end
  end
end
local grant = requested
if minHead ~= nil and minHead < grant then grant = minHead end
if grant <= 0 or grant < minGrant then grant = 0 end
local lk = p .. 'l:' .. ARGV[2]
local prev = redis.call('HGET', lk, 'a')
local held, a = 0, 0
if prev then held, a = 1, tonumber(prev) end
if grant > 0 then
  local chain = ARGV[6]
  if held == 1 then chain = redis.call('HGET', lk, 'c') else redis.call('HSET', lk, 'c', chain) end
  adjust(chain, share(a + grant) - share(a))
  a = a + grant
  redis.call('HSET', lk, 'a', S(a))
  redis.call('HDEL', lk, 'rel', 'pend')
end
if grant > 0 or held == 1 then redis.call('ZADD', KEYS[1], S(now + tonumber(ARGV[5])), ARGV[2]) end
local unlimited = 0
if minHead == nil then minHead, unlimited = -1, 1 end
return {S(grant), S(minHead), bindA, bindP, held, unlimited, S(a)}
`

// releaseLua: KEYS[1] = the tree's lease set. ARGV: prefix, lease member,
// unused amount, drain ms. What the gateway charged but the aggregator has
// not applied yet stays reserved (until drain ms, then reclaimed). A lease
// a reconcile restored ('pend', restorePendingLua) holds only such charges
// until its gateway is granted again: nothing of it is the gateway's to
// give back.
const releaseLua = luaCommon + `
local lk = p .. 'l:' .. ARGV[2]
local a = redis.call('HGET', lk, 'a')
if not a then return '0' end
if redis.call('HEXISTS', lk, 'pend') == 1 then
  redis.call('HSET', lk, 'rel', '1')
  redis.call('ZADD', KEYS[1], S(now + tonumber(ARGV[4])), ARGV[2])
  return '0'
end
a = tonumber(a)
local d = tonumber(ARGV[3])
if d > share(a) then d = share(a) end
if d < 0 then d = 0 end
adjust(redis.call('HGET', lk, 'c'), -d)
a = a - d
if a <= 0 then
  redis.call('DEL', lk)
  redis.call('ZREM', KEYS[1], ARGV[2])
else
  redis.call('HSET', lk, 'a', S(a), 'rel', '1')
  redis.call('ZADD', KEYS[1], S(now + tonumber(ARGV[4])), ARGV[2])
end
return S(d)
`

// applyLua: KEYS[1] = the fence of (group, topic, partition, root). ARGV:
// prefix, the tree's lease set, lowest and highest offset of the batch,
// number of buckets, then per bucket: key, increment, expiry seconds;
// number of leases, then per lease: member, charged reservation. The
// caller sums the batch per key. Returns {0, fence} when the whole batch is
// at or below the fence (nothing changes), {1, fence} when it straddles
// the fence (nothing changes; the caller drops offsets <= fence and runs
// again), {2, new fence} when applied.
const applyLua = luaCommon + `
local fence = tonumber(redis.call('GET', KEYS[1]) or '-1')
local lo, hi = tonumber(ARGV[3]), tonumber(ARGV[4])
if hi <= fence then return {0, S(fence)} end
if lo <= fence then return {1, S(fence)} end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('INCRBY', ARGV[i], ARGV[i + 1])
  redis.call('EXPIRE', ARGV[i], ARGV[i + 2])
  i = i + 3
end
local nl = tonumber(ARGV[i])
i = i + 1
for _ = 1, nl do
  local m, res = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local lk = p .. 'l:' .. m
  local a = redis.call('HGET', lk, 'a')
  if a then
    a = tonumber(a)
    adjust(redis.call('HGET', lk, 'c'), share(a - res) - share(a))
    if a - res <= 0 and redis.call('HGET', lk, 'rel') then
      redis.call('DEL', lk)
      redis.call('ZREM', ARGV[2], m)
    else
      redis.call('HSET', lk, 'a', S(a - res))
    end
  end
end
redis.call('SET', KEYS[1], S(hi), 'EX', 7776000)
return {2, S(hi)}
`

// restorePendingLua: KEYS[1] = the tree's lease set. ARGV: prefix, drain
// ms, number of leases, then per lease: member, chain, amount. A lease with
// no record (Redis lost it) gets one holding amount — charges whose events
// the aggregator has not applied yet — released ('rel') and restored
// ('pend'), reclaimed after drain ms; its share joins "reserved" along the
// chain. A lease with a record keeps it: that record holds its charges
// already. Returns the number of leases restored.
const restorePendingLua = luaCommon + `
local n = 0
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local m, chain, amt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local lk = p .. 'l:' .. m
  if amt > 0 and redis.call('EXISTS', lk) == 0 then
    redis.call('HSET', lk, 'a', S(amt), 'c', chain, 'rel', '1', 'pend', '1')
    adjust(chain, share(amt))
    redis.call('ZADD', KEYS[1], S(now + tonumber(ARGV[2])), m)
    n = n + 1
  end
end
return n
`

var (
	restorePendingScript = rueidis.NewLuaScript(restorePendingLua)
	reserveScript        = rueidis.NewLuaScript(reserveLua)
	releaseScript        = rueidis.NewLuaScript(releaseLua)
	applyScript          = rueidis.NewLuaScript(applyLua)
)
