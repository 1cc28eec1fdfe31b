package static

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/compress"
)

// metrics are the static server's counters. Responses are counted per
// mount, status and coding; the label values are few and fixed (never a
// path), and counters are resolved once so the hot path only adds.
type metrics struct {
	responses       *prometheus.CounterVec
	hits, misses    prometheus.Counter
	evictions       prometheus.Counter
	opens           prometheus.Counter
	compressSeconds prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_static_responses_total",
			Help: "Static file responses by mount, status and content coding.",
		}, []string{"mount", "status", "encoding"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_static_cache_hits_total",
			Help: "File lookups answered from the open-file cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_static_cache_misses_total",
			Help: "File lookups that opened the file (first use, change, or eviction).",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_static_cache_evictions_total",
			Help: "Files dropped from the cache to stay within its bounds.",
		}),
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_static_file_opens_total",
			Help: "Files opened to send with sendfile because no idle descriptor was kept (static_cache.files).",
		}),
		compressSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_static_compress_seconds_total",
			Help: "CPU time spent compressing static files (once per file and coding).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.responses, m.hits, m.misses, m.evictions, m.opens, m.compressSeconds} {
			reg.MustRegister(c)
		}
	}
	return m
}

// count adds one response. The few status codes a static mount produces
// are labelled exactly; anything else is "other".
func (m *metrics) count(mt *mount, code int, enc compress.Encoding) {
	mt.counters[statusIndex(code)][enc].Inc()
}

// counters resolves every (status, coding) counter of a mount up front.
func (m *metrics) counters(url string) (c [len(statusLabels)][4]prometheus.Counter) {
	for i, s := range statusLabels {
		for _, e := range []compress.Encoding{compress.Identity, compress.Gzip, compress.Brotli, compress.Zstd} {
			c[i][e] = m.responses.WithLabelValues(url, s, e.String())
		}
	}
	return c
}

var statusLabels = [...]string{"200", "206", "304", "404", "405", "412", "416", "other"}

func statusIndex(code int) int {
	switch code {
	case http.StatusOK:
		return 0
	case http.StatusPartialContent:
		return 1
	case http.StatusNotModified:
		return 2
	case http.StatusNotFound:
		return 3
	case http.StatusMethodNotAllowed:
		return 4
	case http.StatusPreconditionFailed:
		return 5
	case http.StatusRequestedRangeNotSatisfiable:
		return 6
	}
	return 7
}
