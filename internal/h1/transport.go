package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/sockwait"
	"github.com/gatehouse/gatehouse/internal/watchdog"
)

// Defaults for the zero fields of Transport.
const (
	DefaultMaxIdle                = 64
	DefaultIdleTimeout            = 90 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
	// discardLimit is how much of an unread response body Close reads
	// away to keep the connection, rather than closing it.
	discardLimit = 256 << 10
	// discardWait bounds how long Close waits for that rest.
	discardWait = 100 * time.Millisecond
	// earlyWait bounds the look for an answer after a failed write.
	earlyWait = 100 * time.Millisecond
	// max1xx bounds the informational responses skipped before the final
	// one, so a backend cannot keep a request busy with endless 103s.
	max1xx = 16
)

// Transport is an http.RoundTripper that speaks HTTP/1.1 to one backend
// over keep-alive connections. Its zero value is not usable: Dial must be
// set. Fields must not change after the first RoundTrip. A Transport is
// safe for concurrent use.
type Transport struct {
	// Dial opens a connection to the backend (TCP or Unix socket). It must
	// honour ctx. Its error is wrapped in *Error with Op "dial", so a pool
	// can find its own error type with errors.As.
	Dial func(ctx context.Context) (net.Conn, error)
	// MaxIdle is how many idle connections are kept; zero means 64, and
	// a negative value keeps none (every request dials).
	MaxIdle int
	// IdleTimeout closes connections idle this long; zero means 90s. Keep
	// it below the backend's own keep-alive timeout so that the backend
	// rarely closes a connection under us.
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes bounds the response head, 1xx heads
	// included; zero means 1 MiB.
	MaxResponseHeaderBytes int

	mu     sync.Mutex
	idle   []*conn // oldest first; taken from the end
	timer  *time.Timer
	armed  bool
	closed int // generation: CloseIdleConnections bumps it

	// dog cuts the connection of an exchange whose request context is
	// done or whose deadline (RoundTripTimeout) passed.
	dog watchdog.Dog
}

// InformationalKey is the context key under which a caller can put an
// Informational to be told of the 1xx responses (103 Early Hints) that
// precede the final one, without the allocations a per-request
// httptrace.ClientTrace costs: the context is only asked when a 1xx
// arrives. A ClientTrace with Got1xxResponse, when there is one, is used
// instead.
type InformationalKey struct{}

// CheckedKey is the context key under which a caller says, with the value
// true, that the request's header field names and values are valid
// already: parsed by a server that refuses invalid ones, and added to
// only with values built valid. The transport then skips its own check of
// every field (a few hundred nanoseconds for a proxied request's dozen
// fields); the request line and Host are still checked.
type CheckedKey struct{}

// Informational receives 1xx responses other than 101. An error aborts the
// exchange.
type Informational interface {
	Informational(code int, header http.Header) error
}

// Error is the error of a failed exchange. Op is "dial", "write", "read"
// (the response head) or "read body".
type Error struct {
	Op string
	// Sent reports whether any byte of the request may have reached the
	// backend, in any attempt. When false, the request can be tried on
	// another backend without risk of running it twice.
	Sent bool
	Err  error
}

func (e *Error) Error() string { return "h1: " + e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Sent reports whether a RoundTrip that returned err may have sent part of
// the request. It is false only for an *Error that says nothing was sent
// (failed dial, invalid request, a backend that refused before reading), so
// a pool can retry elsewhere exactly when Sent is false.
func Sent(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Sent
	}
	return true
}

