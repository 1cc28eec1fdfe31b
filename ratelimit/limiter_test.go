package ratelimit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
	"github.com/prometheus/client_golang/prometheus"
)

type step struct {
	at     time.Duration // instant, from t0
	ip     string
	hdr    []string
	method string
	path   string
	code   int
}

func runSteps(t *testing.T, l *Limiter, clk *fakeClock, steps []step) {
	t.Helper()
	for i, s := range steps {
		clk.Set(s.at)
		m, p := s.method, s.path
		if m == "" {
			m = "GET"
		}
		if p == "" {
			p = "/"
		}
		w := do(l, m, p, s.ip, s.hdr...)
		if w.Code != s.code {
			t.Errorf("step %d (+%v %s %s from %s): got %d, want %d; body %q", i, s.at, m, p, s.ip, w.Code, s.code, w.Body)
		}
	}
}

func TestIPBurstThenSteadyRate(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 2/s, burst: 3}\n", clk, nil)
	a, b := "198.51.100.7", "198.51.100.8"
	runSteps(t, l, clk, []step{
		{at: 0, ip: a, code: 200},
		{at: 0, ip: a, code: 200},
		{at: 0, ip: a, code: 200},
		{at: 0, ip: a, code: 429},
		{at: 0, ip: b, code: 200}, // another client has its own bucket
		{at: 499 * time.Millisecond, ip: a, code: 429},
		{at: 500 * time.Millisecond, ip: a, code: 200},
		{at: 500 * time.Millisecond, ip: a, code: 429},
		{at: 1 * time.Second, ip: a, code: 200},
		{at: 1500 * time.Millisecond, ip: a, code: 200},
		{at: 1500 * time.Millisecond, ip: a, code: 429},
		{at: 10 * time.Second, ip: a, code: 200},
		{at: 10 * time.Second, ip: a, code: 200},
		{at: 10 * time.Second, ip: a, code: 200},
		{at: 10 * time.Second, ip: a, code: 429},
	})
}

func TestKeyExtraction(t *testing.T) {
	// Each row: two requests' client IPs, and whether they share a bucket
	// (burst 1, so the second is refused exactly when they share).
	for _, tc := range []struct {
		name   string
		extra  string
		a, b   string
		shared bool
	}{
		{"ipv4 alone", "", "192.0.2.1", "192.0.2.2", false},
		{"ipv4 same", "", "192.0.2.1", "192.0.2.1", true},
		{"ipv4 mapped in ipv6 is the same client", "", "192.0.2.1", "::ffff:192.0.2.1", true},
		{"ipv6 rotation inside a /64", "", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", true},
		{"ipv6 next /64", "", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"ipv6 zone ignored", "", "fe80::1%eth0", "fe80::2%eth1", true},
		{"ipv6 /56 configured", "  ipv6_prefix: 56\n", "2001:db8:1:200::1", "2001:db8:1:2ff::1", true},
		{"ipv6 /128 configured", "  ipv6_prefix: 128\n", "2001:db8::1", "2001:db8::2", false},
		{"ipv4 /24 configured", "  ipv4_prefix: 24\n", "203.0.113.1", "203.0.113.254", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/h, burst: 1}\n"+tc.extra, clk, nil)
			if w := do(l, "GET", "/", tc.a); w.Code != 200 {
				t.Fatalf("first: %d", w.Code)
			}
			want := 200
			if tc.shared {
				want = 429
			}
			if w := do(l, "GET", "/", tc.b); w.Code != want {
				t.Fatalf("second: got %d, want %d", w.Code, want)
			}
		})
	}
}

// TestIPv6RotationStaysLimited sends from 1,000 addresses of one /64: the
// burst is all they get together.
func TestIPv6RotationStaysLimited(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/m, burst: 10}\n", clk, nil)
	base := netip.MustParseAddr("2001:db8:aa:bb::").As16()
	allowed := 0
	for i := range 1000 {
		a := base
		a[8], a[12], a[15] = byte(i>>8), byte(i*7), byte(i)
		if do(l, "GET", "/", netip.AddrFrom16(a).String()).Code == 200 {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("allowed %d requests from one /64, want 10", allowed)
	}
}

func TestRemoteAddrWithoutInfo(t *testing.T) {
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/h, burst: 1}\n", newClock(), nil)
	h := l.Wrap(okHandler)
	codes := []int{}
	for _, ra := range []string{"192.0.2.9:1000", "192.0.2.9:2000", "192.0.2.10:1000"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = ra
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes = append(codes, w.Code)
	}
	if fmt.Sprint(codes) != "[200 429 200]" {
		t.Fatalf("got %v, want [200 429 200]", codes)
	}
}

