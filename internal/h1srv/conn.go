package h1srv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/sockwait"
)

// Connection states, for Shutdown: only an idle connection may be closed
// under a client's feet.
const (
	stateIdle   int32 = iota // waiting for a request (the first one too)
	stateActive              // reading a request or serving it
	stateHijacked
	stateClosed
)

const (
	readBufSize  = 4 << 10
	writeBufSize = 8 << 10
)

// Read and write buffers are taken when there is something to read or to
// write and given back when the connection goes idle, so that 10,000
// idle keep-alive connections hold none.
var (
	readBufs  = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}
)

// ReadWaiter is a connection that can block until input is ready without
// reading it (and so without a buffer). The server asks conns that
// implement it, and plain sockets (syscall.Conn), before taking a read
// buffer for the next request. A wrapper that holds bytes of its own
// returns at once when it has some.
type ReadWaiter interface {
	WaitRead() error
}

// conn is one client connection. Everything per request is kept here and
// reset between requests, so a steady keep-alive request costs few
// allocations.
type conn struct {
	srv      *Server
	nc       net.Conn
	ctx      context.Context
	remote   string
	tlsState *tls.ConnectionState
	waiter   ReadWaiter       // nil: the read waits, holding a buffer
	sw       *sockwait.Socket // when nc is itself a socket
	state    atomic.Int32
	broken   atomic.Bool // framing or I/O failure: close after this response

	rbuf       []byte  // nil while idle
	rbufp      *[]byte // the pooled buffer rbuf is, nil if rbuf was grown
	rpos, rend int     // unread input is rbuf[rpos:rend]

	out     []byte  // response bytes not yet written; nil while empty
	outp    *[]byte // the pooled buffer out came from
	iov     net.Buffers
	outMark int // where the current response starts in out

	head head
	hdr  http.Header
	vals []string
	url  url.URL
	tmpl http.Request
	// blank is an empty Request with the context of the connection's
	// requests, which every request starts from: net/http makes a context
	// and a copy of the Request per request so that the context ends when
	// the handler returns; here it ends with the connection (see doc.go),
	// which spares three allocations per request.
	blank http.Request
	resp  response

	// Guarded by mu: the state shared with the close watcher and Hijack.
	mu        sync.Mutex
	handling  bool // the handler runs
	bodyDone  bool // the request body was read to its end (or there is none)
	watchDue  bool // CloseCheckDelay has passed
	watching  bool
	aborting  bool               // the server stopped the watch itself
	watchEnd  chan struct{}      // closed when the watch goroutine returns
	gone      bool               // the watch saw the client leave
	cancel    context.CancelFunc // cancels the requests' context
	hijacked  bool
	readDLSet bool // a read deadline may be set on the socket

	// Lazy bounds, in the server's coarse clock (see clock.go); 0: none.
	readBy     atomic.Int64 // reads fail after this
	watchAt    atomic.Int64 // the close watch starts after this
	kicked     atomic.Bool  // the sweeper set a past read deadline
	userReadBy atomic.Int64 // the handler's own read deadline, Unix ns
	writeBy    int64        // the socket's write deadline (SendTimeout)
	userWrite  bool         // the handler set a write deadline itself
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, remote: nc.RemoteAddr().String()}
	switch x := nc.(type) {
	case ReadWaiter:
		c.waiter = x
	case *net.TCPConn, *net.UnixConn:
		if c.sw = sockwait.New(x.(syscall.Conn)); c.sw != nil {
			// Not before: Shutdown closes idle conns, and the response
			// must be out first.
			c.sw.Written = func() { c.state.Store(stateIdle) }
		}
	}
	c.resp.c = c
	return c
}

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

func (c *conn) serve() {
	s := c.srv
	if s.ReadHeaderTimeout > 0 {
		c.setReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.cleanup()
			return
		}
	}
	if cs, ok := c.nc.(connectionStater); ok {
		st := cs.ConnectionState()
		if st.HandshakeComplete {
			c.tlsState = &st
		}
	}
	c.loop(true)
}

