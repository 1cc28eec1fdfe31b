package ratelimit

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// fakeClock is a settable clock for step tables.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t0+d.
func (c *fakeClock) Set(d time.Duration) {
	c.mu.Lock()
	c.t = t0.Add(d)
	c.mu.Unlock()
}

// parseConfig decodes a `ratelimit:` section the way cmd/gatehouse does.
func parseConfig(t testing.TB, yml string, env map[string]string) (Config, error) {
	t.Helper()
	f, err := conf.Parse("test.yaml", []byte(yml), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var cfg Config
	if errs := f.Decode("ratelimit", &cfg); len(errs) > 0 {
		return cfg, errs
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		errs := conf.Flatten(err)
		for _, e := range errs {
			e.Path = conf.Join("ratelimit", e.Path)
		}
		f.Locate(errs)
		return cfg, errs
	}
	return cfg, nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newLimiter builds a Limiter from YAML on a fake clock.
func newLimiter(t testing.TB, yml string, clk *fakeClock, env map[string]string) *Limiter {
	t.Helper()
	cfg, err := parseConfig(t, yml, env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts := Options{Logger: quietLogger()}
	if clk != nil {
		opts.Clock = clk.Now
	}
	l, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})

// request builds a request from ip as the front would hand it over.
func request(method, target, ip string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	info := &reqinfo.Info{ID: "req-1", ClientIP: netip.MustParseAddr(ip)}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// do runs one request through l and returns the recorded response.
func do(l *Limiter, method, target, ip string, hdr ...string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	l.Wrap(okHandler).ServeHTTP(w, request(method, target, ip, hdr...))
	return w
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Rename, as deploy tools do, so a reader never sees half a file.
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func yamlWith(yml string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(yml)
}
