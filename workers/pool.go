package workers

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/backend"
	"github.com/gatehouse/gatehouse/internal/h1"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
	"github.com/gatehouse/gatehouse/internal/watchdog"
)

// Options are what the wiring passes in besides the config.
type Options struct {
	// Logger receives the pool's log lines and the workers' output. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Registerer receives the pool's metrics. Nil means no metrics are
	// registered (they are still kept for Status).
	Registerer prometheus.Registerer
}

// Pool admits requests, queues them when every backend is busy, and sends
// each to the least-busy ready backend. Its backends are upstreams (run
// elsewhere) or worker processes it supervises. It implements
// http.RoundTripper, so it plugs into httputil.ReverseProxy as Transport.
type Pool struct {
	kind Kind
	log  *slog.Logger
	met  *metrics

	bg     context.Context // cancelled by Close: stops background work
	stopBg context.CancelFunc
	wg     sync.WaitGroup // background goroutines (health checks, supervisor)

	lim atomic.Pointer[sendLimits] // what send reads for every request

	mu        sync.Mutex
	cfg       Config
	members   []*member
	waiters   list.List // of *waiter, FIFO
	closed    bool
	started   bool
	rr        uint
	bootErr   error // process pools: why no worker can start, for 502s and /status
	allIdle   chan struct{}
	sup       *supervisor
	hcRestart chan struct{}
}

// memberState is where a backend is in its life. Only ready members are
// sent requests; a down upstream gets one probe request once its backoff
// has passed.
type memberState int

const (
	stateBooting memberState = iota
	stateReady
	stateDown
	stateDraining
)

func (s memberState) String() string {
	return [...]string{"booting", "ready", "down", "draining"}[s]
}

// member is one backend: an upstream address or one worker process. Fields
// below mu are guarded by Pool.mu.
type member struct {
	name  string // address, for logs, reqinfo.Upstream and /status
	label string // bounded metric label: the address for upstreams, "worker N" slot for processes
	host  string // URL host for requests ("127.0.0.1:8000"; a Unix-socket worker uses "localhost")
	rt    transport
	idle  func() // closes idle keep-alive connections, when removed
	w     *worker

	// mu: Pool.mu
	state     memberState
	active    int
	requests  uint64
	fails     int
	downUntil time.Time
	probing   bool
	removed   bool
	drained   chan struct{} // closed when removed and active reaches 0

	okCount atomic.Pointer[prometheus.Counter] // the "ok" requests counter, resolved once
	// down mirrors state == stateDown (set and cleared under Pool.mu), so
	// that markUp after every answer takes the lock only when it has
	// something to do.
	down atomic.Bool
}

// sendLimits are the settings send reads for every request, replaced
// whole when one changes (setSendLimits), so that reading them takes no
// lock.
type sendLimits struct {
	timeout  time.Duration
	respBuf  int64 // responses up to this size are read whole at once
	spoolMax int64 // responses above respBuf, up to this, are spooled to a file
}

// setSendLimits publishes cfg's timeout and response buffer, with the
// spool bound kept as it was.
func (p *Pool) setSendLimits(cfg Config) {
	spoolMax := int64(maxSpool)
	if old := p.lim.Load(); old != nil {
		spoolMax = old.spoolMax
	}
	p.lim.Store(&sendLimits{timeout: cfg.Timeout.D(), respBuf: int64(cfg.ResponseBuffer), spoolMax: spoolMax})
}

// countOK counts a successful request without a label lookup per request.
func (p *Pool) countOK(m *member) {
	c := m.okCount.Load()
	if c == nil {
		ok := p.met.requests.WithLabelValues(m.label, "ok")
		c = &ok
		m.okCount.Store(c)
	}
	(*c).Inc()
}

type waiter struct {
	ch    chan struct{}
	elem  *list.Element
	tried map[*member]bool
	m     *member // the slot handed over by dispatchLocked, if any
}