// loop serves requests until the connection closes. A connection that
// stays idle for handoffAfter after a request was served on this
// goroutine is handed to a fresh goroutine and this one ends: a handler's
// calls (a reverse proxy's especially) grow the goroutine's stack to 16
// KiB or more, and an idle connection would otherwise keep that until
// enough garbage collections have shrunk it. A busy keep-alive connection,
// whose next request comes sooner, keeps its goroutine (handing over on
// every round trip would make each new goroutine grow its stack again).
func (c *conn) loop(first bool) {
	handoff := false
	defer func() {
		if handoff {
			return
		}
		if p := recover(); p != nil {
			// A bug in this package, not in a handler (those are caught
			// per request): log it and drop the connection, not the process.
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logger().Error("h1srv: panic serving connection", "remote_addr", c.remote, "panic", p, "stack", string(buf))
		}
		c.cleanup()
	}()
	fresh := true
	for {
		switch c.serveOne(first, fresh) {
		case stop:
			return
		case handOver:
			handoff = true
			// What only a request needs is made again for the next one:
			// an idle connection keeps no maps.
			c.hdr, c.resp.hdr, c.vals, c.head.fields = nil, nil, nil, nil
			go c.loop(false)
			return
		}
		first, fresh = false, false
	}
}

// handoffAfter is how long an idle connection keeps the goroutine that
// served its last request.
const handoffAfter = 20 * time.Millisecond

type outcome uint8

const (
	next outcome = iota
	stop
	handOver
)

func (c *conn) cleanup() {
	if c.state.Load() != stateHijacked {
		c.nc.Close()
	}
	c.releaseRead()
	c.releaseOut()
	c.cancel()
	c.srv.base.Remove(c)
}

// serveOne reads and answers one request and reports whether the
// connection may carry another.
func (c *conn) serveOne(first, fresh bool) outcome {
	s := c.srv
	if c.rpos == c.rend {
		// Nothing buffered: send what is pending, give the buffers back,
		// and wait for the client.
		d := s.idleTimeout()
		busy := !first && !fresh && (d <= 0 || d > handoffAfter)
		// A busy plain socket sends and starts waiting in one step below.
		fused := busy && c.sw != nil && len(c.out) > 0
		if !fused {
			// (Fused, the conn goes idle once the response is out: see
			// newConn. Shutdown closes it then, on its next round.)
			if c.flush() != nil {
				return stop
			}
			c.releaseOut()
			c.state.Store(stateIdle)
			if s.base.Closing() {
				return stop
			}
		}
		if busy {
			// A connection that was just busy: read as usual, keeping the
			// read buffer, for handoffAfter; most keep-alive clients send
			// their next request within it, and this costs one system
			// call less than the wait below. Then see loop.
			c.setReadBy(s.after(handoffAfter))
			var err error
			if fused {
				err = c.flushWait()
			}
			if err == nil {
				err = c.fill()
			}
			if err != nil {
				if isTimeout(err) && c.rpos == c.rend {
					return handOver
				}
				return stop
			}
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return stop // Shutdown closed it
			}
			c.readBy.Store(c.headBy())
		} else {
			c.readBy.Store(0)
			if c.kicked.Swap(false) {
				c.readDLSet = true // the socket has the kick's deadline
			}
			c.releaseRead()
			if !first {
				if d > 0 {
					c.setReadDeadline(time.Now().Add(d))
				} else if c.readDLSet {
					c.setReadDeadline(time.Time{})
				}
			}
			if c.waitRead() != nil {
				return stop
			}
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return stop // Shutdown closed it
			}
			if !first && s.ReadHeaderTimeout > 0 {
				c.setReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
			}
			if c.fill() != nil {
				return stop
			}
		}
	} else {
		c.state.Store(stateActive)
		c.setReadBy(c.headBy())
	}

	// Find the end of the head, reading more as needed.
	max := s.maxHeaderBytes()
	scan := 0
	var end int
	for {
		buf := c.rbuf[c.rpos:c.rend]
		if n := skipEmptyLines(buf); n > 0 {
			c.rpos += n
			buf = buf[n:]
			scan = 0
		}
		if len(buf) > 0 {
			end, scan = findHeadEnd(buf, scan)
			if end >= 0 {
				break
			}
		}
		if len(buf) > max {
			c.reject(s.tooLarge(buf))
			return stop
		}
		if err := c.fill(); err != nil {
			if len(buf) > 0 && !isTimeout(err) && err != io.EOF {
				return stop
			}
			if len(buf) > 0 && isTimeout(err) {
				c.reject(&parseError{http.StatusRequestTimeout, "head_timeout"})
			}
			return stop
		}
	}
	raw := c.rbuf[c.rpos : c.rpos+end]
	if end > max || s.MaxURIBytes > 0 && bytes.IndexByte(raw, '\n') > s.MaxURIBytes {
		c.reject(s.tooLarge(raw))
		return stop
	}
	if perr := parseHead(raw, &c.head); perr != nil {
		c.reject(perr)
		return stop
	}
	c.rpos += end
	// One allocation for the whole head: every string below is a slice
	// of it.
	hs := string(raw)
	req, perr := c.buildRequest(hs)
	if perr != nil {
		c.reject(perr)
		return stop
	}
	if !c.handle(req) {
		return stop
	}
	return next
}

