package ratelimit

import (
	"sync"
	"sync/atomic"

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
	decisions    *decisionCounters
	unauthorized prometheus.Counter
	concurrency  prometheus.Counter
	redisErrors  prometheus.Counter
	redisDown    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, l *Limiter) *metrics {
	m := &metrics{
		decisions: &decisionCounters{
			locks: l.locks,
			desc: prometheus.NewDesc("gatehouse_ratelimit_decisions_total",
				"Bucket decisions by policy (ip, plan or a rule's name), plan (none for keyless requests) and result.",
				[]string{"policy", "plan", "result"}, nil),
			byLabels: map[[3]string]*stripedCounter{},
		},
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
// one uncontended add and no label lookup. Only the plans the policy
// applies to get series. A policy that keeps its name across a reload
// keeps its counters.
func (m *metrics) bind(p *policy, plans []string) {
	p.counters = make([][numResults]*stripedCounter, len(plans)+1)
	for i := range p.counters {
		if p.limits[i].interval == 0 {
			continue // this plan is never counted here: no empty series
		}
		plan := "none"
		if i > 0 {
			plan = plans[i-1]
		}
		for r := range numResults {
			p.counters[i][r] = m.decisions.get(p.name, plan, resultNames[r])
		}
	}
}

// A stripedCounter is one counter kept as a cell per store shard, each on
// its own cache line; a decision adds to the cell of its bucket's shard.
// One prometheus.Counter would be one cache line that every core writes
// for every request, moving between the cores' caches (a miss each time)
// once requests run on several; the stripes follow the shards instead, so
// two cores contend on a counter only when they contend on a shard.
//
// A cell has two counts. The decision of a request counted in one memory
// bucket (most requests) is counted in locked by takeTAT, under the
// shard's lock it holds anyway (locks[i] guards cells[i].locked): a plain
// add. Any other decision (several buckets, whose outcome is known only
// after the last; Redis) is counted in n with an atomic add, after the
// fact. Reading sums both, taking each shard's lock in turn.
type stripedCounter struct {
	locks *shardLocks
	cells [numShards]struct {
		n      atomic.Uint64
		locked uint64
		_      [48]byte
	}
}

// inc counts one decision for the bucket with hash h.
func (c *stripedCounter) inc(h uint64) { c.cells[h>>shardShift].n.Add(1) }

func (c *stripedCounter) value() uint64 {
	var n uint64
	for i := range c.cells {
		n += c.cells[i].n.Load()
		c.locks[i].Lock()
		n += c.cells[i].locked
		c.locks[i].Unlock()
	}
	return n
}

// decisionCounters is gatehouse_ratelimit_decisions_total: a Collector
// over striped counters, one per label set, created on first use and kept
// for the limiter's life.
type decisionCounters struct {
	locks    *shardLocks // the Limiter's, which its stores' shards use
	desc     *prometheus.Desc
	mu       sync.Mutex
	byLabels map[[3]string]*stripedCounter
}

func (d *decisionCounters) get(policy, plan, result string) *stripedCounter {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := [3]string{policy, plan, result}
	c := d.byLabels[k]
	if c == nil {
		c = &stripedCounter{locks: d.locks}
		d.byLabels[k] = c
	}
	return c
}

// Describe implements prometheus.Collector.
func (d *decisionCounters) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

// Collect implements prometheus.Collector.
func (d *decisionCounters) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, c := range d.byLabels {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(c.value()), k[0], k[1], k[2])
	}
}
