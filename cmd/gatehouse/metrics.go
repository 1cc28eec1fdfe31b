package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherers is what /metrics serves: the long-lived registry plus one
// registry per part that is rebuilt on reload (static mounts, a rate
// limiter created by a reload), so that a rebuilt part never collides with
// the collectors of the one it replaces.
type gatherers struct {
	main *prometheus.Registry
	mu   sync.Mutex
	dyn  map[string]*prometheus.Registry
}

func newGatherers(main *prometheus.Registry) *gatherers {
	return &gatherers{main: main, dyn: map[string]*prometheus.Registry{}}
}

// fresh returns a new registry for the part named name, replacing the one
// it had; its metrics start from zero (Prometheus reads that as a reset).
func (g *gatherers) fresh(name string) *prometheus.Registry {
	r := prometheus.NewRegistry()
	g.mu.Lock()
	g.dyn[name] = r
	g.mu.Unlock()
	return r
}

func (g *gatherers) Gather() ([]*dto.MetricFamily, error) {
	g.mu.Lock()
	all := prometheus.Gatherers{g.main}
	for _, r := range g.dyn {
		all = append(all, r)
	}
	g.mu.Unlock()
	return all.Gather()
}