var (
	errHeaderTooLarge = errors.New("response head larger than MaxResponseHeaderBytes")
	errBodyClosed     = errors.New("h1: read on closed response body")
	errNoDial         = errors.New("Transport.Dial is nil")
	// aLongTimeAgo is the deadline that aborts blocked I/O at once.
	aLongTimeAgo = time.Unix(1, 0)
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
	copyBuf = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// conn is one connection to the backend. Reads and writes go through it so
// that the response head can be bounded and a write can be known to have
// put bytes on the wire.
type conn struct {
	t    *Transport
	nc   net.Conn
	br   *bufio.Reader    // while an exchange or its body holds the conn
	sock *sockwait.Socket // nil when nc is no socket
	// waitAfter makes the next Write start the wait for the response
	// in the same step (sockwait.Socket.WriteWait): set for the flush
	// that ends the request.
	waitAfter bool
	idleAt    time.Duration // monoNow when put on the idle list
	gen       int
	limit     int  // bytes left for the response head
	capped    bool // limit applies
	wrote     bool // some Write put bytes on the wire
	reused    bool
	hd        *head // the block of the head just parsed in place, if it was
	watch     watchdog.Entry
}

func (c *conn) Read(p []byte) (int, error) {
	if c.capped {
		if c.limit <= 0 {
			return 0, errHeaderTooLarge
		}
		if len(p) > c.limit {
			p = p[:c.limit]
		}
		n, err := c.read(p)
		c.limit -= n
		return n, err
	}
	return c.read(p)
}

func (c *conn) read(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Read(p)
	}
	return c.nc.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	if c.waitAfter {
		c.waitAfter = false
		// A backend sends nothing unasked on a keep-alive connection
		// but a close, and a close answers the request with a reset
		// that ends the wait too; the read deadline bounds the rest.
		// A failed wait is the read's business: it fails the same way
		// (deadline, closed).
		n, werr, _ := c.sock.WriteWait(p)
		if n > 0 {
			c.wrote = true
		}
		if werr != nil || n == len(p) {
			return n, werr
		}
		// The socket is full, or the wait failed before the write (a
		// read deadline already past): the rest goes as usual.
		m, err := c.nc.Write(p[n:])
		return n + m, err
	}
	n, err := c.nc.Write(p)
	if n > 0 {
		c.wrote = true
	}
	return n, err
}

// abort makes blocked and future I/O on c fail; the watchdog's Abort.
func (c *conn) abort() { c.nc.SetDeadline(aLongTimeAgo) }

// unwatch ends the watch of c's exchange and reports whether it was left
// alone (not aborted).
func (c *conn) unwatch() bool { return c.t.dog.Release(&c.watch) == watchdog.None }

func (c *conn) close() {
	c.hd = nil
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	c.nc.Close()
}

// RoundTrip sends r and returns the response head; see the package doc.
// It always closes r.Body.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.RoundTripTimeout(r, 0)
}

// RoundTripTimeout is RoundTrip with a bound: when the response head (or,
// until the caller calls StopTimeout on the body, the body) has not come
// within timeout (zero: no bound), the exchange is cut and the error wraps
// watchdog.ErrDeadline. It costs no context and no timer of its own, which
// is why it exists beside a context deadline.
func (t *Transport) RoundTripTimeout(r *http.Request, timeout time.Duration) (*http.Response, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	ctx := r.Context()
	checked, _ := ctx.Value(CheckedKey{}).(bool)
	if err := validRequest(r, !checked); err != nil {
		closeBody(r.Body)
		return nil, &Error{Op: "write", Err: err}
	}
	trace := httptrace.ContextClientTrace(ctx)
	sent := false
	req := r
	var first outcome // the failed first attempt, when retrying
	for attempt := 0; ; attempt++ {
		// A retry dials: the next idle connection may be as stale.
		c, err := t.getConn(ctx, trace, attempt > 0, replayable(req))
		if err != nil {
			closeBody(req.Body)
			if sent {
				// The request went out on the first connection, which
				// broke: that is the failure to report (a dial error
				// would read as "refused, nothing sent" to a pool that
				// looks for its own dial error type). The retry's
				// failure is only told.
				return nil, &Error{Op: first.op, Sent: true, Err: fmt.Errorf("%w (a retry on a new connection failed too: %v)", first.err, watchdog.CtxErr(ctx, err))}
			}
			return nil, &Error{Op: "dial", Sent: sent, Err: watchdog.CtxErr(ctx, err)}
		}
		resp, x := t.exchange(ctx, c, req, trace, deadline)
		if x.err == nil {
			return resp, nil
		}
		sent = sent || c.wrote
		if attempt == 0 && c.reused && !x.gotByte && ctx.Err() == nil && connGone(x.err) {
			if next := retryable(req, c.wrote, x.bodyTouched); next != nil {
				if next != req && req.Body != nil {
					req.Body.Close()
				}
				req = next
				first = x
				continue
			}
		}
		closeBody(req.Body)
		return nil, &Error{Op: x.op, Sent: sent, Err: x.err}
	}
}

// outcome is how an exchange failed, for the retry decision.
type outcome struct {
	op          string
	err         error
	gotByte     bool // some response byte arrived
	bodyTouched bool // the request body was read from
}

