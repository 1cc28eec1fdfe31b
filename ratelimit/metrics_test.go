package ratelimit

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsLimiter is a Limiter on a fake clock whose metrics go to reg.
func metricsLimiter(t *testing.T, yml string) (*Limiter, *prometheus.Registry) {
	t.Helper()
	cfg, err := parseConfig(t, yml, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l, err := New(cfg, Options{Logger: quietLogger(), Registerer: reg, Clock: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, reg
}

func decisions(got map[string]float64, policy, result string) float64 {
	return got[fmt.Sprintf(`gatehouse_ratelimit_decisions_total{plan="none",policy=%q,result=%q}`, policy, result)]
}

// Every decision is counted once, whichever way: a request in one bucket
// (counted under the shard's lock), one in two (counted after, the token
// given back by a refusal not counted), the IP token a bad key costs
// (counted only when refused), and across a reload that replaces the
// store.
func TestDecisionMetrics(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `{"k": {plan: pro, subject: s}}`)
	yml := "ratelimit:\n  ip: {rate: 1/m, burst: 3}\n  headers: never\n  max_keys: 2000\n" +
		"  identify: {header: X-API-Key, keys_file: " + keys + "}\n  plans: {pro: {rate: 1/m, burst: 100}}\n" +
		"  rules:\n    - {name: x, path: /x, rate: 1/m, burst: 1}\n"
	l, reg := metricsLimiter(t, yml)
	for i, s := range []struct {
		path string
		code int
	}{{"/", 200}, {"/x", 200}, {"/x", 429}, {"/", 200}, {"/", 429}} {
		if w := do(l, "GET", s.path, "192.0.2.1"); w.Code != s.code {
			t.Fatalf("request %d (%s): %d, want %d", i, s.path, w.Code, s.code)
		}
	}
	for i, code := range []int{401, 401, 401, 429} {
		if w := do(l, "GET", "/", "192.0.2.2", "X-API-Key", "bad"); w.Code != code {
			t.Fatalf("bad key %d: %d, want %d", i, w.Code, code)
		}
	}
	got := gather(t, reg)
	if decisions(got, "ip", "allowed") != 3 || decisions(got, "ip", "limited") != 2 ||
		decisions(got, "x", "allowed") != 1 || decisions(got, "x", "limited") != 1 {
		t.Fatalf("before the reload: %v", got)
	}

	cfg, _ := parseConfig(t, yamlWith(yml, "max_keys: 2000", "max_keys: 4000"), nil)
	old := l.state.Load().mem
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if l.state.Load().mem == old {
		t.Fatal("the reload kept the store")
	}
	do(l, "GET", "/", "192.0.2.3")
	got = gather(t, reg)
	if decisions(got, "ip", "allowed") != 4 || decisions(got, "ip", "limited") != 2 {
		t.Fatalf("after the reload: %v", got)
	}
}

// Requests from several goroutines, in one bucket and in two, while the
// metrics are scraped: every request is counted (run with -race).
func TestDecisionMetricsConcurrent(t *testing.T) {
	l, reg := metricsLimiter(t, "ratelimit:\n  ip: {rate: 1/m, burst: 50}\n  headers: never\n"+
		"  rules:\n    - {name: x, path: /x, rate: 1/m, burst: 1000}\n")
	h := l.Wrap(okHandler)
	const workers, each = 4, 300
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
				gather(t, reg)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				path := "/"
				if i%3 == 0 {
					path = "/x"
				}
				h.ServeHTTP(httptest.NewRecorder(), request("GET", path, fmt.Sprintf("192.0.2.%d", 1+(g*each+i)%7)))
			}
		})
	}
	wg.Wait()
	close(stop)
	<-scraped
	got := gather(t, reg)
	ip := decisions(got, "ip", "allowed") + decisions(got, "ip", "limited")
	x := decisions(got, "x", "allowed") + decisions(got, "x", "limited")
	// A request to /x refused by its IP bucket never consults x.
	if ip != workers*each || x > workers*each/3 || decisions(got, "ip", "allowed") != 7*50 {
		t.Fatalf("ip decisions %v (want %d, %d allowed), x %v: %v", ip, workers*each, 7*50, x, got)
	}
}
