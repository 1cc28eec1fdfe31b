package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// redisServer is a redis-server process on a loopback port, owned by one
// test.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
	out  bytes.Buffer
}

// needProgram skips a test when a program is missing, unless CI is set
// (CI installs it, so its absence there is a failure).
func needProgram(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (apt-get install -y redis-server)", name)
		}
		t.Fatalf("%s not installed: %v", name, err)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	needProgram(t, "redis-server")
	s := &redisServer{t: t, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.out.Reset()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server did not start: %s", s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

func (s *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// logCounter counts log lines by message.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[r.Message]++
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }
func (c *logCounter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for m, k := range c.msgs {
		if strings.HasPrefix(m, prefix) {
			n += k
		}
	}
	return n
}

func redisLimiter(t *testing.T, url, extra string, logs *logCounter, reg ...*prometheus.Registry) *Limiter {
	t.Helper()
	cfg, err := parseConfig(t, "ratelimit:\n  store: "+url+"\n"+extra, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: quietLogger()}
	if logs != nil {
		opts.Logger = slog.New(logs)
	}
	if len(reg) > 0 {
		opts.Registerer = reg[0]
	}
	l, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestRedisSharedLimit: two instances share one bucket per client, rules
// and plans included, and Redis keeps only keys that expire.
func TestRedisSharedLimit(t *testing.T) {
	rs := startRedis(t)
	extra := "  ip: {rate: 1/h, burst: 10}\n  rules:\n    - {path: /login, rate: 1/h, burst: 3}\n"
	a := redisLimiter(t, rs.url(), extra, nil)
	b := redisLimiter(t, rs.url(), extra, nil)
	allowed := 0
	for i := range 30 {
		l := a
		if i%2 == 1 {
			l = b
		}
		w := do(l, "GET", "/", "192.0.2.1")
		switch w.Code {
		case 200:
			allowed++
		case 429:
		default:
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if allowed != 10 {
		t.Fatalf("two instances allowed %d, want 10 together", allowed)
	}
	// /login: 3 together, and a refused /login takes no IP token.
	var codes []int
	for i := range 6 {
		l := []*Limiter{a, b}[i%2]
		codes = append(codes, do(l, "POST", "/login", "192.0.2.2").Code)
	}
	if want := []int{200, 200, 200, 429, 429, 429}; !equalInts(codes, want) {
		t.Fatalf("/login: got %v, want %v", codes, want)
	}
	w := do(a, "GET", "/", "192.0.2.2")
	if got, want := w.Header().Get("RateLimit"), `"ip";r=6;t=`; !strings.HasPrefix(got, want) {
		t.Fatalf("after refused /login: RateLimit %q, want %s... (3 taken of 10, then this one)", got, want)
	}
	c := rs.client()
	keys, err := c.Keys(context.Background(), "gatehouse:rl:*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("redis keys: %v %v, want 3", keys, err)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(context.Background(), k).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour*11 {
			t.Errorf("%s: ttl %v %v, want it to expire when the bucket is full", k, ttl, err)
		}
	}
	if !strings.Contains(strings.Join(keys, " "), ":ip:192.0.2.1") {
		t.Errorf("keys %v: want readable client addresses", keys)
	}
}

// TestRedisOutage stops Redis under two instances: clients see no errors
// (local buckets limit them), the outage is logged once and counted, and
// the instances share the limit again when Redis returns.
func TestRedisOutage(t *testing.T) {
	rs := startRedis(t)
	logs := &logCounter{msgs: map[string]int{}}
	extra := "  ip: {rate: 1/h, burst: 5}\n  redis: {timeout: 50ms, retry_after: 100ms}\n"
	reg := prometheus.NewRegistry()
	a := redisLimiter(t, rs.url(), extra, logs, reg)
	b := redisLimiter(t, rs.url(), extra, nil)
	for i := range 5 {
		if w := do([]*Limiter{a, b}[i%2], "GET", "/", "192.0.2.1"); w.Code != 200 {
			t.Fatalf("before: %d", w.Code)
		}
	}
	rs.stop()
	// During the outage each instance limits alone: 5 each for a client
	// with a fresh bucket, and never anything but 200 or 429.
	allowed := map[*Limiter]int{}
	start := time.Now()
	for i := range 40 {
		l := []*Limiter{a, b}[i%2]
		w := do(l, "GET", "/", "192.0.2.9")
		if w.Code != 200 && w.Code != 429 {
			t.Fatalf("during outage: %d %s", w.Code, w.Body)
		}
		if w.Code == 200 {
			allowed[l]++
		}
	}
	if allowed[a] != 5 || allowed[b] != 5 {
		t.Fatalf("during outage allowed %d and %d, want 5 each (local buckets)", allowed[a], allowed[b])
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("40 requests during the outage took %v; the fallback should not wait on Redis each time", d)
	}
	if n := logs.count("redis unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if m := gather(t, reg); m["gatehouse_ratelimit_redis_errors_total"] < 1 || m["gatehouse_ratelimit_redis_fallback"] != 1 {
		t.Errorf("during outage: redis_errors_total %v, redis_fallback %v", m["gatehouse_ratelimit_redis_errors_total"], m["gatehouse_ratelimit_redis_fallback"])
	}
	rs.start()
	// After retry_after a request probes Redis and limits are shared again.
	deadline := time.Now().Add(5 * time.Second)
	for logs.count("redis reachable again") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never went back to Redis")
		}
		time.Sleep(50 * time.Millisecond)
		do(a, "GET", "/", "192.0.2.50")
	}
	do(b, "GET", "/", "192.0.2.50") // b probes too
	time.Sleep(150 * time.Millisecond)
	allowed = map[*Limiter]int{}
	for i := range 20 {
		l := []*Limiter{a, b}[i%2]
		if do(l, "GET", "/", "192.0.2.77").Code == 200 {
			allowed[l]++
		}
	}
	if got := allowed[a] + allowed[b]; got != 5 {
		t.Fatalf("after Redis returned: %d allowed together, want 5 (shared again)", got)
	}
	if m := gather(t, reg); m["gatehouse_ratelimit_redis_fallback"] != 0 || logs.count("redis unreachable") != 1 {
		t.Errorf("after recovery: redis_fallback %v, outage lines %d", m["gatehouse_ratelimit_redis_fallback"], logs.count("redis unreachable"))
	}
}

func TestRedisOnError(t *testing.T) {
	needProgram(t, "redis-server")
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t)) // nothing listens
	for _, tc := range []struct {
		mode string
		want []int
	}{
		{"local", []int{200, 429, 429}},
		{"allow", []int{200, 200, 200}},
		{"refuse", []int{429, 429, 429}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			l := redisLimiter(t, url, "  ip: {rate: 1/h, burst: 1}\n  redis: {on_error: "+tc.mode+"}\n", nil)
			var got []int
			for range 3 {
				got = append(got, do(l, "GET", "/", "192.0.2.1").Code)
			}
			if !equalInts(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMain(m *testing.M) {
	// go-redis logs failed dials through a process-wide logger; the
	// outage tests cause them on purpose.
	logging.Disable()
	os.Exit(m.Run())
}

// BenchmarkRedis is an allowed request against a real redis-server on
// loopback. round-trips/op is counted by Redis itself (INFO commandstats:
// calls of EVALSHA, EVAL and everything else sent by a client, which is
// every command but those the script runs inside Redis) and is 1: the
// script does the whole decision at once.
func BenchmarkRedis(b *testing.B) {
	rs := startRedis(b)
	for _, rules := range []int{0, 2} {
		b.Run(fmt.Sprintf("buckets=%d", rules+1), func(b *testing.B) {
			extra := "  ip: {rate: 1000000000/s, burst: 1000000}\n  headers: never\n  redis: {timeout: 2s}\n"
			if rules > 0 {
				extra += "  rules:\n    - {path: /api, rate: 1000000000/s, burst: 1000000}\n    - {name: daily, path: /api, rate: 1000000000/d, burst: 1000000}\n"
			}
			cfg, err := parseConfig(b, "ratelimit:\n  store: "+rs.url()+"\n"+extra, nil)
			if err != nil {
				b.Fatal(err)
			}
			l, err := New(cfg, Options{Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			h := l.Wrap(noop)
			r := request("GET", "/api/x", "192.0.2.1")
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r) // load the script
			c := rs.client()
			processed := func() int64 {
				info, err := c.Info(context.Background(), "commandstats").Result()
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				for _, line := range strings.Split(info, "\r\n") {
					name, rest, ok := strings.Cut(line, ":calls=")
					if !ok {
						continue
					}
					switch name {
					case "cmdstat_get", "cmdstat_set", "cmdstat_time":
						continue // run by the script, inside Redis
					}
					calls, _, _ := strings.Cut(rest, ",")
					v, _ := strconv.ParseInt(calls, 10, 64)
					n += v
				}
				return n
			}
			before := processed()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
				n++
			}
			after := processed()
			b.ReportMetric(float64(after-before-1)/float64(n), "round-trips/op")
			if l.state.Load().redis.down.Load() {
				b.Fatal("redis marked down during the benchmark")
			}
		})
	}
}

// TestReloadSwitchesStore moves a running limiter from memory to Redis and
// back; requests go on throughout.
func TestReloadSwitchesStore(t *testing.T) {
	rs := startRedis(t)
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/h, burst: 2}\n", nil, nil)
	do(l, "GET", "/", "192.0.2.1")
	do(l, "GET", "/", "192.0.2.1")
	cfg, err := parseConfig(t, "ratelimit:\n  store: "+rs.url()+"\n  ip: {rate: 1/h, burst: 2}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// A new store starts with full buckets.
	if a, b, c := do(l, "GET", "/", "192.0.2.1").Code, do(l, "GET", "/", "192.0.2.1").Code, do(l, "GET", "/", "192.0.2.1").Code; a != 200 || b != 200 || c != 429 {
		t.Fatalf("on redis: %d %d %d", a, b, c)
	}
	if n, _ := rs.client().DBSize(context.Background()).Result(); n != 1 {
		t.Fatalf("redis holds %d keys, want 1", n)
	}
	cfg.Store = "memory"
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := do(l, "GET", "/", "192.0.2.1").Code; got != 200 {
		t.Fatalf("back on memory: %d", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(cfg); err == nil {
		t.Fatal("Reload after Close succeeded")
	}
}