// exchange writes r on c and reads the response head. On error c is closed.
func (t *Transport) exchange(ctx context.Context, c *conn, r *http.Request, trace *httptrace.ClientTrace, deadline time.Time) (*http.Response, outcome) {
	t.dog.Watch(&c.watch, ctx, deadline)
	fail := func(x outcome) (*http.Response, outcome) {
		c.unwatch()
		c.close()
		x.err = c.watch.Err(ctx, x.err)
		return nil, x
	}

	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c)
	touched, err := writeRequest(bw, r, trace)
	if err == nil {
		c.waitAfter = c.sock != nil
		err = bw.Flush()
		c.waitAfter = false
	}
	bw.Reset(nil)
	writers.Put(bw)
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
	var resp *http.Response
	if werr := err; werr != nil {
		x := outcome{op: "write", err: werr, bodyTouched: touched}
		if !c.wrote || !connGone(werr) || ctx.Err() != nil {
			return fail(x)
		}
		// The backend may have answered before reading the whole
		// request (a 413) and closed: that answer is worth more than
		// the write error. Look briefly; a stale connection just says
		// EOF or reset at once.
		c.nc.SetReadDeadline(time.Now().Add(earlyWait))
		resp, x.gotByte, err = t.readHead(c, r, trace)
		if err != nil {
			return fail(x)
		}
		c.nc.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			return fail(x) // the deadline cleared may have been the abort
		}
		resp.Close = true
	} else {
		var gotByte bool
		resp, gotByte, err = t.readHead(c, r, trace)
		if err != nil {
			return fail(outcome{op: "read", err: err, gotByte: gotByte, bodyTouched: touched})
		}
	}

	hd := c.hd
	c.hd = nil
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !c.unwatch() {
			return fail(outcome{op: "read", err: os.ErrDeadlineExceeded, gotByte: true})
		}
		resp.Body = &upgraded{c: c}
		return resp, outcome{}
	}
	keep := !resp.Close && !r.Close && resp.ProtoAtLeast(1, 1) &&
		(resp.ContentLength >= 0 || resp.Body == http.NoBody || isChunked(resp.TransferEncoding))
	var b *body
	switch {
	case resp.Body != nil: // net/http read the head and framed the body
		b = hd.newBody(resp)
		b.rc = resp.Body
	case resp.ContentLength == 0:
		resp.Body = http.NoBody
	case resp.ContentLength > 0:
		b = hd.newBody(resp)
		b.remain = resp.ContentLength
	default:
		b = hd.newBody(resp)
		b.chunks, b.resp = httputil.NewChunkedReader(c.br), resp
	}
	if resp.Body == http.NoBody {
		// HEAD, 204, 304, Content-Length: 0: done now, even if the
		// caller forgets to close the body.
		t.release(c, keep)
		return resp, outcome{}
	}
	b.c, b.keep, b.ctx = c, keep, ctx
	resp.Body = b
	return resp, outcome{}
}

// readHead reads the final response head from c, skipping (and tracing)
// informational ones. gotByte reports whether any response byte came.
func (t *Transport) readHead(c *conn, r *http.Request, trace *httptrace.ClientTrace) (resp *http.Response, gotByte bool, err error) {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(c)
	}
	c.limit, c.capped = t.maxHeader(), true
	defer func() { c.capped = false }()
	if _, err := c.br.Peek(1); err != nil {
		return nil, false, err
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	for n := 0; ; n++ {
		if hd, ok := parseHeadBlock(c.br, r); ok {
			c.hd = hd
			return &hd.resp, true, nil // Body nil: the caller frames it, in hd.body
		}
		resp, err = http.ReadResponse(c.br, r)
		if err != nil {
			return nil, true, err
		}
		code := resp.StatusCode
		if code < 100 || code >= 200 || code == http.StatusSwitchingProtocols {
			return resp, true, nil
		}
		if n == max1xx {
			return nil, true, errors.New("too many 1xx responses")
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		} else if hook, ok := r.Context().Value(InformationalKey{}).(Informational); ok {
			if err := hook.Informational(code, resp.Header); err != nil {
				return nil, true, err
			}
		}
	}
}

// newBody returns the body of resp: the one in hd when resp was parsed
// into it, a new one otherwise.
func (hd *head) newBody(resp *http.Response) *body {
	if hd != nil && &hd.resp == resp {
		return &hd.body
	}
	return new(body)
}

func isChunked(te []string) bool {
	return len(te) > 0 && te[0] == "chunked"
}

