package workers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pool's Prometheus collectors. They exist even when no
// Registerer is given, so code never checks for nil.
type metrics struct {
	healthy   *prometheus.GaugeVec
	requests  *prometheus.CounterVec
	queueWait prometheus.Histogram
	queued    prometheus.GaugeFunc
	restarts  *prometheus.CounterVec
	memory    *prometheus.GaugeVec
	workers   *prometheus.GaugeVec
}

func newMetrics(p *Pool) *metrics {
	return &metrics{
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_upstream_healthy",
			Help: "1 when the backend is in service, 0 when it is taken out after failures.",
		}, []string{"upstream"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_pool_requests_total",
			Help: "Requests sent to backends, by backend (address, or worker slot) and outcome (ok, failed, timeout, canceled).",
		}, []string{"upstream", "outcome"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_pool_queue_wait_seconds",
			Help:    "Time requests waited for a free backend.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_pool_queue_depth",
			Help: "Requests waiting for a free backend now.",
		}, func() float64 {
			p.mu.Lock()
			defer p.mu.Unlock()
			return float64(p.waiters.Len())
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_worker_restarts_total",
			Help: "Worker replacements by reason (max_requests, memory_soft, memory_hard, timeout, crash, reload, boot_failure).",
		}, []string{"reason"}),
		memory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_worker_memory_bytes",
			Help: "Memory of each worker slot as measured for max_rss (unshared, rss or pss).",
		}, []string{"worker"}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_workers",
			Help: "Worker processes by state (booting, ready, draining).",
		}, []string{"state"}),
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.healthy, m.requests, m.queueWait, m.queued, m.restarts, m.memory, m.workers}
}

// register adds the pool's collectors to r. A pool that replaces another
// on the same registry (the app section removed and added back on reload)
// takes the names over from the old one.
func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.all() {
		err := r.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			r.Unregister(are.ExistingCollector)
			err = r.Register(c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
