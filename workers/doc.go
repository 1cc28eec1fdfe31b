// Package workers is gatehouse's backend pool: it admits requests, queues
// them while every backend is busy, and forwards each to the least-busy
// ready backend. The backends are addresses run elsewhere (app.upstreams),
// or worker processes that the pool starts, watches and recycles itself:
// any HTTP server (app.command) or Python WSGI workers running an embedded
// shim (app.wsgi).
//
// Typical usage, in cmd/gatehouse:
//
//	pool, err := workers.New(cfg.App, workers.Options{Logger: log, Registerer: reg})
//	if err != nil { ... }
//	pool.Start(ctx)                                   // boots workers, health checks
//	rp := &httputil.ReverseProxy{Rewrite: ..., Transport: pool}
//	...
//	pool.Reload(ctx, newCfg.App)                      // on SIGHUP
//	pool.Close(shutdownCtx)                           // drain, then stop workers
//
// # Errors
//
// RoundTrip returns errors wrapping the internal/backend sentinels; the
// front maps them to status codes: ErrQueueFull (with Retry-After) and
// ErrQueueTimeout are 503, ErrTimeout is 504, ErrNoBackend and
// ErrBackendFailed are 502, ErrClosed is 503. A request whose connection was
// refused (nothing sent yet) is retried on another backend; any other
// failure is not retried, as the backend may have acted on it.
//
// # Upstreams
//
// Each upstream has its own keep-alive connections. A refused connection
// takes the upstream out of service; after a backoff (1s, doubling to 30s)
// one request probes it, and an answer puts it back. With
// health_check.path set, every upstream is also asked GET path on an
// interval; 2xx/3xx is healthy. upstream_concurrency bounds the requests in
// flight to one upstream; beyond it requests wait in the queue.
package workers
