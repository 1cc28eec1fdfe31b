package proxy

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
	"github.com/prometheus/client_golang/prometheus"
)

// observer writes the access log and the request metrics. It lives as long
// as the Server, across reloads, so counters never reset on SIGHUP.
type observer struct {
	access   *slog.Logger // nil: no access log
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// inflight is counted in an integer and read when scraped: a
	// prometheus.Gauge's Inc and Dec are compare-and-swap loops on a
	// float, twice per request on a line every core writes.
	inflight  atomic.Int64
	inflightG prometheus.GaugeFunc
	refused   *prometheus.CounterVec

	// The label children in use, looked up once: WithLabelValues hashes
	// its labels and allocates on every call, and the sets are small
	// (routes, status codes, reasons).
	byCode   labelCache[routeCode, prometheus.Counter]
	byRoute  labelCache[string, prometheus.Observer]
	byReason labelCache[string, prometheus.Counter]
}

type routeCode struct {
	route string
	code  int
}

// labelCache maps label values to their metric child. Reads take no lock:
// the map is replaced, never changed, when a new key comes (copy on
// write), which stops happening once every route and status has been seen.
type labelCache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (c *labelCache[K, V]) get(k K, newChild func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]V, 1)
	if old != nil {
		// A label set an attacker could grow (a status code an app
		// invents) stays bounded: past 1024 children the cache stops
		// growing and misses go to WithLabelValues.
		if len(*old) >= 1024 {
			return newChild(k)
		}
		maps.Copy(next, *old)
	}
	v := newChild(k)
	next[k] = v
	c.m.Store(&next)
	return v
}

func newObserver(access *slog.Logger, reg prometheus.Registerer) *observer {
	o := &observer{
		access: access,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "Requests answered, by route (app, static, refused...) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time from request head to the end of the response, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_refused_total",
			Help: "Requests gatehouse answered itself instead of an app or file, by reason.",
		}, []string{"reason"}),
	}
	o.inflightG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_http_requests_in_flight",
		Help: "Requests being served right now.",
	}, func() float64 { return float64(o.inflight.Load()) })
	if reg != nil {
		reg.MustRegister(o.requests, o.duration, o.inflightG, o.refused)
	}
	return o
}

// start is called when a request enters the front.
func (o *observer) start() { o.inflight.Add(1) }

// done records a finished request. A request whose client left before the
// answer is logged as 499, as nginx does, so the cause is not mistaken for
// a server error.
func (o *observer) done(rec *recorder, r *http.Request, info *reqinfo.Info) {
	o.inflight.Add(-1)
	d := time.Since(info.Start)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		if r.Context().Err() != nil || info.Reason == "client_closed" {
			status = 499
		}
	}
	route := info.Route
	if route == "" {
		route = "none"
	}
	o.byCode.get(routeCode{route, status}, o.newByCode).Inc()
	o.byRoute.get(route, o.newByRoute).Observe(d.Seconds())
	if info.Reason != "" {
		o.byReason.get(info.Reason, o.newByReason).Inc()
	}
	if o.access == nil || !o.access.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	method, host, path := r.Method, r.Host, r.URL.Path
	if route == "guard" {
		// The request never parsed (h1srv.Rejection): what the handler
		// saw is a stand-in, not the client's words.
		method, host, path = "-", "-", "-"
	}
	// Room for every field on the stack: appending past a literal's
	// length would move the slice to the heap.
	var buf [14]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", info.ID),
		slog.String("client_ip", rec.clientIP(info)),
		slog.String("method", method),
		slog.String("host", host),
		slog.String("path", path),
		slog.String("proto", r.Proto),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration", float64(d.Microseconds())/1e6),
		slog.String("route", route),
	)
	if info.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", info.Upstream))
	}
	if info.Plan != "" {
		attrs = append(attrs, slog.String("plan", info.Plan))
	}
	if info.Reason != "" {
		attrs = append(attrs, slog.String("reason", info.Reason))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, slog.String("user_agent", ua))
	}
	o.access.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

func (o *observer) newByCode(k routeCode) prometheus.Counter {
	return o.requests.WithLabelValues(k.route, strconv.Itoa(k.code))
}

func (o *observer) newByRoute(route string) prometheus.Observer {
	return o.duration.WithLabelValues(route)
}

func (o *observer) newByReason(reason string) prometheus.Counter {
	return o.refused.WithLabelValues(reason)
}

func addrString(info *reqinfo.Info) string {
	if info.ClientIP.IsValid() {
		return info.ClientIP.String()
	}
	return "unix"
}