// New checks cfg and returns a pool that is not yet running: Start begins
// health checks and starts worker processes. cfg gets its defaults here.
func New(cfg Config, opts Options) (*Pool, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("workers: invalid config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Pool{kind: cfg.Kind(), cfg: cfg, log: log.With("component", "workers")}
	p.setSendLimits(cfg)
	p.bg, p.stopBg = context.WithCancel(context.Background())
	p.met = newMetrics(p)
	if opts.Registerer != nil {
		if err := p.met.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("workers: registering metrics: %w", err)
		}
	}
	switch p.kind {
	case KindUpstream:
		p.setUpstreams(cfg)
	default:
		sup, err := newSupervisor(p, cfg)
		if err != nil {
			return nil, err
		}
		p.sup = sup
	}
	return p, nil
}

// Start begins background work: active health checks for upstreams, the
// worker processes for wsgi and command pools. It returns at once; requests
// that arrive while workers boot wait in the queue.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return nil
	}
	p.started = true
	p.hcRestart = make(chan struct{}, 1)
	p.mu.Unlock()
	if p.kind == KindUpstream {
		p.wg.Go(p.healthLoop)
		return nil
	}
	return p.sup.start(ctx)
}

// RoundTrip sends r to a backend; see the package doc for the errors.
func (p *Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	info := reqinfo.From(r.Context())
	if p.kind != KindWSGI && info != nil && !info.Start.IsZero() && r.Header != nil && len(r.Header["X-Request-Start"]) == 0 {
		// For APM tools (New Relic, Datadog, Scout): queue time as seen by
		// the app is its own start minus this.
		var b [24]byte
		r.Header["X-Request-Start"] = []string{string(strconv.AppendInt(append(b[:0], "t="...), info.Start.UnixMicro(), 10))}
	}
	var tried map[*member]bool
	var lastErr error
	for attempt := 0; ; attempt++ {
		// The front read the clock when the request arrived, microseconds
		// ago: the first attempt counts its queue wait (and picks among
		// backends) from then, sparing two clock reads a request.
		var begin time.Time
		if attempt == 0 && info != nil {
			begin = info.Start
		}
		if begin.IsZero() {
			begin = time.Now()
		}
		m, waited, err := p.acquire(r.Context(), tried, begin)
		p.met.queueWait.Observe(waited.Seconds())
		if err != nil {
			if lastErr != nil && errors.Is(err, backend.ErrNoBackend) {
				// Every backend refused the connection: report the last
				// refusal, it is what the operator needs.
				return nil, fmt.Errorf("%w: %w", backend.ErrNoBackend, lastErr)
			}
			closeBody(r)
			if info != nil {
				info.Reason = reasonFor(err)
			}
			return nil, err
		}
		out := r
		if attempt > 0 {
			if out, err = replay(r); err != nil {
				p.release(m, false)
				return nil, fmt.Errorf("%w: retrying after %w: %w", backend.ErrBackendFailed, lastErr, err)
			}
		}
		resp, err := p.send(out, m, begin.Add(waited))
		if err == nil {
			if info != nil {
				info.Upstream = m.name
			}
			return resp, nil
		}
		if unsent(err) && r.Context().Err() == nil {
			// Refused before a byte was sent: safe to try another backend.
			// (A request written to a reused connection that then broke is
			// retried by the transport on a new one; if that dial is
			// refused, h1.Error.Sent stops us from taking the request -
			// perhaps the one that crashed the worker - to a second backend.)
			p.markDown(m, err)
			if tried == nil {
				tried = map[*member]bool{}
			}
			tried[m] = true
			lastErr = err
			continue
		}
		if info != nil {
			info.Upstream = m.name
			info.Reason = reasonFor(err)
		}
		return nil, err
	}
}

