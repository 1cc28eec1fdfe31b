// Package ratelimit refuses requests over their rate at the door, before a
// worker sees them: token buckets per client IP and per plan (named by an
// API key or a JWT), extra limits per path and method, and a per-IP cap on
// concurrent requests, in memory on one machine or in Redis for several.
//
// Typical usage, in cmd/gatehouse:
//
//	var cfg ratelimit.Config          // decoded from the `ratelimit:` section
//	cfg.Defaults()
//	if err := cfg.Validate(); err != nil { ... }
//	lim, err := ratelimit.New(cfg, ratelimit.Options{Logger: log, Registerer: reg})
//	if err != nil { ... }
//	defer lim.Close()
//	app = lim.Wrap(app)               // after client-IP resolution, before routing to the pool
//	lim.Prefetch(info.ClientIP)       // optional, in the front, as soon as the address is resolved
//	...
//	on SIGHUP: err = lim.Reload(newCfg) // keeps buckets; on error the old config stays
//
// Wrap reads the client address from reqinfo (the front's trusted-proxy
// resolution; r.RemoteAddr only when there is no reqinfo) and writes the
// plan into it. It answers refusals itself: 401 for an unknown API key or a
// bad token, 429 with Retry-After when over a limit.
//
// # Buckets
//
// Every limit is a token bucket with golang.org/x/time/rate's semantics: a
// bucket holds `burst` tokens, refills at `rate`, starts full, and each
// request takes one token or is refused (never delayed: a request waiting
// in gatehouse would hold a connection and memory, which is what the limit
// is there to prevent). {rate: 20/s, burst: 40} lets a quiet client send 40
// requests at once, then 20 a second.
//
// Carrying numbers over from nginx: `limit_req zone=z rate=R burst=B nodelay`
// admits B+1 requests at once and then R a second, so it is
// {rate: R, burst: B+1}. `limit_req` without nodelay queues the excess
// instead of refusing it; gatehouse has no such queue, and the same
// {rate: R, burst: B+1} refuses what nginx would have delayed. nginx
// without burst is {rate: R, burst: 1}.
//
// # Keys
//
// A request that names no plan is keyed by its client IP: IPv4 addresses
// alone (ipv4_prefix: 32), IPv6 by their /64 (ipv6_prefix: 64), because a
// host usually owns a whole /64 and could otherwise rotate addresses to
// escape its limit. identify.keyless decides what such a request gets: the
// IP limit (default), no base limit ("allow"), or 401 ("refuse"). Keyless
// clients never share one bucket.
//
// A request names a plan by an API key (identify.header or identify.query),
// looked up in identify.keys_file, or by an "Authorization: Bearer" JWT
// (HS256, RS256 or ES256; exp and nbf checked; the plan from plan_claim,
// the bucket keyed by subject_claim). Its plan's limit replaces the IP
// limit and is keyed by the subject, so one customer's many machines (and
// its API keys and tokens alike, when they name the same subject) share
// their plan's quota. An unknown key or a token that fails verification
// gets 401 with a short reason; a key is never logged or used as a Redis
// key (a key without subject is counted under a digest of it). A refused
// key or token still takes a token from the IP limit, so guessing keys is
// limited like any other abuse: past the IP burst the guesser gets 429.
//
// The keys file is a YAML map:
//
//	"k_live_8f2c...": {plan: pro, subject: acme}
//	"k_live_19ab...": {plan: free}
//
// It is checked every identify.keys_reload (2s) and re-read on Reload. A
// file with a bad entry is rejected whole and the last good keys stay.
//
// # Rules
//
// rules add limits by path prefix and method; every rule that matches
// applies on top of the IP or plan limit, so a route can have a burst limit
// and a daily quota. A request is admitted only if every bucket it is
// counted in has a token, and it then takes one from each; a refused
// request takes none (a login flood refused by a 5/m limit does not use up
// a daily quota). by: plan keys a rule by subject (keyless requests by IP),
// and the rule's plans map can give a plan its own rate.
//
// Rules see the path the app sees: the front applies Wrap to the app route
// and, when ratelimit.static is true, to static mounts.
//
// # Answers
//
// Allowed and refused responses carry RateLimit-Policy and RateLimit
// (draft-ietf-httpapi-ratelimit-headers): each policy as
// `"name";q=BURST;w=SECONDS` where w is the time an empty bucket takes to
// fill, and `"name";r=REMAINING;t=SECONDS` with t the time until the bucket
// is full (until the next token when none remains). headers: limited or
// never turns them off where they are not wanted. A refusal has
// Retry-After in whole seconds and a body in JSON when the Accept header
// names JSON, in plain text otherwise.
//
// dry_run: true decides everything, counts would-be refusals as
// result="dry_run_limited", logs one line a second at most, and admits the
// request.
//
// # Stores
//
// The memory store keeps buckets in 16 shards, each an open-addressing
// table with its own lock; a bucket is its GCRA arrival time (8 bytes)
// under a 64-bit keyed hash of its key, about 34 bytes in all with the
// table's slack. max_keys (1,000,000) is a hard cap: a full shard first
// drops buckets that are full again (they carry no information), then the
// least recently used (CLOCK). Deciding for an allowed request allocates
// nothing; the RateLimit header adds one small allocation (headers: limited
// or never removes it). A request is decided at the instant the front
// received it (reqinfo's Start, by its monotonic reading; without one, a
// read of the monotonic clock), so steps of the wall clock do not fill or
// drain buckets, and the limiter reads no clock of its own.
//
// With many clients the table outgrows the CPU caches and finding a bucket
// is a trip to memory, one cache line (the key and the bucket's state
// share it). The middleware starts that trip first: it derives the key
// and prefetches the bucket's line before it identifies the request, so
// the two overlap; tables of 2 MiB and more are mapped on huge pages
// (Linux, transparent huge pages in "madvise" or "always" mode), which
// spares the trip a page-table walk. A front that calls Prefetch with the
// client address as soon as it knows it overlaps the trip with its own
// work too. bench/ratelimit/README.md has the figures.
//
// One Limiter per prometheus.Registerer: on SIGHUP call Reload rather than
// building a second Limiter, which would register the same metrics again.
//
// The Redis store runs one Lua script per request (all of its buckets, one
// round trip) on Redis's clock; keys expire by themselves when full again.
// Redis Cluster is not supported (a request's buckets can live in
// different slots). When Redis fails (redis.timeout, 100ms), the error is
// logged once, counted in gatehouse_ratelimit_redis_errors_total, and
// decisions follow redis.on_error: "local" memory buckets per instance
// (default), "allow" or "refuse". After redis.retry_after (1s) one request
// tries Redis again; when it answers, limits are shared again and that is
// logged once too.
//
// # Metrics
//
//	gatehouse_ratelimit_decisions_total{policy,plan,result}  allowed | limited | dry_run_limited
//	gatehouse_ratelimit_unauthorized_total
//	gatehouse_ratelimit_concurrency_limited_total
//	gatehouse_ratelimit_redis_errors_total
//	gatehouse_ratelimit_redis_fallback                       1 while Redis is considered down
//	gatehouse_ratelimit_store_keys                           buckets in memory
//	gatehouse_ratelimit_evictions_total                      live buckets dropped at max_keys
package ratelimit
