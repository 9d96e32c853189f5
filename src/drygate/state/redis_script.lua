#!lua
-- drygate's run-state transitions in Redis: one script, so every transition is atomic
-- (Redis runs a script to its end before any other command). The shebang line makes
-- Redis 7 treat it as a script that may write: Redis refuses it up front, before any
-- effect, when it is out of memory (maxmemory with noeviction) or a read-only replica.
--
-- The transition is drygate.engine.apply_transition, line for line; the Python test
-- suite runs the same dict-model state machine against this script and the other stores.
--
-- KEYS: 1 meta (hash), 2 seq (string), 3 run state (string, JSON), 4 run journal (stream),
--       5 runs (zset: run id -> last seen), 6 tombstones (hash: run id -> state JSON of
--       runs that went dry; never expires), 7 metrics (hash of counters), 8 clock (the
--       latest journal timestamp: timestamps never go backwards against the journal order,
--       even when the hosts' clocks disagree a little), 9 ledger (hash: run id -> the apply
--       ledger record, JSON {"version", "record"}; see drygate.plan.apply), 10 the run's
--       fingerprints (hash: path -> fingerprint; see drygate.integrity).
-- ARGV[1]: the operation; the other ARGV depend on it (see each branch).
-- Numbers that are times travel as the client's own strings and are stored unchanged
-- (Lua numbers would lose digits); counters and sequence numbers are integers.

local META, SEQ, RUN, JOURNAL, RUNS, TOMBS, METRICS, CLOCK, LEDGER, FP =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local FORMAT = '1'
local STRICT = {live = 0, sticky = 1, dry = 2}
local op = ARGV[1]

if op == 'init' then
    -- ARGV: 2 store id, 3 created at, 4 dry until ('' for none)
    local existing = redis.call('HGET', META, 'store_id')
    if existing then return {'exists', existing} end
    redis.call('HSET', META, 'store_id', ARGV[2], 'created_at', ARGV[3], 'format', FORMAT)
    if ARGV[4] ~= '' then redis.call('HSET', META, 'dry_until', ARGV[4]) end
    return {'created', ARGV[2]}
end

local meta = redis.call('HMGET', META, 'store_id', 'format', 'dry_until')
if not meta[1] then return redis.error_reply('DRYGATE_NOINIT the store marker is missing') end
if meta[2] ~= FORMAT then return redis.error_reply('DRYGATE_FORMAT ' .. tostring(meta[2])) end
local store_id = meta[1]

if op == 'ping' then return {'pong', store_id} end

if op == 'fingerprints' then
    -- ARGV: 2 replace (1: HSET, 0: HSETNX per path), 3 retention s ('0': no expiry),
    -- 4.. path, fingerprint, path, fingerprint... Behind the marker check above: a store
    -- without its marker (never initialized, or its data lost) gets nothing written.
    for i = 4, #ARGV - 1, 2 do
        if ARGV[2] == '1' then redis.call('HSET', FP, ARGV[i], ARGV[i + 1])
        else redis.call('HSETNX', FP, ARGV[i], ARGV[i + 1]) end
    end
    if ARGV[3] ~= '0' then redis.call('EXPIRE', FP, ARGV[3]) end
    return {'ok', store_id}
end

-- A transition that reaches Redis after the client gave up (its deadline plus the
-- allowed clock skew) is dropped: the client already blocked the call, so journaling
-- a decision for it would record something that did not happen.
local function late(deadline_ms, skew_ms)
    if deadline_ms == '0' then return false end
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if now_ms > tonumber(deadline_ms) + tonumber(skew_ms) then return tostring(now_ms) end
    return false
end

-- The journal timestamp of a new entry: the client's clock, but never before the last one.
local function journal_time(now)
    local last = redis.call('GET', CLOCK)
    if last and tonumber(last) > tonumber(now) then now = last end
    redis.call('SET', CLOCK, now)
    return now
end

local function load(run_id)
    local text = redis.call('GET', RUN)
    if not text then text = redis.call('HGET', TOMBS, run_id) end
    if not text then return nil end
    return cjson.decode(text)
end