func reasonFor(err error) string {
	switch {
	case errors.Is(err, backend.ErrQueueFull):
		return "queue_full"
	case errors.Is(err, backend.ErrQueueTimeout):
		return "queue_timeout"
	case errors.Is(err, backend.ErrTimeout):
		return "upstream_timeout"
	case errors.Is(err, backend.ErrNotReady):
		return "app_not_ready"
	case errors.Is(err, backend.ErrNoBackend):
		return "no_backend"
	case errors.Is(err, backend.ErrClosed):
		return "pool_closed"
	case errors.Is(err, context.Canceled):
		return "client_gone"
	}
	return "upstream_failed"
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// replay returns a shallow copy of r with a fresh body from GetBody.
func replay(r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, nil
	}
	if r.GetBody == nil {
		return nil, errors.New("request body cannot be replayed")
	}
	b, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	out := *r
	out.Body = b
	return &out, nil
}

// send makes one attempt on m, which acquire reserved. The slot is released
// when the response body is closed (or at once on error).
func (p *Pool) send(r *http.Request, m *member, start time.Time) (*http.Response, error) {
	lim := p.lim.Load()
	timeout, respBuf, spoolMax := lim.timeout, lim.respBuf, lim.spoolMax
	// The transports bound the exchange themselves, from one watchdog
	// goroutine (internal/watchdog), and report in their errors whether
	// anything was sent (h1.Error.Sent, dialError): no derived context,
	// timer or request copy per request.
	out := r
	if r.Host == "" {
		out = r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host = "http", m.host
	}
	resp, err := m.rt.RoundTripTimeout(out, timeout)
	if err == nil {
		resp, err = p.takeSmall(r, resp, respBuf)
	}
	timedOut := err != nil && errors.Is(err, watchdog.ErrDeadline)
	if timedOut {
		if resp != nil {
			resp.Body.Close()
		}
		p.release(m, false)
		p.met.requests.WithLabelValues(m.label, "timeout").Inc()
		if m.w != nil {
			m.w.timedOut()
		}
		return nil, fmt.Errorf("%s gave no response within %s: %w", m.name, timeout, backend.ErrTimeout)
	}
	if err != nil {
		var de *dialError
		if m.w != nil && r.Context().Err() == nil && !errors.As(err, &de) && connBroken(err) {
			// A worker that broke a connection is most likely dying: stop
			// sending to it before its slot frees, until its exit is reaped.
			p.markDown(m, err)
		}
		p.release(m, false)
		if r.Context().Err() != nil {
			p.met.requests.WithLabelValues(m.label, "canceled").Inc()
			return nil, fmt.Errorf("request to %s: %w", m.name, r.Context().Err())
		}
		p.met.requests.WithLabelValues(m.label, "failed").Inc()
		if errors.As(err, &de) {
			// err, not de: the transport's error around the dial failure
			// says whether the request was already sent (h1.Error.Sent),
			// which decides whether another worker may run it.
			return nil, fmt.Errorf("%s: %w: %w", m.name, backend.ErrBackendFailed, err)
		}
		return nil, fmt.Errorf("%s after %s: %w: %w", m.name, time.Since(start).Round(time.Millisecond), backend.ErrBackendFailed, err)
	}
	if st, ok := resp.Body.(interface{ StopTimeout() }); ok {
		// Past the head (and a small body): a stream is bounded by the
		// client and by send_timeout, not by app.timeout.
		st.StopTimeout()
	}
	p.countOK(m)
	p.markUp(m)
	if _, ok := resp.Body.(*memBody); ok {
		p.release(m, true)
		return resp, nil
	}
	if r.Method != http.MethodHead && resp.ContentLength > respBuf && resp.ContentLength <= spoolMax && resp.StatusCode != http.StatusSwitchingProtocols {
		sp, err := newSpool(resp.Body, func(ok bool) { p.release(m, ok) })
		if err == nil {
			resp.Body = sp
			return resp, nil
		}
		p.log.Warn("cannot spool a response to a temp file; passing it through", "error", err)
	}
	b := &body{ReadCloser: resp.Body, done: func() { p.release(m, true) }}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &rwBody{body: b, w: rw}
	} else {
		resp.Body = b
	}
	return resp, nil
}