const plansYAML = `
ratelimit:
  ip: {rate: 1/m, burst: 2}
  identify:
    header: X-API-Key
    query: api_key
    keys_file: KEYS
    keys_reload: 1s
  plans:
    free: {rate: 100/h, burst: 3}
    pro:  {rate: 10000/h, burst: 5}
`

func TestPlansDiffer(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `
"free-key": {plan: free, subject: alice}
"pro-key": {plan: pro, subject: bob}
"pro-key-2": {plan: pro, subject: bob}
"anon-pro": {plan: pro}
`)
	clk := newClock()
	l := newLimiter(t, yamlWith(plansYAML, "KEYS", keys), clk, nil)
	count := func(n int, ip string, hdr ...string) int {
		ok := 0
		for range n {
			if do(l, "GET", "/api", ip, hdr...).Code == 200 {
				ok++
			}
		}
		return ok
	}
	if got := count(10, "192.0.2.1"); got != 2 {
		t.Errorf("keyless: %d allowed, want the IP burst 2", got)
	}
	if got := count(10, "192.0.2.1", "X-API-Key", "free-key"); got != 3 {
		t.Errorf("free: %d allowed, want 3 (the plan replaces the exhausted IP limit)", got)
	}
	if got := count(10, "192.0.2.2", "X-API-Key", "pro-key"); got != 5 {
		t.Errorf("pro: %d allowed, want 5", got)
	}
	if got := count(3, "192.0.2.3", "X-API-Key", "pro-key-2"); got != 0 {
		t.Errorf("bob's second key: %d allowed, want 0 (same subject, same bucket)", got)
	}
	if got := count(10, "192.0.2.4", "X-API-Key", "anon-pro"); got != 5 {
		t.Errorf("key without subject: %d allowed, want 5", got)
	}
	// Steady rate: pro refills every 360ms.
	clk.Set(360 * time.Millisecond)
	if got := count(3, "192.0.2.2", "X-API-Key", "pro-key"); got != 1 {
		t.Errorf("pro after 360ms: %d allowed, want 1", got)
	}
	// The query parameter names the plan too, and reqinfo gets it.
	r := request("GET", "/api?x=1&api_key=free-key", "192.0.2.9")
	w := httptest.NewRecorder()
	l.Wrap(okHandler).ServeHTTP(w, r)
	if got := reqinfo.From(r.Context()).Plan; got != "free" {
		t.Errorf("info.Plan = %q, want free", got)
	}
	// An unknown key is refused, not downgraded to keyless.
	w = do(l, "GET", "/api", "192.0.2.77", "X-API-Key", "nope", "Accept", "application/json")
	if w.Code != 401 || !strings.Contains(w.Body.String(), `"error":"unknown API key"`) {
		t.Errorf("unknown key: %d %s", w.Code, w.Body)
	}
}