var chunkedTE = []string{"chunked"}

// buildRequest fills the connection's request template from the parsed
// head hs.
func (c *conn) buildRequest(hs string) (*http.Request, *parseError) {
	h := &c.head
	if c.hdr == nil {
		c.hdr = make(http.Header, len(h.fields))
	}
	hdr := c.hdr
	clear(hdr)
	if cap(c.vals) < len(h.fields) {
		c.vals = make([]string, 0, len(h.fields)+8)
	}
	vals := c.vals[:0]
	var (
		host                      string
		hosts, lengths, encodings int
		cl                        int64
		conClose, conKeep, expect bool
		hasTrailer                bool
	)
	for _, f := range h.fields {
		key, val := hs[f.ns:f.ne], hs[f.vs:f.ve]
		switch key {
		case "Host":
			hosts++
			host = val
			continue // net/http keeps it in Request.Host only
		case "Content-Length":
			if lengths > 0 {
				// Even the same value twice: a front must not guess which
				// one a server behind it believes (RFC 9112 6.3, item 5).
				return nil, &parseError{http.StatusBadRequest, "duplicate_content_length"}
			}
			n, ok := parseContentLength(val)
			if !ok {
				return nil, &parseError{http.StatusBadRequest, "bad_content_length"}
			}
			lengths++
			cl = n
			if lengths > 1 {
				continue
			}
		case "Transfer-Encoding":
			encodings++
			if !ascii.EqualFold(val, "chunked") {
				if ascii.IsToken(val) {
					return nil, &parseError{http.StatusNotImplemented, "unsupported_transfer_encoding"}
				}
				return nil, &parseError{http.StatusBadRequest, "bad_transfer_encoding"}
			}
			continue // as net/http: Request.TransferEncoding instead
		case "Connection":
			conClose = conClose || hasToken(val, "close")
			conKeep = conKeep || hasToken(val, "keep-alive")
		case "Expect":
			if !ascii.EqualFold(val, "100-continue") {
				return nil, &parseError{http.StatusExpectationFailed, "unsupported_expect"}
			}
			expect = h.minor == 1
		case "Trailer":
			hasTrailer = true
		}
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, val)
			continue
		}
		vals = append(vals, val)
		hdr[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	c.vals = vals[:0]
	switch {
	case hosts == 0 && h.minor == 1:
		return nil, &parseError{http.StatusBadRequest, "missing_host"}
	case hosts > 1:
		return nil, &parseError{http.StatusBadRequest, "duplicate_host"}
	case encodings > 1:
		return nil, &parseError{http.StatusBadRequest, "duplicate_transfer_encoding"}
	case encodings > 0 && (lengths > 0 || h.minor == 0):
		// RFC 9112 6.1 and 6.3: the shapes request smuggling uses.
		return nil, &parseError{http.StatusBadRequest, "content_length_with_transfer_encoding"}
	}

	r := &c.tmpl
	*r = c.blank
	r.Method = internMethod(hs[h.method[0]:h.method[1]])
	target := hs[h.target[0]:h.target[1]]
	r.RequestURI = target
	c.url = url.URL{}
	switch {
	case fastPath(target):
		path, query := target, ""
		if i := indexByteString(target, '?'); i >= 0 {
			path, query = target[:i], target[i+1:]
			c.url.ForceQuery = query == ""
		}
		c.url.Path, c.url.RawQuery = path, query
	case target == "*":
		c.url.Path = "*"
	default:
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return nil, &parseError{http.StatusBadRequest, "bad_target"}
		}
		c.url = *u
		if u.Host != "" {
			host = u.Host // absolute-form overrides Host (RFC 9112 3.2.2)
		}
	}
	r.URL = &c.url
	if h.minor == 1 {
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
		r.Close = conClose
	} else {
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
		r.Close = conClose || !conKeep
	}
	r.Header = hdr
	r.Host = host
	r.RemoteAddr = c.remote
	r.TLS = c.tlsState
	r.Body = http.NoBody
	switch {
	case encodings > 0:
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
		b := &body{c: c, chunked: true, expect: expect}
		if hasTrailer {
			b.declareTrailers(hdr)
			r.Trailer = b.trailer
		}
		r.Body = b
	case cl > 0:
		r.ContentLength = cl
		r.Body = &body{c: c, remaining: cl, expect: expect}
	}
	return r, nil
}