// transport is what a member sends requests through: *h1.Transport, or
// the WSGI shim's. Both bound an exchange themselves
// (h1.Transport.RoundTripTimeout).
type transport interface {
	http.RoundTripper
	RoundTripTimeout(r *http.Request, timeout time.Duration) (*http.Response, error)
}

// takeSmall takes a small whole response off the backend now, so that a
// slow client cannot hold the worker (or the slot) while it reads.
func (p *Pool) takeSmall(r *http.Request, resp *http.Response, respBuf int64) (*http.Response, error) {
	if r.Method == http.MethodHead || resp.ContentLength <= 0 || resp.ContentLength > respBuf || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil
	}
	hd := h1.HeadOf(resp)
	b, err := readBody(resp.Body, resp.ContentLength)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	b.head = hd
	resp.Body = b
	return resp, nil
}

// Done ends the caller's use of a response from RoundTrip: it closes the
// body and lets the transport reuse the memory the response was parsed
// into, which spares the collector most of what a forwarded request
// allocates. After Done, neither resp nor its Header map may be used;
// header values may (they are not reused).
func (p *Pool) Done(resp *http.Response) {
	var hd h1.Head
	if mb, ok := resp.Body.(*memBody); ok && mb.live {
		hd = mb.head
	}
	resp.Body.Close()
	hd.Recycle()
}

// readBody reads a response body of known length n into memory.
func readBody(rc io.ReadCloser, n int64) (*memBody, error) {
	mb := newMemBody(int(n))
	_, err := io.ReadFull(rc, mb.buf)
	if err == nil {
		// Read on to the end, which is what hands the connection back to
		// the keep-alive pool (a body closed early costs its connection).
		var one [1]byte
		if k, rerr := rc.Read(one[:]); k > 0 || rerr != io.EOF {
			if rerr == nil || rerr == io.EOF {
				rerr = errors.New("more body than Content-Length")
			}
			err = rerr
		}
	}
	rc.Close()
	if err != nil {
		mb.Close()
		return nil, fmt.Errorf("reading the response body: %w", err)
	}
	mb.Reset(mb.buf)
	return mb, nil
}

// memBody is a small response held in memory. It and its buffer are
// reused once closed: most responses are small, and this is two
// allocations fewer per request.
type memBody struct {
	bytes.Reader
	buf  []byte
	live bool    // between newMemBody and Close
	head h1.Head // the block the response was parsed into, for Done
}

// memBodyKeep is the largest buffer a closed memBody keeps for reuse.
const memBodyKeep = 64 << 10

var memBodies = sync.Pool{New: func() any { return new(memBody) }}

func newMemBody(n int) *memBody {
	mb := memBodies.Get().(*memBody)
	if cap(mb.buf) < n {
		mb.buf = make([]byte, n, max(n, 4<<10))
	}
	mb.buf, mb.live = mb.buf[:n], true
	return mb
}

func (b *memBody) Close() error {
	if !b.live {
		return nil // closed already: it may be someone else's now
	}
	b.live, b.head = false, h1.Head{}
	b.Reset(nil)
	if cap(b.buf) <= memBodyKeep {
		b.buf = b.buf[:0]
		memBodies.Put(b)
	}
	return nil
}

// body releases the backend slot when the front closes the response body.
type body struct {
	io.ReadCloser
	once sync.Once
	done func()
}

// Read releases the slot as soon as the backend has sent the whole
// response, before the front has finished writing it to the client, so the
// next queued request does not wait for the client's network.
func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// rwBody keeps a 101 response's body writable, which is how
// httputil.ReverseProxy recognises an upgraded connection.
type rwBody struct {
	*body
	w io.Writer
}