func TestKeyless(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `"k": {plan: free, subject: s}`)
	for _, tc := range []struct {
		mode string
		want []int
	}{
		{"ip", []int{200, 200, 429, 200}},     // c's own bucket
		{"allow", []int{200, 200, 200, 200}},  // no base limit
		{"refuse", []int{401, 401, 429, 401}}, // refusals still cost IP tokens
	} {
		t.Run(tc.mode, func(t *testing.T) {
			y := strings.Replace(yamlWith(plansYAML, "KEYS", keys), "  identify:\n", "  identify:\n    keyless: "+tc.mode+"\n", 1)
			l := newLimiter(t, y, newClock(), nil)
			var got []int
			for _, ip := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
				got = append(got, do(l, "GET", "/", ip).Code)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRulesAllApply(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, `
ratelimit:
  ip: {rate: 100/s, burst: 100}
  rules:
    - {path: /login, methods: [POST], rate: 5/m, burst: 2}
    - {name: "daily;quota", path: /login, rate: 3/d, burst: 3}
`, clk, nil)
	ip := "192.0.2.5"
	runSteps(t, l, clk, []step{
		{at: 0, ip: ip, method: "GET", path: "/login", code: 200},   // daily: 2 left
		{at: 0, ip: ip, method: "POST", path: "/login", code: 200},  // burst: 1 left, daily: 1
		{at: 0, ip: ip, method: "POST", path: "/login/", code: 200}, // burst: 0, daily: 0
		{at: 0, ip: ip, method: "POST", path: "/login", code: 429},
		{at: 0, ip: ip, method: "POST", path: "/loginx", code: 200}, // not under /login
		{at: 0, ip: ip, method: "GET", path: "/", code: 200},
		// 12s later the burst bucket has a token but the daily quota none;
		// the refusal must not take the burst token.
		{at: 12 * time.Second, ip: ip, method: "POST", path: "/login", code: 429},
		{at: 8 * time.Hour, ip: ip, method: "POST", path: "/login", code: 200},
	})
	w := do(l, "POST", "/login", "192.0.2.6")
	if got, want := w.Header().Get("RateLimit-Policy"), `"ip";q=100;w=1, "POST /login";q=2;w=24, "daily;quota";q=3;w=86400`; got != want {
		t.Errorf("RateLimit-Policy:\n got %s\nwant %s", got, want)
	}
	if got, want := w.Header().Get("RateLimit"), `"ip";r=99;t=1, "POST /login";r=1;t=12, "daily;quota";r=2;t=28800`; got != want {
		t.Errorf("RateLimit:\n got %s\nwant %s", got, want)
	}
}

func TestRefusalAnswers(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/m, burst: 1}\n", clk, nil)
	ok := do(l, "GET", "/", "192.0.2.1")
	if got, want := ok.Header().Get("RateLimit-Policy"), `"ip";q=1;w=60`; got != want {
		t.Errorf("policy on 200: got %q, want %q", got, want)
	}
	if got, want := ok.Header().Get("RateLimit"), `"ip";r=0;t=60`; got != want {
		t.Errorf("RateLimit on 200: got %q, want %q", got, want)
	}
	clk.Set(15 * time.Second)
	w := do(l, "GET", "/", "192.0.2.1", "Accept", "application/json")
	if w.Code != 429 || w.Header().Get("Retry-After") != "45" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d Retry-After %q %q", w.Code, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"))
	}
	var body struct {
		Error      string `json:"error"`
		Status     int    `json:"status"`
		RetryAfter int    `json:"retry_after"`
		RequestID  string `json:"request_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if body.Status != 429 || body.RetryAfter != 45 || body.RequestID != "req-1" {
		t.Errorf("body: %+v", body)
	}
	if got, want := w.Header().Get("RateLimit"), `"ip";r=0;t=45`; got != want {
		t.Errorf("RateLimit on 429: got %q, want %q", got, want)
	}
	w = do(l, "GET", "/", "192.0.2.1", "Accept", "text/html")
	if got, want := w.Body.String(), "429 Too Many Requests: too many requests (request id req-1)\n"; got != want {
		t.Errorf("text body: got %q, want %q", got, want)
	}
}

func TestHeadersSetting(t *testing.T) {
	for _, tc := range []struct{ mode, on200, on429 string }{
		{"always", `"ip";r=0;t=60`, `"ip";r=0;t=60`},
		{"limited", "", `"ip";r=0;t=60`},
		{"never", "", ""},
	} {
		l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/m, burst: 1}\n  headers: "+tc.mode+"\n", newClock(), nil)
		a, b := do(l, "GET", "/", "192.0.2.1"), do(l, "GET", "/", "192.0.2.1")
		if a.Header().Get("RateLimit") != tc.on200 || b.Header().Get("RateLimit") != tc.on429 || b.Code != 429 {
			t.Errorf("%s: 200 got %q, 429 got %q (%d)", tc.mode, a.Header().Get("RateLimit"), b.Header().Get("RateLimit"), b.Code)
		}
	}
}

func TestDryRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg, err := parseConfig(t, "ratelimit:\n  ip: {rate: 1/m, burst: 2}\n  dry_run: true\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(cfg, Options{Logger: quietLogger(), Registerer: reg, Clock: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 5 {
		if w := do(l, "GET", "/", "192.0.2.1"); w.Code != 200 {
			t.Fatalf("dry run refused: %d", w.Code)
		}
	}
	got := gather(t, reg)
	if got[`gatehouse_ratelimit_decisions_total{plan="none",policy="ip",result="allowed"}`] != 2 ||
		got[`gatehouse_ratelimit_decisions_total{plan="none",policy="ip",result="dry_run_limited"}`] != 3 ||
		got[`gatehouse_ratelimit_store_keys`] != 1 {
		t.Fatalf("metrics: %v", got)
	}
}

// TestConcurrencyCap holds requests open in a synctest bubble: the third
// from one address is refused while two are in flight, and admitted once
// one finishes.
func TestConcurrencyCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, "ratelimit:\n  max_concurrent_per_ip: 2\n", nil, nil)
		release := make(chan struct{})
		slow := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
		}))
		var wg sync.WaitGroup
		codes := make(chan int, 4)
		for range 2 {
			wg.Go(func() {
				w := httptest.NewRecorder()
				slow.ServeHTTP(w, request("GET", "/", "2001:db8::1"))
				codes <- w.Code
			})
		}
		synctest.Wait() // both in flight
		w := httptest.NewRecorder()
		slow.ServeHTTP(w, request("GET", "/", "2001:db8::2")) // same /64
		if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("third: %d, want 429", w.Code)
		}
		w = httptest.NewRecorder()
		go func() { time.Sleep(time.Second); close(release) }()
		l.Wrap(okHandler).ServeHTTP(w, request("GET", "/", "192.0.2.1")) // another client
		if w.Code != 200 {
			t.Fatalf("other client: %d", w.Code)
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Fatalf("held request: %d", c)
			}
		}
		if n := len(l.conc.shards[l.conc.shard(netip.MustParseAddr("2001:db8::"))].n); n != 0 {
			t.Fatalf("%d counters left after all requests finished", n)
		}
	})
}

func TestReloadKeepsBuckets(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/m, burst: 2}\n", clk, nil)
	do(l, "GET", "/", "192.0.2.1")
	do(l, "GET", "/", "192.0.2.1")
	cfg, _ := parseConfig(t, "ratelimit:\n  ip: {rate: 1/m, burst: 3}\n  rules:\n    - {path: /x, rate: 1/s}\n", nil)
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// The bucket had 0 of 2; with burst 3 it now has 1.
	if a, b := do(l, "GET", "/", "192.0.2.1").Code, do(l, "GET", "/", "192.0.2.1").Code; a != 200 || b != 429 {
		t.Fatalf("after reload: %d %d, want 200 429", a, b)
	}
	bad := cfg
	bad.IPv6Prefix = 200
	if err := l.Reload(bad); err == nil {
		t.Fatal("bad config accepted")
	}
	if got := l.state.Load().cfg.IPv6Prefix; got != 64 {
		t.Fatalf("bad reload replaced config: prefix %d", got)
	}
}

// TestKeysFileChangeWithoutRestart edits the keys file under a running
// limiter (its watcher on the bubble's fake clock): a new key works, a
// removed key is refused, a bad file is ignored.
func TestKeysFileChangeWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `"old": {plan: free, subject: a}`)
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, yamlWith(plansYAML, "KEYS", keys), nil, nil)
		if got := do(l, "GET", "/", "192.0.2.1", "X-API-Key", "new").Code; got != 401 {
			t.Fatalf("new key before the change: %d, want 401", got)
		}
		writeFile(t, dir, "keys.yaml", `{"new": {plan: pro, subject: b}}`)
		time.Sleep(1500 * time.Millisecond)
		if got := do(l, "GET", "/", "192.0.2.1", "X-API-Key", "new").Code; got != 200 {
			t.Fatalf("new key after the change: %d, want 200", got)
		}
		if got := do(l, "GET", "/", "192.0.2.1", "X-API-Key", "old").Code; got != 401 {
			t.Fatalf("removed key: %d, want 401", got)
		}
		writeFile(t, dir, "keys.yaml", `{"new": {plan: gold}}`)
		time.Sleep(1500 * time.Millisecond)
		if got := do(l, "GET", "/", "192.0.2.1", "X-API-Key", "new").Code; got != 200 {
			t.Fatalf("after a bad file: %d, want 200 (last good keys)", got)
		}
		l.Close()
	})
}

// gather returns every sample in reg as "name{labels}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
			}
			k := mf.GetName()
			if len(labels) > 0 {
				k += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[k] = v
		}
	}
	return out
}

// TestForwardedHeadersIgnored: the limiter keys by the address the front
// resolved, never by a header the client wrote.
func TestForwardedHeadersIgnored(t *testing.T) {
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 1/h, burst: 1}\n", newClock(), nil)
	a := do(l, "GET", "/", "192.0.2.1", "X-Forwarded-For", "203.0.113.1")
	b := do(l, "GET", "/", "192.0.2.1", "X-Forwarded-For", "203.0.113.2", "X-Real-IP", "203.0.113.3", "Forwarded", "for=203.0.113.4")
	if a.Code != 200 || b.Code != 429 {
		t.Fatalf("spoofed forwarding headers: got %d %d, want 200 429", a.Code, b.Code)
	}
	r := request("GET", "/", "192.0.2.1")
	w := httptest.NewRecorder()
	l.Wrap(okHandler).ServeHTTP(w, r)
	if got := reqinfo.From(r.Context()).Reason; got != "rate_limited" {
		t.Fatalf("info.Reason = %q, want rate_limited", got)
	}
}

// TestBadKeysCostIPTokens: guessing keys is limited like any other abuse.
func TestBadKeysCostIPTokens(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `"k": {plan: free, subject: s}`)
	l := newLimiter(t, yamlWith(plansYAML, "KEYS", keys), newClock(), nil)
	var got []int
	for i := range 4 {
		got = append(got, do(l, "GET", "/", "192.0.2.1", "X-API-Key", fmt.Sprint("guess-", i)).Code)
	}
	got = append(got, do(l, "GET", "/", "192.0.2.1", "X-API-Key", "k").Code) // a real key still works
	if want := []int{401, 401, 429, 429, 200}; !equalInts(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestConcurrentUseAndReload runs requests from many goroutines while the
// configuration and the keys file change under them (run with -race).
func TestConcurrentUseAndReload(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `"k": {plan: pro, subject: s}`)
	yml := yamlWith(plansYAML, "KEYS", keys) + "  max_concurrent_per_ip: 3\n  rules:\n    - {path: /a, rate: 10/s, burst: 5}\n"
	l := newLimiter(t, strings.Replace(yml, "keys_reload: 1s", "keys_reload: 10ms", 1), nil, nil)
	cfg, err := parseConfig(t, yml, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ip := fmt.Sprintf("2001:db8:%x::%x", g, i%7)
				w := do(l, []string{"GET", "POST"}[i%2], []string{"/", "/a", "/a/b"}[i%3], ip, "X-API-Key", []string{"", "k", "bad"}[i%3])
				if w.Code != 200 && w.Code != 401 && w.Code != 429 {
					t.Errorf("status %d", w.Code)
					return
				}
			}
		})
	}
	for i := range 20 {
		c := cfg
		c.IP.Burst = 2 + i%3
		if err := l.Reload(c); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "keys.yaml", fmt.Sprintf(`{"k": {plan: pro, subject: s}, "k%d": {plan: free}}`, i))
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

// A request is decided at the front's arrival time when it carries a
// monotonic reading, and at a clock read otherwise: through the mirror of
// time.Time's layout and through time's API alike.
func TestRequestClock(t *testing.T) {
	if !timeWordsOK {
		t.Error("time.Time layout changed: requestClock runs the portable code")
	}
	defer func(ok bool) { timeWordsOK = ok }(timeWordsOK)
	for _, mirror := range []bool{true, false} {
		timeWordsOK = mirror
		l := &Limiter{base: time.Now()}
		l.baseNs = l.base.UnixNano()
		for _, d := range []time.Duration{3 * time.Second, -time.Minute, 0} {
			start := l.base.Add(d) // keeps base's monotonic reading
			if got := l.requestClock(&reqinfo.Info{Start: start}); got != l.baseNs+int64(d) {
				t.Fatalf("mirror %v, with Start %v: %d, want %d", mirror, d, got, l.baseNs+int64(d))
			}
		}
		start := l.base.Add(3 * time.Second)
		before := l.clock()
		for _, info := range []*reqinfo.Info{nil, {}, {Start: time.Unix(1, 0)}, {Start: start.Add(time.Hour).Round(0)}, {Start: start.UTC()}} {
			got := l.requestClock(info)
			if got < before || got > l.clock() {
				t.Fatalf("mirror %v, without a monotonic Start (%v): %d, want a clock read after %d", mirror, info, got, before)
			}
		}
	}
}

// With the real clock, the front's arrival times decide: a burst of 3 at
// 2/s admits three requests that arrive together, refuses the fourth, and
// admits one that arrives half a second later, whenever it is served.
func TestArrivalTimeDecides(t *testing.T) {
	l := newLimiter(t, "ratelimit:\n  ip: {rate: 2/s, burst: 3}\n  headers: never\n", nil, nil)
	h := l.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	arrived := time.Now()
	for i, s := range []struct {
		at   time.Duration
		code int
	}{{0, 200}, {0, 200}, {0, 200}, {0, 429}, {499 * time.Millisecond, 429}, {500 * time.Millisecond, 200}} {
		r := request("GET", "/", "198.51.100.7")
		reqinfo.From(r.Context()).Start = arrived.Add(s.at)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != s.code {
			t.Errorf("request %d (arrived +%v): got %d, want %d", i, s.at, w.Code, s.code)
		}
	}
}