// release ends an exchange on c: back to the idle list when it can be
// reused, closed otherwise.
func (t *Transport) release(c *conn, keep bool) {
	if !c.unwatch() {
		// The context ended; the conn may have a past deadline.
		keep = false
	}
	if keep && c.br.Buffered() > 0 {
		keep = false // unsolicited bytes: out of step with the backend
	}
	if !keep {
		c.close()
		return
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	t.put(c)
}

func (t *Transport) maxHeader() int {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

func (t *Transport) maxIdle() int {
	switch {
	case t.MaxIdle > 0:
		return t.MaxIdle
	case t.MaxIdle < 0:
		return 0
	}
	return DefaultMaxIdle
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return DefaultIdleTimeout
}

// trustIdle is how long a connection can have been idle and still be
// reused without the peek, for a request that can be sent again on a new
// connection if this one turns out stale (see replayable). A backend closes
// idle connections after seconds (its keep-alive timeout), so one put back
// this recently is all but certainly open, and the peek is a system call
// per request under load. A stale one costs the retry that RoundTrip makes
// anyway.
const trustIdle = 500 * time.Millisecond

// replayable reports whether r could be retried after it was written to a
// stale connection: an idempotent method (RFC 9110 section 9.2.2) and a
// body that is empty or can be had again.
func replayable(r *http.Request) bool {
	switch r.Method {
	case "", "GET", "HEAD", "OPTIONS":
	default:
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// getConn returns an idle connection that still looks open, or a new one;
// only a new one when fresh. When replayable, a connection idle for less
// than trustIdle is not checked.
func (t *Transport) getConn(ctx context.Context, trace *httptrace.ClientTrace, fresh, replayable bool) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := t.idleTimeout()
	for !fresh {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		idle := monoNow() - c.idleAt
		if idle > timeout || (c.sock != nil && !(replayable && idle < trustIdle) && !c.sock.Alive()) {
			c.close()
			continue
		}
		c.reused, c.wrote = true, false
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: true, WasIdle: true, IdleTime: idle})
		}
		return c, nil
	}
	if t.Dial == nil {
		return nil, errNoDial
	}
	t.mu.Lock()
	gen := t.closed
	t.mu.Unlock()
	nc, err := t.Dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, nc: nc, gen: gen}
	if sc, ok := nc.(syscall.Conn); ok {
		c.sock = sockwait.New(sc)
	}
	c.watch.Abort = c.abort
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: nc})
	}
	return c, nil
}

// monoEpoch and monoNow time idle connections with the monotonic clock
// alone: one clock read where time.Now makes two (wall and monotonic),
// on a path every request takes twice.
var monoEpoch = time.Now()

func monoNow() time.Duration { return time.Since(monoEpoch) }

// put adds c to the idle list, or closes it when the list is full.
func (t *Transport) put(c *conn) {
	max := t.maxIdle()
	c.idleAt = monoNow()
	t.mu.Lock()
	if len(t.idle) >= max || c.gen != t.closed {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle = append(t.idle, c)
	if !t.armed {
		t.armed = true
		d := t.idleTimeout()
		if t.timer == nil {
			t.timer = time.AfterFunc(d, t.sweep)
		} else {
			t.timer.Reset(d)
		}
	}
	t.mu.Unlock()
}

// sweep closes connections idle longer than IdleTimeout and sets the timer
// for the next oldest. The list is ordered by idleAt, oldest first, since
// put appends and getConn takes from the end.
func (t *Transport) sweep() {
	timeout := t.idleTimeout()
	now := monoNow()
	t.mu.Lock()
	i := 0
	for i < len(t.idle) && now-t.idle[i].idleAt >= timeout {
		i++
	}
	old := make([]*conn, i)
	copy(old, t.idle[:i])
	n := copy(t.idle, t.idle[i:])
	clear(t.idle[n:])
	t.idle = t.idle[:n]
	if n > 0 {
		t.timer.Reset(t.idle[0].idleAt + timeout - now)
	} else {
		t.armed = false
	}
	t.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

// CloseIdleConnections closes the idle connections. Connections in use are
// closed instead of kept when their exchange ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	old := t.idle
	t.idle = nil
	t.closed++
	t.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

// idleCount is for tests.
func (t *Transport) idleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle)
}

// connGone reports whether err means the backend had closed the
// connection: the stale keep-alive case that a retry fixes.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// retryable returns the request to send again after a reused connection
// failed, or nil when that is unsafe. See RFC 9112 section 9.3.1 and
// net/http's Request.isReplayable.
func retryable(r *http.Request, wrote, touched bool) *http.Request {
	if !wrote && !touched {
		return r // the backend saw nothing
	}
	if !idempotent(r) {
		return nil
	}
	if r.Body == nil || r.Body == http.NoBody || !touched {
		return r
	}
	if r.GetBody == nil {
		return nil
	}
	b, err := r.GetBody()
	if err != nil {
		return nil
	}
	out := *r
	out.Body = b
	return &out
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		b.Close()
	}
}