func (b *rwBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// acquire reserves a slot on the least-busy usable member not in tried,
// waiting in the FIFO queue while all are busy. A freed slot is handed
// straight to the first waiter (dispatchLocked), so a request arriving
// later never overtakes one that waited. It returns how long it waited
// since start, the time the request began to wait.
func (p *Pool) acquire(ctx context.Context, tried map[*member]bool, start time.Time) (*member, time.Duration, error) {
	var (
		timer *time.Timer
		w     *waiter
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, time.Since(start), backend.ErrClosed
		}
		now := start
		if w != nil {
			now = time.Now()
		}
		m, canWait := p.pickLocked(tried, now)
		if m != nil && (w != nil || p.waiters.Len() == 0) {
			p.takeLocked(m)
			p.mu.Unlock()
			if w == nil {
				return m, 0, nil // no wait: spare the clock read
			}
			return m, time.Since(start), nil
		}
		if m == nil && !canWait {
			err := p.bootErr
			p.mu.Unlock()
			if err != nil {
				// Workers that cannot boot: a 503 the client may retry,
				// not a 502 as for upstreams that are down.
				return nil, time.Since(start), fmt.Errorf("%w: %w", backend.ErrNotReady, err)
			}
			return nil, time.Since(start), backend.ErrNoBackend
		}
		if w == nil {
			if p.waiters.Len() >= p.cfg.Queue {
				p.mu.Unlock()
				return nil, 0, queueFull{retry: time.Second}
			}
			w = &waiter{ch: make(chan struct{}, 1), tried: tried}
			w.elem = p.waiters.PushBack(w)
			timer = time.NewTimer(p.cfg.QueueTimeout.D() - time.Since(start))
		} else {
			// Woken without a slot (the pool changed): keep our place.
			w.elem = p.waiters.PushFront(w)
		}
		p.dispatchLocked()
		p.mu.Unlock()
		var err error
		select {
		case <-w.ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-timer.C:
			err = fmt.Errorf("waited %s for a free backend: %w", time.Since(start).Round(time.Millisecond), backend.ErrQueueTimeout)
		}
		p.mu.Lock()
		if err != nil {
			if w.elem != nil {
				p.waiters.Remove(w.elem)
				w.elem = nil
			} else if w.m != nil {
				// Handed a slot as we gave up: give it back.
				w.m.active--
				w.m.requests--
				w.m.probing = false
				w.m = nil
				p.dispatchLocked()
			}
			p.mu.Unlock()
			return nil, time.Since(start), err
		}
		if m := w.m; m != nil {
			p.mu.Unlock()
			return m, time.Since(start), nil
		}
	}
}

// pickLocked returns the usable member with the fewest requests in flight,
// rotating among equals. When none is free, canWait says whether one may
// become free (a busy or booting member exists, or the supervisor will
// bring workers back).
func (p *Pool) pickLocked(tried map[*member]bool, now time.Time) (best *member, canWait bool) {
	// A supervised pool always gets its workers back (replaced, rebooted),
	// so requests wait for them, unless workers are failing to boot.
	canWait = p.sup != nil && p.bootErr == nil
	n := len(p.members)
	if n == 0 {
		return nil, canWait
	}
	p.rr++
	limit := p.limitLocked()
	for i := range n {
		m := p.members[(int(p.rr)+i)%n]
		if tried[m] {
			continue
		}
		switch m.state {
		case stateBooting:
			canWait = true
			continue
		case stateDraining:
			continue
		case stateDown:
			// Half-open: one probe request once the backoff has passed.
			if m.probing || now.Before(m.downUntil) {
				continue
			}
		}
		if limit > 0 && m.active >= limit {
			canWait = true
			continue
		}
		if best == nil || m.active < best.active {
			best = m
		}
	}
	return best, canWait
}

// takeLocked reserves a slot on m.
func (p *Pool) takeLocked(m *member) {
	m.active++
	m.requests++
	if m.state == stateDown {
		m.probing = true
	}
}