// fastPath reports whether target is an origin-form target that
// url.ParseRequestURI would split at '?' and leave as it is: no escapes,
// nothing that URL.EscapedPath would re-escape.
func fastPath(t string) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		if ch == '?' {
			return true // the query is taken raw
		}
		if !pathSafe[ch] {
			return false
		}
	}
	return true
}

var pathSafe = func() (t [256]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range "-_.~$&+,/:;=@" {
		t[ch] = true
	}
	return t
}()

func internMethod(m string) string {
	switch m {
	case "GET":
		return http.MethodGet
	case "POST":
		return http.MethodPost
	case "HEAD":
		return http.MethodHead
	case "PUT":
		return http.MethodPut
	case "DELETE":
		return http.MethodDelete
	case "OPTIONS":
		return http.MethodOptions
	case "PATCH":
		return http.MethodPatch
	}
	return m
}

// handle runs the handler for req and finishes its response; it reports
// whether the connection may carry another request.
func (c *conn) handle(tmpl *http.Request) bool {
	s := c.srv
	b, _ := tmpl.Body.(*body)
	if b != nil {
		// Body reads must not write (the handler may be writing on
		// another goroutine), so earlier pipelined answers go out now.
		if c.flush() != nil {
			return false
		}
	}
	// The head is in; the body and the handler have their own bounds
	// (net/http clears the header deadline here too).
	c.readBy.Store(0)
	if c.readDLSet {
		c.setReadDeadline(time.Time{})
	}
	r := tmpl
	if b != nil {
		b.req = r
	}
	w := &c.resp
	w.reset(r, b)
	if s.WriteTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
	c.outMark = len(c.out)

	c.mu.Lock()
	c.handling, c.bodyDone, c.watchDue, c.gone = true, b == nil, false, false
	c.broken.Store(false)
	c.mu.Unlock()
	if d := s.CloseCheckDelay; d >= 0 {
		if d == 0 {
			d = defaultCloseDelay
		}
		if d < tickEvery {
			// Shorter than the sweeper can time: watched from the
			// start, as net/http does.
			c.watchTimer()
		} else {
			// Not after(d), which can come due a tick early: the watch
			// then started for one forwarded request in eight, each a
			// goroutine and three system calls, on a loaded machine
			// where they took 2 ms.
			c.watchAt.Store(s.atLeast(d))
		}
	}

	panicked := c.runHandler(w, r)

	c.watchAt.Store(0)
	if c.userWrite {
		c.userWrite, c.writeBy = false, 0
	}
	c.userReadBy.Store(0)
	c.mu.Lock()
	c.handling = false
	hijacked := c.hijacked
	c.mu.Unlock()
	c.stopWatch()
	if hijacked {
		return false
	}
	if panicked {
		// Send the responses before this one, not this one's part.
		c.out = c.out[:c.outMark]
		_ = c.flush()
		return false
	}
	if !w.finish() {
		_ = c.flush()
		return false
	}
	keep := !w.closeAfter && !r.Close && !c.broken.Load() && !c.gone && !s.base.Closing()
	if b != nil && !b.finished() {
		// The handler left part of the body: answer first (the client
		// may wait for it), then read the rest away if it is short.
		if c.flush() != nil {
			return false
		}
		if !keep || !b.drain(s.maxDrain()) {
			c.lingerClose()
			return false
		}
	}
	if !keep {
		if c.flush() != nil {
			return false
		}
		c.lingerClose()
		return false
	}
	if len(c.out) >= writeBufSize {
		// Pipelined responses go out together, once no further request
		// is buffered (serveOne sends them, with its wait for the next
		// request where it can) or once they fill a buffer.
		if c.flush() != nil {
			return false
		}
	}
	return true
}

