// Package workers is gatehouse's backend pool: it admits requests, queues
// them while every backend is busy, and forwards each to the least-busy
// ready backend. The backends are addresses run elsewhere (app.upstreams),
// or worker processes that the pool starts, watches and recycles itself:
// any HTTP server (app.command) or Python WSGI workers running an embedded
// shim (app.wsgi), which is what replaces gunicorn.
//
// Typical usage, in cmd/gatehouse:
//
//	pool, err := workers.New(cfg.App, workers.Options{Logger: log, Registerer: reg})
//	if err != nil { ... }
//	pool.Start(ctx)                   // boots workers / health checks; returns at once
//	rp := &httputil.ReverseProxy{Rewrite: ..., Transport: pool}
//	...
//	err = pool.Reload(ctx, newCfg.App) // SIGHUP: rolling restart, or new upstream list
//	pool.Close(shutdownCtx)            // drain in-flight requests, then stop workers
//
// The front must have read the request body before RoundTrip (and set
// GetBody): a worker is taken only once the whole request is in gatehouse,
// so a client sending slowly holds no worker. Responses are taken off the
// worker as fast as it sends them, so a client reading slowly holds none
// either: up to response_buffer (256KiB) into memory at once, larger ones
// of known length (up to 1GiB) into an unlinked temp file that the client
// reads behind the worker. Responses of unknown length (streaming, Server-
// Sent Events) pass through as the client reads them, flushed at once.
//
// # Errors
//
// RoundTrip returns errors wrapping the internal/backend sentinels; the
// front maps them to status codes: ErrQueueFull (with Retry-After) and
// ErrQueueTimeout are 503, ErrTimeout is 504, ErrNoBackend and
// ErrBackendFailed are 502, ErrClosed is 503. A request is tried on another
// backend only when nothing of it was sent (the connection was refused, or
// a kept-alive connection to a worker that just died failed on write); any
// other failure is not retried, as the backend may have acted on it.
//
// # Admission
//
// A worker gets at most app.threads requests at once (an upstream, at most
// app.upstream_concurrency when set). Other requests wait in one FIFO queue
// of at most app.queue entries for at most app.queue_timeout, and are
// handed to the least-busy ready backend as soon as one frees: the queue is
// in gatehouse, visible in gatehouse_pool_queue_depth and
// gatehouse_pool_queue_wait_seconds, not hidden in a kernel backlog. While
// workers boot, requests wait for them; when no worker can boot at all
// (an import error), requests fail at once with ErrNotReady (503 with
// Retry-After) carrying the boot error instead of waiting out the queue.
//
// # Upstreams
//
// Each upstream has its own keep-alive connections (internal/h1). A refused
// connection takes the upstream out of service; after a backoff (1s,
// doubling to 30s) one request probes it, and an answer puts it back. With
// health_check.path set, every upstream is also asked GET path on an
// interval; 2xx/3xx is healthy.
//
// # Processes (operations)
//
// Each worker runs in its own process group with a parent-death signal
// (SIGKILL), so workers die with gatehouse even when gatehouse itself is
// killed with SIGKILL, and a worker's own children die with it. Its stdout
// and stderr go to gatehouse's log line by line, with worker (the slot,
// 1..workers) and pid attributes. While a worker boots, its output is held
// back: if it becomes ready the lines are logged then; if it fails, one
// error "worker failed to boot" carries the whole output (the traceback),
// and further failures with the same output are one warning each, retried
// with backoff (100ms doubling to 30s) - never a tight crash loop.
//
// A command worker is given PORT (a free TCP port on 127.0.0.1) and
// GATEHOUSE_SOCKET (a Unix socket path in a private 0700 directory); it is
// ready when either accepts a connection. A WSGI worker is
// `python -u gatehouse_wsgi.py` (the shim, written to that directory): it
// inherits a listening Unix socket on fd 3, imports the app, and reports
// "ready" on a pipe on fd 4; readiness is that handshake, never a sleep.
// Both must be ready within boot_timeout (60s).
//
// Restarts, by reason (gatehouse_worker_restarts_total{reason}):
//
//	crash         the process died: its in-flight requests get 502; restarted with backoff
//	boot_failure  it exited or did not become ready within boot_timeout
//	timeout       a request had no response head within timeout: the client gets 504;
//	              a WSGI worker gets SIGUSR1 (the shim writes every thread's Python stack
//	              to stderr, so to the log), one second, then SIGKILL; then a new one boots
//	memory_hard   over max_rss_hard: killed at once (log says so), then replaced
//	max_requests  served max_requests + jitter (drawn per worker)
//	memory_soft   over max_rss for 3 samples in a row, and at least 5s old
//	reload        Reload (SIGHUP)
//
// The last three start the replacement first, wait until it is ready, then
// stop sending to the old worker, let its requests finish within
// graceful_timeout, then SIGTERM, then SIGKILL after graceful_timeout: no
// capacity is lost and no request fails. At most a quarter of the workers
// (at least one) are replaced at once. Reload rolls the slots one by one;
// if the first replacement of the new generation cannot boot (a bad
// deploy), nothing changes, the old workers keep serving and Reload returns
// the boot error. app.workers changes take a restart, not a reload.
//
// Memory is sampled for every worker every memory_interval (2s), busy or
// not. By default it is the worker's unshared memory, Private_Dirty + Swap
// from /proc/PID/smaps_rollup: pages shared with sibling workers or the
// page cache are not that worker's cost, and counting them (as RSS does)
// recycles workers for memory they do not own. memory: rss or pss selects
// those measures instead.
//
// Close stops admitting (queued requests get ErrClosed), waits for the
// in-flight requests (or its context), then sends SIGTERM to every worker
// (the shim stops accepting and exits once idle) and SIGKILL after
// graceful_timeout.
//
// As PID 1 in a container, gatehouse adopts every orphaned process there;
// cmd/gatehouse runs ReapOrphans then, which reaps zombies nobody waits for
// (never a worker: each has a goroutine blocked in its Wait).
//
// # The WSGI shim
//
// The shim (gatehouse_wsgi.py, standard library only) speaks a framed
// protocol over its socket: type byte, big-endian uint32 length, payload.
// gatehouse sends the environ as key/value pairs (REMOTE_ADDR is the client
// the front resolved, wsgi.url_scheme is https when the client used TLS,
// PATH_INFO is the decoded path as latin-1 per PEP 3333, header names
// containing "_" are dropped so they cannot pose as their "-" twins), then
// the body in chunks; the shim answers with the head, body chunks, and an
// end or abort frame. wsgi.input reads the body frames on demand and ends at
// the body's end; wsgi.errors is stderr (the log); write(), exc_info,
// wsgi.file_wrapper and close() on the iterable behave as PEP 3333 says.
// One thread serves each connection, and gatehouse opens at most threads
// connections per worker. After the import the shim freezes what it built
// (gc.freeze), so Python's full collections never walk the app's modules.
//
// Every CPU cycle per request that the shim or the pool spends is one the
// app does not get when workers and gatehouse share a few cores, so the
// request path is kept lean on both sides: a request without a body is one
// write from gatehouse and one recv into a kept buffer in the shim, and a
// response that is all there (a list, a non-streaming Django response) is
// one write back, read by gatehouse in one go. For measuring the shim,
// GATEHOUSE_SHIM_PROFILE=path in app.env makes each worker profile itself
// with cProfile and write path.PID when it stops; it is not for production.
package workers