// dispatchLocked hands free slots to waiters in queue order, and wakes
// (without a slot) the waiters that can no longer be served, so that they
// fail at once rather than at queue_timeout.
func (p *Pool) dispatchLocked() {
	if p.waiters.Len() == 0 {
		return // the common case, at every release: no clock read
	}
	now := time.Now()
	for e := p.waiters.Front(); e != nil; {
		w := e.Value.(*waiter)
		next := e.Next()
		m, canWait := p.pickLocked(w.tried, now)
		switch {
		case m != nil:
			p.takeLocked(m)
			w.m = m
		case !canWait || p.closed:
		default:
			if w.tried == nil {
				return // no slot for anyone
			}
			e = next
			continue
		}
		p.waiters.Remove(e)
		w.elem = nil
		w.ch <- struct{}{}
		e = next
	}
}

// wakeAllLocked wakes every waiter without a slot (the pool is closing).
func (p *Pool) wakeAllLocked() {
	for p.waiters.Len() > 0 {
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		w.elem = nil
		w.ch <- struct{}{}
	}
}

func (p *Pool) limitLocked() int {
	if p.kind == KindUpstream {
		return p.cfg.UpstreamConcurrency
	}
	return p.cfg.Threads
}

// release frees m's slot. ok is false when the attempt failed.
func (p *Pool) release(m *member, ok bool) {
	p.mu.Lock()
	m.active--
	if m.probing && !ok {
		m.probing = false
	}
	p.dispatchLocked()
	if m.active == 0 && m.drained != nil {
		close(m.drained)
		m.drained = nil
	}
	if p.closed && p.allIdle != nil && p.idleLocked() {
		close(p.allIdle)
		p.allIdle = nil
	}
	w, removed := m.w, m.removed
	p.mu.Unlock()
	if w != nil && ok {
		w.served()
	}
	if removed && m.idle != nil {
		m.idle()
	}
}

func (p *Pool) idleLocked() bool {
	for _, m := range p.members {
		if m.active > 0 {
			return false
		}
	}
	return true
}

// markDown takes an upstream out after a refused connection, to be probed
// again after a capped exponential backoff.
func (p *Pool) markDown(m *member, err error) {
	p.mu.Lock()
	m.probing = false
	if m.state == stateDraining {
		p.mu.Unlock()
		return
	}
	m.fails++
	backoff := min(time.Second<<min(m.fails-1, 5), 30*time.Second)
	m.downUntil = time.Now().Add(backoff)
	was := m.state
	m.state = stateDown
	m.down.Store(true)
	p.mu.Unlock()
	// Requests queued meanwhile get another look once the probe is due.
	time.AfterFunc(backoff, func() {
		p.mu.Lock()
		p.dispatchLocked()
		p.mu.Unlock()
	})
	if was != stateDown {
		p.met.healthy.WithLabelValues(m.label).Set(0)
		p.log.Warn("backend taken out", "upstream", m.name, "retry_in", backoff, "error", err)
	}
	if m.w != nil {
		m.w.dialFailed(err)
	}
}

// markUp puts a member that answered back in service.
func (p *Pool) markUp(m *member) {
	if !m.down.Load() {
		return
	}
	p.mu.Lock()
	was := m.state
	if was != stateDown {
		p.mu.Unlock()
		return
	}
	m.state, m.fails, m.probing = stateReady, 0, false
	m.down.Store(false)
	p.dispatchLocked()
	p.mu.Unlock()
	p.met.healthy.WithLabelValues(m.label).Set(1)
	p.log.Info("backend back in service", "upstream", m.name)
}

// queueFull is backend.ErrQueueFull with a Retry-After hint.
type queueFull struct{ retry time.Duration }

func (q queueFull) Error() string             { return backend.ErrQueueFull.Error() }
func (q queueFull) Unwrap() error             { return backend.ErrQueueFull }
func (q queueFull) RetryAfter() time.Duration { return q.retry }