// body is a response body that returns its connection when read to the
// end. Read and Close may be called from different goroutines; a Close
// during a blocked Read aborts it.
type body struct {
	hd *head // the block it is part of, if any
	mu sync.Mutex
	c  *conn // nil once released
	// One of three framings: net/http's body (rc), a length (remain
	// bytes left) or chunks, after which come trailers for resp.
	rc      io.ReadCloser
	remain  int64
	chunks  io.Reader
	resp    *http.Response
	ctx     context.Context
	keep    bool
	reading bool
	closed  bool
	err     error // sticky, after the conn is released
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errBodyClosed
	}
	if b.c == nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if err == nil && !b.closed {
		return n, nil
	}
	c := b.c
	b.c = nil
	switch {
	case b.closed:
		// Close came during the Read and aborted the conn.
		b.err = errBodyClosed
		c.t.release(c, false)
		return n, errBodyClosed
	case err == io.EOF:
		b.err = io.EOF
		c.t.release(c, b.keep)
		return n, io.EOF
	}
	b.err = &Error{Op: "read body", Sent: true, Err: c.watch.Err(b.ctx, err)}
	c.t.release(c, false)
	return n, b.err
}

// StopTimeout lifts RoundTripTimeout's bound from the rest of the body:
// a caller that streams it (Server-Sent Events, a download) bounds it
// otherwise. The request's context still applies.
func (b *body) StopTimeout() {
	b.mu.Lock()
	if b.c != nil {
		b.c.watch.ClearDeadline()
	}
	b.mu.Unlock()
}

// read reads the body according to its framing; io.EOF comes with the
// last bytes when the length is known, so the connection goes back at once.
func (b *body) read(p []byte) (int, error) {
	switch {
	case b.rc != nil:
		return b.rc.Read(p)
	case b.chunks != nil:
		n, err := b.chunks.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
		}
		return n, err
	case b.remain == 0:
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readTrailer reads the trailer section after the last chunk into
// resp.Trailer, as net/http's body does (RFC 9112 section 7.1.2).
func (b *body) readTrailer() error {
	br := b.c.br
	buf, err := br.Peek(2)
	if len(buf) == 2 && buf[0] == '\r' && buf[1] == '\n' {
		br.Discard(2)
		return nil
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if !seeDoubleCRLF(br) {
		// As net/http: the trailer section must fit in the buffer.
		return errors.New("suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = make(http.Header, len(hdr))
	}
	for k, v := range hdr {
		b.resp.Trailer[k] = v
	}
	return nil
}

// seeDoubleCRLF reports whether the end of a field section is in br's
// buffer, filling it as far as it goes.
func seeDoubleCRLF(br *bufio.Reader) bool {
	for n := 4; ; n++ {
		buf, err := br.Peek(n)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// Close gives the connection back if the body was read to the end or the
// rest is small and comes quickly; otherwise it closes the connection.
func (b *body) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	c := b.c
	if c == nil {
		b.mu.Unlock()
		return nil
	}
	if b.reading {
		// The Read in flight fails and releases c.
		c.abort()
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()

	// closed keeps any Read away from c while the rest is discarded.
	keep := b.keep && b.ctx.Err() == nil
	if keep {
		keep = b.discard(c)
	}
	b.mu.Lock()
	b.c = nil
	b.mu.Unlock()
	c.t.release(c, keep)
	return nil
}

// discard reads away up to discardLimit of the rest, waiting at most
// discardWait, and reports whether the body reached its end.
func (b *body) discard(c *conn) bool {
	// A slow rest is not worth the wait: the connection is cheaper.
	c.nc.SetReadDeadline(time.Now().Add(discardWait))
	defer c.nc.SetReadDeadline(time.Time{})
	bp := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(bp)
	buf := *bp
	left := discardLimit
	for left > 0 {
		n, err := b.read(buf[:min(len(buf), left)])
		left -= n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// upgraded is the Body of a 101 response: the connection itself, for the
// caller to speak the new protocol (httputil.ReverseProxy tunnels
// WebSocket through it). Reads first drain what was buffered.
type upgraded struct {
	c    *conn
	once sync.Once
}

func (u *upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.c.nc.Write(p) }

// CloseWrite half-closes the connection when it supports that.
func (u *upgraded) CloseWrite() error {
	if cw, ok := u.c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (u *upgraded) Close() error {
	var err error
	u.once.Do(func() { err = u.c.nc.Close() })
	return err
}