func (c *conn) runHandler(w *response, r *http.Request) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			if p == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logger().Error("h1srv: panic serving request", "remote_addr", c.remote,
				"method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(buf))
		}
	}()
	c.srv.Handler.ServeHTTP(w, r)
	return false
}

// tooLarge is the refusal of a head that is over a size limit: 414 when
// its request line is, 431 otherwise.
func (s *Server) tooLarge(head []byte) *parseError {
	if u := s.MaxURIBytes; u > 0 {
		if i := bytes.IndexByte(head, '\n'); i < 0 && len(head) > u || i > u {
			return errURITooLong
		}
	}
	return errTooLarge
}

// reject answers a request the parser refused and leaves the connection
// to be closed.
func (c *conn) reject(e *parseError) {
	if c.srv.HandleRejects {
		c.rejectToHandler(e)
		return
	}
	msg := http.StatusText(e.status)
	c.out = c.out[:c.outMark]
	c.appendOut("HTTP/1.1 ")
	c.out = appendStatusLine(c.out, e.status)
	c.appendOut("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	c.out = appendInt(c.out, int64(len(msg)+1))
	c.appendOut("\r\n\r\n")
	c.appendOut(msg)
	c.appendOut("\n")
	if c.flush() == nil {
		c.lingerClose()
	}
}

// rejectKey is the context key of the verdict on a stand-in request.
type rejectKey struct{}

// rejectToHandler passes a refused request to the handler as a stand-in
// (see Rejection), so that the refusal is answered, logged and counted
// like any other request; then the connection closes.
func (c *conn) rejectToHandler(e *parseError) {
	c.out = c.out[:c.outMark]
	r := &c.tmpl
	*r = c.blank
	r = r.WithContext(context.WithValue(r.Context(), rejectKey{}, e))
	c.url = url.URL{Path: "/"}
	r.Method, r.URL, r.Header = http.MethodGet, &c.url, http.Header{}
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.RemoteAddr, r.TLS, r.Body, r.Close = c.remote, c.tlsState, http.NoBody, true
	w := &c.resp
	w.reset(r, nil)
	w.closeAfter = true
	if c.runHandler(w, r) || !w.finish() {
		_ = c.flush()
		c.nc.Close()
		return
	}
	if c.flush() == nil {
		c.lingerClose()
	}
}

// Rejection reports whether r is the stand-in for a request the server
// refused (with HandleRejects set), and with what status and reason: a
// snake_case word such as "obs_fold", "bad_target" or "uri_too_long".
func Rejection(r *http.Request) (status int, reason string, ok bool) {
	if r.RequestURI != "" {
		return 0, "", false // every parsed request has one
	}
	e, ok := r.Context().Value(rejectKey{}).(*parseError)
	if !ok {
		return 0, "", false
	}
	return e.status, e.reason, true
}

// lingerClose closes after the client has had time to read the answer:
// closing a socket with unread input makes the kernel send a reset, which
// can destroy the response before the client reads it (golang.org/issue/3595,
// nginx's lingering_close).
func (c *conn) lingerClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if c.rbuf == nil {
				c.takeRead()
			}
			for n := 0; n < 256<<10; {
				m, err := c.nc.Read(c.rbuf)
				n += m
				if err != nil {
					break
				}
			}
		}
	}
	c.nc.Close()
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.readDLSet = !t.IsZero()
}

