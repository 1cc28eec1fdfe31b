package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript is the Redis side of the bucket: the same GCRA as gcra(), in
// microseconds (Lua numbers are doubles, exact to 2^53 µs, 285 years), on
// Redis's own clock so instances with skewed clocks still agree. It decides
// every bucket of a request in one round trip and takes a token from each
// only when all allow. Keys expire when their bucket is full again: a
// missing key is a full bucket, so nothing is lost and Redis holds only the
// buckets in use.
//
// KEYS: the buckets. ARGV: interval_µs, burst for each key in turn.
// Returns, per key: allowed (0/1), remaining, retry_after_µs, reset_µs.
const takeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local new = {}
local ok = true
for i = 1, #KEYS do
  local iv = tonumber(ARGV[2*i-1])
  local limit = tonumber(ARGV[2*i]) * iv
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local nxt = tat + iv
  local j = 4*(i-1)
  if nxt - now > limit then
    ok = false
    out[j+1] = 0; out[j+2] = 0; out[j+3] = nxt - now - limit; out[j+4] = tat - now
  else
    new[i] = nxt
    out[j+1] = 1; out[j+2] = math.floor((now + limit - nxt) / iv); out[j+3] = 0; out[j+4] = nxt - now
  end
end
if ok then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1)
  end
end
return out
`

var script = redis.NewScript(takeScript)

// redisStore shares buckets between instances. While Redis fails it is
// left alone for retry_after, then one request probes it; the others use
// the on_error behaviour meanwhile, so an outage costs each request nothing
// but the first timeout.
type redisStore struct {
	client  *redis.Client
	prefix  string
	onError string
	retry   time.Duration
	timeout time.Duration
	log     *slog.Logger
	metrics *metrics
	down    atomic.Bool
	nextTry atomic.Int64 // unix ns before which Redis is not tried
}

type redisOutcome int

const (
	redisOK redisOutcome = iota
	redisLocal
	redisAllow
	redisRefuse
)

func newRedisStore(cfg Config, log *slog.Logger, m *metrics) (*redisStore, error) {
	opt, err := redis.ParseURL(cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", redactURL(cfg.Store), err)
	}
	t := cfg.Redis.Timeout.D()
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = t, t, t, t
	opt.MaxRetries = -1 // a retry doubles the wait; the fallback is better
	// One dial per probe: go-redis's default (5 dials 100ms apart) would
	// hold the probing request for half a second during an outage.
	opt.DialerRetries = 1
	opt.ContextTimeoutEnabled = true
	return &redisStore{
		client:  redis.NewClient(opt),
		prefix:  cfg.Redis.Prefix,
		onError: cfg.Redis.OnError,
		retry:   cfg.Redis.RetryAfter.D(),
		timeout: t,
		log:     log,
		metrics: m,
	}, nil
}

// redactURL drops a password from a Redis URL for an error message.
func redactURL(s string) string {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '@' {
			return "redis://…" + s[i:]
		}
	}
	return s
}

func (s *redisStore) close() { s.client.Close() }

// key names a bucket: prefix, the policy id, then the client address (as
// grouped) or the subject.
func (s *redisStore) key(c *check, ip netip.Addr, sub string) string {
	id := strconv.FormatUint(c.pol.id, 36)
	if c.bySub {
		return s.prefix + id + ":s:" + sub
	}
	return s.prefix + id + ":ip:" + ip.String()
}

// take decides the checks in Redis, or says what to do instead. ip (as
// grouped) and sub are the request's client address and subject.
func (s *redisStore) take(ctx context.Context, cs []check, now int64, ip netip.Addr, sub string) redisOutcome {
	if s.down.Load() {
		next := s.nextTry.Load()
		if now < next || !s.nextTry.CompareAndSwap(next, now+int64(s.retry)) {
			return s.fallback()
		}
		// This request probes Redis.
	}
	keys := make([]string, len(cs))
	args := make([]any, 0, 2*len(cs))
	for i := range cs {
		keys[i] = s.key(&cs[i], ip, sub)
		args = append(args, max(cs[i].params.interval/1000, 1), cs[i].params.burst)
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	vals, err := script.Run(rctx, s.client, keys, args...).Int64Slice()
	cancel()
	if err == nil && len(vals) != 4*len(cs) {
		err = fmt.Errorf("script returned %d values for %d keys", len(vals), len(cs))
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// The client went away; Redis may be fine.
			return s.fallback()
		}
		s.metrics.redisErrors.Inc()
		s.nextTry.Store(now + int64(s.retry))
		if !s.down.Swap(true) {
			s.metrics.redisDown.Set(1)
			s.log.Error("redis unreachable; rate limits fall back until it returns",
				"on_error", s.onError, "error", err)
		}
		return s.fallback()
	}
	if s.down.Swap(false) {
		s.metrics.redisDown.Set(0)
		s.log.Info("redis reachable again; rate limits are shared again")
	}
	for i := range cs {
		v := vals[4*i:]
		cs[i].res = Result{
			Allowed:    v[0] == 1,
			Remaining:  v[1],
			RetryAfter: time.Duration(v[2]) * time.Microsecond,
			Reset:      time.Duration(v[3]) * time.Microsecond,
		}
	}
	return redisOK
}

func (s *redisStore) fallback() redisOutcome {
	switch s.onError {
	case "allow":
		return redisAllow
	case "refuse":
		return redisRefuse
	}
	return redisLocal
}