local function save(run_id, s, now, retention)
    local text = cjson.encode(s)
    redis.call('SET', RUN, text, 'EX', retention)
    redis.call('ZADD', RUNS, now, run_id)
    -- A run that is (or went) dry keeps its state without expiry, so neither
    -- retention nor prune can turn it live (case CC-15).
    if s.mode == 'dry' or s.dry_since ~= nil then redis.call('HSET', TOMBS, run_id, text) end
    return text
end

local function new_state(run_id, mode, now)
    return {run_id = run_id, mode = mode, created_at = now, last_seen_at = now, calls = 0, writes = 0,
            dry_writes = 0, allowed_writes = 0, denied = 0, asked = 0}
end

if op == 'transact' then
    -- ARGV: 2 run id, 3 mode, 4 gated (0/1), 5 triggers dry (0/1), 6 action if live,
    -- 7 now, 8 tool name ('' for none), 9 effect, 10 entry JSON, 11 retention s,
    -- 12 client deadline (epoch ms, '0' for none), 13 allowed clock skew ms
    local too_late = late(ARGV[12], ARGV[13])
    if too_late then return {'late', too_late} end
    local run_id, mode, now = ARGV[2], ARGV[3], journal_time(ARGV[7])
    local gated, triggers, action_if_live = ARGV[4] == '1', ARGV[5] == '1', ARGV[6]
    if meta[3] and tonumber(now) < tonumber(meta[3]) then mode = 'dry' end  -- recovered store: all runs dry
    local seq = redis.call('INCR', SEQ)
    local s = load(run_id)
    if s == nil then
        s = new_state(run_id, mode, now)
    elseif STRICT[mode] > STRICT[s.mode] then
        s.mode = mode
    end
    s.calls = s.calls + 1
    s.last_seen_at = now
    local made_dry = false
    local action
    if not gated then
        action = action_if_live
    else
        s.writes = s.writes + 1
        if action_if_live == 'deny' then
            action = 'deny'
        elseif s.dry_since ~= nil then
            action = 'dry'
        elseif s.mode == 'dry' or (s.mode == 'sticky' and triggers) then
            action = 'dry'
            made_dry = true
            s.dry_since = seq
            s.dry_at = now
            if ARGV[8] ~= '' then s.dry_cause = ARGV[8] end
            s.dry_call = s.calls
        else
            action = action_if_live
        end
        if action == 'dry' then
            s.dry_writes = s.dry_writes + 1
        elseif action == 'allow' then
            s.allowed_writes = s.allowed_writes + 1
        end
    end
    if action == 'deny' then
        s.denied = s.denied + 1
    elseif action == 'ask' then
        s.asked = s.asked + 1
    end
    local because = ''
    if action == 'dry' then because = tostring(s.dry_since) end
    local made = made_dry and '1' or '0'
    redis.call('XADD', JOURNAL, seq .. '-0', 'kind', 'call', 'entry', ARGV[10], 'ts', now, 'call', s.calls,
        'action', action, 'made_run_dry', made, 'dry_because_of', because, 'deadline', ARGV[12],
        'gated', ARGV[4])
    redis.call('EXPIRE', JOURNAL, ARGV[11])
    local text = save(run_id, s, now, ARGV[11])
    redis.call('HINCRBY', METRICS, 'decisions|' .. ARGV[9] .. '|' .. action, 1)
    if made_dry then redis.call('HINCRBY', METRICS, 'runs_went_dry', 1) end
    return {'ok', action, seq, made, because, s.calls, text, store_id, now}
end

if op == 'ensure' then
    -- ARGV: 2 run id, 3 mode, 4 now, 5 retention s, 6 client deadline ms, 7 skew ms
    local too_late = late(ARGV[6], ARGV[7])
    if too_late then return {'late', too_late} end
    local run_id, mode, now = ARGV[2], ARGV[3], ARGV[4]
    local s = load(run_id)
    if s == nil then
        s = new_state(run_id, mode, now)
    elseif STRICT[mode] > STRICT[s.mode] then
        s.mode = mode
    end
    return {'ok', save(run_id, s, s.last_seen_at, ARGV[5]), store_id}
end