// waitRead blocks until the client sends something, without a buffer
// where the connection allows.
func (c *conn) waitRead() error {
	switch {
	case c.waiter != nil:
		return c.waiter.WaitRead()
	case c.sw != nil:
		return c.sw.Wait()
	}
	return nil
}

func (c *conn) takeRead() {
	c.rbufp = readBufs.Get().(*[]byte)
	c.rbuf = *c.rbufp
	c.rpos, c.rend = 0, 0
}

func (c *conn) releaseRead() {
	if c.rbuf != nil && c.rpos == c.rend {
		if c.rbufp != nil {
			readBufs.Put(c.rbufp)
		}
		c.rbuf, c.rbufp, c.rpos, c.rend = nil, nil, 0, 0
	}
}

// fill reads more input into the read buffer, making room (or a larger
// buffer, up to the head limit) when it is full. Pending output goes out
// first: the client may be waiting for it before it sends more.
func (c *conn) fill() error {
	if len(c.out) > 0 {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if c.rbuf == nil {
		c.takeRead()
	}
	if c.rpos == c.rend {
		c.rpos, c.rend = 0, 0
	}
	if c.rend == len(c.rbuf) {
		if c.rpos > 0 {
			c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
			c.rpos = 0
		} else {
			nb := make([]byte, 2*len(c.rbuf))
			copy(nb, c.rbuf[:c.rend])
			c.rbuf = nb
			if c.rbufp != nil {
				readBufs.Put(c.rbufp)
				c.rbufp = nil
			}
		}
	}
	return c.readMore()
}

// readMore reads into the free end of the read buffer until at least one
// byte arrives (a zero-byte read without an error is retried).
func (c *conn) readMore() error {
	for {
		var n int
		var err error
		if c.sw != nil {
			n, err = c.sw.Read(c.rbuf[c.rend:])
		} else {
			n, err = c.nc.Read(c.rbuf[c.rend:])
		}
		c.rend += n
		if n > 0 {
			return nil
		}
		if err != nil && !c.spurious(err) {
			return err
		}
	}
}

// headBy is the lazy bound for reading a request head.
func (c *conn) headBy() int64 {
	if d := c.srv.ReadHeaderTimeout; d > 0 {
		return c.srv.after(d)
	}
	return 0
}

func (c *conn) appendOut(s string) {
	if c.out == nil {
		c.outp = writeBufs.Get().(*[]byte)
		c.out = (*c.outp)[:0]
	}
	c.out = append(c.out, s...)
}

// flush writes the pending output.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	c.moveWriteDeadline()
	var err error
	if c.sw != nil {
		_, err = c.sw.Write(c.out, nil)
	} else {
		_, err = c.nc.Write(c.out)
	}
	c.out = c.out[:0]
	c.outMark = 0
	if err != nil {
		c.broken.Store(true)
	}
	return err
}

