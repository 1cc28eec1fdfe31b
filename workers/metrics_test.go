package workers

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newCounting(t, http.HandlerFunc(ok))
	cfg := Config{Upstreams: []string{addr(s.Server)}}
	p, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	f := front(t, p)
	get(f.Client(), f.URL)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			switch {
			case m.Counter != nil:
				got[mf.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				got[mf.GetName()] += m.Gauge.GetValue()
			case m.Histogram != nil:
				got[mf.GetName()] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"gatehouse_pool_requests_total":     1,
		"gatehouse_upstream_healthy":        1,
		"gatehouse_pool_queue_wait_seconds": 1,
		"gatehouse_pool_queue_depth":        0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// A second pool on the same registry (the app section re-added on
	// reload) takes the names over.
	p2, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatalf("second pool on the same registry: %v", err)
	}
	p.Close(context.Background())
	p2.Close(context.Background())
	if _, err := New(cfg, Options{Registerer: reg}); err != nil {
		t.Errorf("after Close: %v", err)
	}
}
