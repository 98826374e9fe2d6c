-- wrk script for bench/gateway.py.
--   wrk ... -s bench/gateway.lua -- METHOD PATH BODY|- fixed|unique:<run> [HEADER: value ...]
-- "unique" bodies are {"bucket": "<run>-<thread>-<n>"}, a new name per request.
-- done() prints one JSON line: rps, latency percentiles (ms), error counts.
local threads = {}
local counter = 0

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    method, path, body, mode = args[1], args[2], args[3], args[4]
    headers = {}
    for i = 5, #args do
        local k, v = args[i]:match("^([^:]+):%s*(.*)$")
        headers[k] = v
    end
    if body == "-" then
        body = nil
    end
    run = mode:match("^unique:(.*)$")
    if not run then
        fixed = wrk.format(method, path, headers, body)
    end
end

function request()
    if fixed then
        return fixed
    end
    counter = counter + 1
    return wrk.format(method, path, headers,
        string.format('{"bucket": "%s-%d-%d"}', run, tid, counter))
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests": %d, "duration_s": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, '
        .. '"non2xx": %d, "errors": %d}\n',
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        e.status, e.connect + e.read + e.write + e.timeout))
end