if op == 'result' then
    -- ARGV: 2 run id, 3 entry JSON (call id, tool name, result), 4 now, 5 retention s,
    -- 6 client deadline ms, 7 skew ms
    local too_late = late(ARGV[6], ARGV[7])
    if too_late then return {'late', too_late} end
    local seq = redis.call('INCR', SEQ)
    redis.call('XADD', JOURNAL, seq .. '-0', 'kind', 'result', 'entry', ARGV[3], 'ts', journal_time(ARGV[4]))
    redis.call('EXPIRE', JOURNAL, ARGV[5])
    redis.call('EXPIRE', RUN, ARGV[5])
    redis.call('ZADD', RUNS, 'NX', ARGV[4], ARGV[2])
    return {'ok', seq, store_id}
end

if op == 'void' then
    -- ARGV: 2 run id, 3 call id ('' for none), 4 the blocked transition's client deadline
    -- (epoch ms, as sent), 5 now, 6 retention s.
    -- A transition whose reply reached the client after its deadline: the client blocked
    -- the call, so the decision did not happen. Its journal entry is removed and the run's
    -- counters are undone (the run's dryness is kept: stricter is safe), and a 'result'
    -- entry (tool drygate/blocked) records what was voided. Returns {'ok', voided seq or 0}.
    local entries = redis.call('XREVRANGE', JOURNAL, '+', '-', 'COUNT', 500)
    for _, e in ipairs(entries) do
        local f = {}
        for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
        local data = f.kind == 'call' and f.deadline == ARGV[4] and cjson.decode(f.entry)
        local cid = data and data.call_id
        if type(cid) ~= 'string' then cid = '' end
        if data and cid == ARGV[3] then
            redis.call('XDEL', JOURNAL, e[1])
            local s = load(ARGV[2])
            if s then
                local action = f.action
                if f.gated == '1' then
                    s.writes = s.writes - 1
                    if action == 'dry' then s.dry_writes = s.dry_writes - 1 end
                    if action == 'allow' then s.allowed_writes = s.allowed_writes - 1 end
                end
                if action == 'deny' then s.denied = s.denied - 1 end
                if action == 'ask' then s.asked = s.asked - 1 end
                save(ARGV[2], s, s.last_seen_at, ARGV[6])
            end
            redis.call('HINCRBY', METRICS, 'decisions|' .. tostring(data.effect) .. '|' .. f.action, -1)
            local voided = tonumber((string.gsub(e[1], '-.*', '')))
            local seq = redis.call('INCR', SEQ)
            redis.call('XADD', JOURNAL, seq .. '-0', 'kind', 'result', 'ts', journal_time(ARGV[5]), 'entry',
                cjson.encode({tool_name = 'drygate/blocked', result = {voided_seq = voided, call_id = ARGV[3],
                    tool_name = data.tool_name, action = f.action, why = 'the store answered after the deadline, '
                    .. 'so the host blocked the call: the decision did not happen'}}))
            return {'ok', voided}
        end
    end
    return {'ok', 0}
end

if op == 'prune' then
    -- ARGV: 2 run id, 3 cutoff (epoch s). Drops the run's journal when it has been idle
    -- since before the cutoff; a run that went dry keeps its tombstone.
    local run_id = ARGV[2]
    local last = redis.call('ZSCORE', RUNS, run_id)
    if not last or tonumber(last) >= tonumber(ARGV[3]) then return {'ok', 0} end
    local removed = redis.call('XLEN', JOURNAL)
    redis.call('DEL', JOURNAL, RUN)
    if redis.call('HEXISTS', TOMBS, run_id) == 0 then
        redis.call('ZREM', RUNS, run_id)
    end
    return {'ok', removed}
end

if op == 'ledger_put' then
    -- ARGV: 2 run id, 3 expected version, 4 record JSON. Compare-and-set.
    local current = redis.call('HGET', LEDGER, ARGV[2])
    local version = 0
    if current then version = cjson.decode(current).version end
    if tostring(version) ~= ARGV[3] then return {'conflict', tostring(version)} end
    redis.call('HSET', LEDGER, ARGV[2], '{"version":' .. (version + 1) .. ',"record":' .. ARGV[4] .. '}')
    return {'ok', tostring(version + 1)}
end

return redis.error_reply('DRYGATE_OP unknown operation ' .. tostring(op))