// dialError marks a failure to connect: nothing of the request was sent,
// so another backend may be tried.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// newTransport returns a keep-alive HTTP/1.1 transport (internal/h1, which
// does each exchange on the caller's goroutine) to one fixed address, that
// reports connection failures as dialError.
func newTransport(network, addr string, maxIdle int) *h1.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &h1.Transport{
		Dial: func(ctx context.Context) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxIdle:     max(maxIdle, 64),
		IdleTimeout: 60 * time.Second,
	}
}

// unsent reports whether a failed attempt certainly sent nothing of the
// request, so another backend may run it without running it twice.
func unsent(err error) bool {
	var de *dialError
	if !errors.As(err, &de) {
		return false
	}
	var he *h1.Error
	if errors.As(err, &he) {
		return !he.Sent
	}
	return true // the WSGI transport's dialError: nothing fully written
}

// Status is the pool's snapshot for /status.
type Status struct {
	Kind      Kind           `json:"kind"`
	Queued    int            `json:"queued"`
	Members   []MemberStatus `json:"backends"`
	LastError string         `json:"last_error,omitempty"`
	Restarts  map[string]int `json:"restarts,omitempty"`
}

// MemberStatus is one backend in Status.
type MemberStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Active   int       `json:"active"`
	Requests uint64    `json:"requests"`
	Worker   int       `json:"worker,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Memory   int64     `json:"memory_bytes,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Age      float64   `json:"age_seconds,omitempty"`
}

// Status returns a JSON-encodable snapshot of the pool.
func (p *Pool) Status() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Kind: p.kind, Queued: p.waiters.Len()}
	if p.bootErr != nil {
		s.LastError = p.bootErr.Error()
	}
	for _, m := range p.members {
		ms := MemberStatus{Name: m.name, State: m.state.String(), Active: m.active, Requests: m.requests}
		if m.w != nil {
			m.w.fillStatus(&ms)
			if m.state == stateReady && m.active > 0 {
				ms.State = "busy"
			}
		}
		s.Members = append(s.Members, ms)
	}
	if p.sup != nil {
		s.Restarts = p.sup.restartCounts()
	}
	return s
}

// Reload applies a new config. For upstreams the list is replaced (kept
// addresses keep their state and connections) and limits change at once.
// For process pools every worker is replaced by a rolling restart; if the
// new generation cannot start, the old one keeps serving and the error is
// returned.
func (p *Pool) Reload(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("workers: invalid config: %w", err)
	}
	if cfg.Kind() != p.kind {
		return fmt.Errorf("workers: cannot change app from %s to %s without a restart", p.kind, cfg.Kind())
	}
	if p.kind == KindUpstream {
		p.setUpstreams(cfg)
		select {
		case p.hcRestart <- struct{}{}:
		default:
		}
		return nil
	}
	return p.sup.reload(ctx, cfg)
}

// Close stops admitting requests, waits for in-flight ones to finish (or
// ctx to end), then stops the workers and background work.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.wakeAllLocked()
	var idle chan struct{}
	if !p.idleLocked() {
		idle = make(chan struct{})
		p.allIdle = idle
	}
	p.mu.Unlock()
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = fmt.Errorf("workers: closing with requests in flight: %w", ctx.Err())
		}
	}
	if p.sup != nil {
		if serr := p.sup.stop(ctx); err == nil {
			err = serr
		}
	}
	p.stopBg()
	p.wg.Wait()
	// The collectors stay registered (frozen) until a new pool on the same
	// registry takes their names over: unregistering here could remove a
	// successor's that already did.
	p.mu.Lock()
	for _, m := range p.members {
		if m.idle != nil {
			m.idle()
		}
	}
	p.mu.Unlock()
	return err
}

func jitter(n int) int {
	if n <= 0 {
		return 0
	}
	return rand.IntN(n + 1)
}

// connBroken reports whether err is the connection itself failing (the
// peer gone), rather than a bad answer on a working connection.
func connBroken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}