// flushWait writes the pending output and waits for the client's next
// request in one step (sockwait.Socket.WriteWait): a keep-alive client
// sends nothing until it has the response, so the read that would find
// nothing is skipped. What a client sent before the response went out (a
// pipelined request that came while the handler ran) does not end this
// wait; the handoffAfter bound does, and the fresh goroutine's wait then
// finds it, so such a request is late by at most that bound, never lost.
func (c *conn) flushWait() error {
	n, werr, rerr := c.sw.WriteWait(c.out)
	if werr == nil && n < len(c.out) {
		// The socket is full, or the wait failed before anything was
		// written (a kick's past read deadline, left by a sweep that
		// raced with this connection moving on): the rest goes the
		// usual way, with the write deadline, which the read deadline
		// does not touch. Dropping it would leave the client waiting.
		c.moveWriteDeadline()
		if _, werr = c.nc.Write(c.out[n:]); werr == nil {
			c.state.Store(stateIdle)
		}
	}
	c.out = c.out[:0]
	c.outMark = 0
	c.releaseOut()
	switch {
	case werr != nil:
		c.broken.Store(true)
		return werr
	case rerr != nil && c.spurious(rerr):
		return nil // fill waits again
	}
	return rerr
}

// BuffersWriter is a connection wrapper that can pass several buffers to
// one writev(2) of the socket it wraps (net.Buffers does this only for the
// net package's own conns).
type BuffersWriter interface {
	WriteBuffers(v *net.Buffers) (int64, error)
}

// writeWith writes the pending output followed by p.
func (c *conn) writeWith(p []byte) error {
	var err error
	c.moveWriteDeadline()
	switch {
	case c.sw != nil:
		_, err = c.sw.Write(c.out, p)
		c.out = c.out[:0]
		c.outMark = 0
	case len(c.out) == 0:
		_, err = c.nc.Write(p)
	default:
		c.iov = append(c.iov[:0], c.out, p)
		if bw, ok := c.nc.(BuffersWriter); ok {
			_, err = bw.WriteBuffers(&c.iov)
		} else {
			_, err = c.iov.WriteTo(c.nc)
		}
		c.iov = c.iov[:0]
		c.out = c.out[:0]
		c.outMark = 0
	}
	if err != nil {
		c.broken.Store(true)
	}
	return err
}

func (c *conn) releaseOut() {
	if c.out != nil && len(c.out) == 0 {
		if cap(c.out) <= 4*writeBufSize {
			*c.outp = c.out[:0]
			writeBufs.Put(c.outp)
		}
		c.out, c.outp = nil, nil
		c.outMark = 0
	}
}

// The close watcher. net/http reads one byte in the background during
// every request, so that a client that leaves cancels the request's
// context (and with it a proxied request upstream). Here the watch starts
// only for handlers that run longer than CloseCheckDelay, once the body is
// read: a short request is over before a watch would have told anything.

func (c *conn) watchTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.handling {
		return
	}
	c.watchDue = true
	c.startWatchLocked()
}

// bodyEOF is called by the body reader when the body is read to its end.
func (c *conn) bodyEOF() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodyDone = true
	if c.watchDue && c.handling {
		c.startWatchLocked()
	}
}

func (c *conn) startWatchLocked() {
	if c.watching || !c.bodyDone || c.hijacked || c.gone || c.rpos < c.rend {
		// Bytes already buffered after this request are the client's
		// next request: it has not left, and the watch would tell nothing.
		return
	}
	if c.rbuf == nil {
		c.takeRead()
	}
	c.rpos, c.rend = 0, 0
	c.watching, c.aborting = true, false
	c.srv.watches.Add(1)
	c.watchEnd = make(chan struct{})
	go c.watch(c.watchEnd)
}

func (c *conn) watch(end chan struct{}) {
	defer close(end)
	n, err := c.nc.Read(c.rbuf)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rend += n
	if n > 0 || err == nil {
		return // a pipelined request: it is kept for the next round
	}
	if c.aborting || isTimeout(err) {
		// Stopped by the server, or a read deadline the handler set.
		return
	}
	c.gone = true
	c.broken.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
}

// stopWatch ends the close watch, if one runs, and waits for it.
func (c *conn) stopWatch() {
	c.mu.Lock()
	if !c.watching {
		c.mu.Unlock()
		return
	}
	c.aborting = true
	end := c.watchEnd
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-end
	c.mu.Lock()
	c.watching = false
	c.mu.Unlock()
	c.readDLSet = true
}

var aLongTimeAgo = time.Unix(1, 0)
