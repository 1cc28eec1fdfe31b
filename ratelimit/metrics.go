package ratelimit

import (
	"github.com/prometheus/client_golang/prometheus"
)

const (
	resAllowed = iota
	resLimited
	resDryRun
	numResults
)

var resultNames = [numResults]string{"allowed", "limited", "dry_run_limited"}

// metrics are the limiter's Prometheus series. Labels are policy names and
// plan names from the configuration, never a client address or key.
type metrics struct {
	decisions    *prometheus.CounterVec
	unauthorized prometheus.Counter
	concurrency  prometheus.Counter
	redisErrors  prometheus.Counter
	redisDown    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, l *Limiter) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_decisions_total",
			Help: "Bucket decisions by policy (ip, plan or a rule's name), plan (none for keyless requests) and result.",
		}, []string{"policy", "plan", "result"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_unauthorized_total",
			Help: "Requests refused with 401 for an unknown API key, a bad token or no key where one is required.",
		}),
		concurrency: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_concurrency_limited_total",
			Help: "Requests over the per-IP cap on concurrent requests.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_redis_errors_total",
			Help: "Redis round trips that failed; each decision then used the on_error behaviour.",
		}),
		redisDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_ratelimit_redis_fallback",
			Help: "1 while Redis is considered unreachable and decisions use the fallback.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.unauthorized, m.concurrency, m.redisErrors, m.redisDown,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "gatehouse_ratelimit_store_keys",
				Help: "Buckets held in memory (for Redis: in the local fallback).",
			}, func() float64 { return float64(l.state.Load().mem.Len()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "gatehouse_ratelimit_evictions_total",
				Help: "Live buckets evicted because the store was at max_keys.",
			}, func() float64 { return float64(l.state.Load().mem.evicted.Load()) }),
		)
	}
	return m
}

// bind resolves a policy's counters once, so that counting a decision is
// one atomic add and no label lookup. Only the plans the policy applies to
// get series.
func (m *metrics) bind(p *policy, plans []string) {
	p.counters = make([][numResults]prometheus.Counter, len(plans)+1)
	for i := range p.counters {
		if p.limits[i].interval == 0 {
			continue // this plan is never counted here: no empty series
		}
		plan := "none"
		if i > 0 {
			plan = plans[i-1]
		}
		for r := range numResults {
			p.counters[i][r] = m.decisions.WithLabelValues(p.name, plan, resultNames[r])
		}
	}
}
