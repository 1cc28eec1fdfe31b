package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/h1srv"
)

// The guard is gatehouse's own HTTP/1.x framing parser. It sits between the
// TCP connection and net/http and sees every byte of every request head and
// chunked body before net/http does. net/http is lenient where a front
// server must not be (it accepts obs-folded headers, drops Content-Length
// when Transfer-Encoding is present, ignores Transfer-Encoding on HTTP/1.0,
// accepts absolute-form targets), and those leniencies are how request
// smuggling and rule bypasses start (RFC 9112 section 11.2).
//
// A head is held back until it is complete and valid. When it is not, the
// guard replaces the rest of the connection with a synthetic request that
// carries the verdict in a header only this process can write (a random
// token), so the rejection is answered, logged and counted by the normal
// handler chain, in order after any pipelined responses, and the connection
// is closed. A framing error inside a chunked body surfaces as a read error
// of type *FramingError to whoever reads the body, which the front turns
// into 400 before anything reaches an app.

// rejectHeader carries the guard's verdict to the handler chain.
const rejectHeader = "X-Gatehouse-Reject"

// FramingError reports a request the guard refused.
type FramingError struct {
	Status int    // the status code the client gets
	Reason string // a snake_case word for logs and metrics
}

func (e *FramingError) Error() string {
	return "proxy: invalid request framing: " + e.Reason
}

// guard holds the settings shared by all guarded connections of a listener.
type guard struct {
	token          string // proves a reject header came from this process
	maxHeaderBytes int    // request line plus fields
	maxURIBytes    int    // request line
}

func newGuard(maxHeaderBytes, maxURIBytes int) *guard {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return &guard{token: hex.EncodeToString(b[:]), maxHeaderBytes: maxHeaderBytes, maxURIBytes: maxURIBytes}
}

// verdict checks a reject header value and returns the status and reason
// it carries. ok is false for a value this process did not write (over
// HTTP/2 nothing stops a client from sending the header).
func (g *guard) verdict(v string) (status int, reason string, ok bool) {
	tok, rest, _ := strings.Cut(v, " ")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(g.token)) != 1 {
		return 0, "", false
	}
	code, reason, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil {
		return 0, "", false
	}
	return status, reason, true
}

func (g *guard) poison(e *FramingError) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: gatehouse.invalid\r\nConnection: close\r\n" +
		rejectHeader + ": " + g.token + " " + strconv.Itoa(e.Status) + " " + e.Reason + "\r\n\r\n")
}

// guardListener wraps every accepted connection in a guardConn.
type guardListener struct {
	net.Listener
	g *guard
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, g: l.g}, nil
}

type parseState uint8

const (
	stHead parseState = iota
	stBodyLength
	stChunkSize
	stChunkData
	stChunkDataEnd
	stTrailer
)

// guardConn validates the request byte stream of one connection.
// net/http reads from one goroutine at a time (its background read and
// request reads never overlap), so the parse state needs no lock; only the
// switch to tunnel mode comes from another goroutine (the handler that saw
// 101 Switching Protocols), and that is guarded by mu.
type guardConn struct {
	net.Conn
	g *guard

	state     parseState
	remaining int64   // body or chunk bytes left
	head      []byte  // held-back bytes of the current head or chunk line
	headp     *[]byte // the pooled buffer head came from
	out       []byte  // validated bytes not yet handed to net/http
	outp      *[]byte // the pooled buffer out came from
	outOff    int
	poisoned  bool  // out holds the synthetic reject request; input is dropped
	bodyErr   error // deferred framing error inside a body
	trailerN  int   // bytes of trailer section seen
	mu        sync.Mutex
	tunnel    bool
	waiter    *h1srv.Waiter // made on the first WaitRead
}

// Tunnel switches the connection to pass-through after a successful
// protocol upgrade (WebSocket): from here on the bytes are not HTTP.
func (c *guardConn) Tunnel() {
	c.mu.Lock()
	c.tunnel = true
	c.mu.Unlock()
}

// WaitRead blocks until the client sends more, without a buffer (h1srv
// asks before it takes one from its pool, so an idle keep-alive
// connection holds none). It returns at once when the guard has bytes of
// its own to hand out, or cannot wait on the socket (TLS).
func (c *guardConn) WaitRead() error {
	c.mu.Lock()
	tunnel := c.tunnel
	c.mu.Unlock()
	if tunnel || c.outOff < len(c.out) || c.poisoned || c.bodyErr != nil {
		return nil
	}
	if c.waiter == nil {
		sc, ok := c.Conn.(syscall.Conn)
		if !ok {
			return nil
		}
		if c.waiter = h1srv.NewWaiter(sc); c.waiter == nil {
			return nil
		}
	}
	return c.waiter.Wait()
}

// CloseWrite lets net/http half-close after an error response, so the
// client reads the response before the connection resets (golang.org/issue/3595).
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// WriteBuffers lets h1srv write a response head and a large body in one
// writev(2): the guard checks what the client sends, never what it gets.
func (c *guardConn) WriteBuffers(v *net.Buffers) (int64, error) { return v.WriteTo(c.Conn) }

// ReadFrom keeps sendfile(2) for static files: net/http uses the conn's
// ReadFrom when it has one, and *net.TCPConn's is zero-copy.
func (c *guardConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the wrapped connection.
func (c *guardConn) NetConn() net.Conn { return c.Conn }

func (c *guardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	tunnel := c.tunnel
	if tunnel && len(c.head) > 0 {
		// Bytes that arrived right behind the upgrade request belong to
		// the new protocol.
		rest := append([]byte(nil), c.out[c.outOff:]...)
		rest = append(rest, c.head...)
		c.releaseOut()
		c.releaseHead()
		c.emit(rest)
	}
	c.mu.Unlock()
	for {
		if c.outOff < len(c.out) {
			n := copy(p, c.out[c.outOff:])
			c.outOff += n
			if c.outOff == len(c.out) {
				c.releaseOut()
			}
			return n, nil
		}
		if c.poisoned {
			// The stand-in request says Connection: close, so net/http
			// stops after answering it. Until then, anything more the
			// client sends is dropped; returning EOF here instead would
			// make net/http's background read cancel a pipelined request
			// still in progress, as if the client had left.
			for {
				if _, err := c.Conn.Read(p); err != nil {
					return 0, err
				}
			}
		}
		if c.bodyErr != nil {
			return 0, c.bodyErr
		}
		if tunnel {
			return c.Conn.Read(p)
		}
		if c.state == stBodyLength && len(p) > 0 {
			// Fast path: a Content-Length body goes straight through.
			if int64(len(p)) > c.remaining {
				p = p[:c.remaining]
			}
			n, err := c.Conn.Read(p)
			c.remaining -= int64(n)
			if c.remaining == 0 {
				c.state = stHead
			}
			return n, err
		}
		// Read into the caller's buffer and parse there; what is valid
		// is copied out, so that an idle connection holds no buffer of
		// its own (10,000 keep-alive clients cost no 40 MB here).
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.feed(p[:n])
			if len(c.head) == 0 {
				c.releaseHead()
			}
			continue
		}
		if err == nil {
			continue
		}
		if err == io.EOF && c.state != stHead && c.state != stBodyLength {
			// The client hung up inside a chunked body.
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
}

// feed parses b, appending what is valid to c.out. On a violation it stops:
// a head violation poisons the stream, a body violation is deferred until
// net/http has consumed the valid bytes before it.
func (c *guardConn) feed(b []byte) {
	for len(b) > 0 && !c.poisoned && c.bodyErr == nil {
		switch c.state {
		case stHead:
			if len(c.head) == 0 {
				// RFC 9112 2.2: ignore empty lines before a request line.
				for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
					b = b[1:]
				}
				if len(b) == 0 {
					return
				}
			}
			end, bad := findHeadEnd(c.head, b)
			if bad != nil {
				c.reject(bad)
				return
			}
			if end < 0 {
				c.hold(b)
				if len(c.head) > c.g.maxHeaderBytes {
					c.reject(c.tooLarge())
				}
				return
			}
			c.hold(b[:end])
			b = b[end:]
			if len(c.head) > c.g.maxHeaderBytes {
				c.reject(c.tooLarge())
				return
			}
			f, err := parseHead(c.head, c.g.maxURIBytes)
			if err != nil {
				c.reject(err)
				return
			}
			c.emit(c.head)
			c.head = c.head[:0]
			switch {
			case f.chunked:
				c.state = stChunkSize
			case f.length > 0:
				c.state, c.remaining = stBodyLength, f.length
			}
		case stBodyLength:
			// Bytes already read go out here; the rest of the body takes
			// the fast path in Read.
			b = c.passCounted(b, stHead)
		case stChunkSize, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.hold(b)
				if len(c.head) > maxChunkLine {
					c.failBody("chunk_line_too_long")
				}
				return
			}
			c.hold(b[:i+1])
			b = b[i+1:]
			line := c.head
			c.head = c.head[:0]
			if c.state == stChunkSize {
				size, ok := parseChunkSize(line)
				if !ok {
					c.failBody("bad_chunk_size")
					return
				}
				c.emit(line)
				if size == 0 {
					c.state, c.trailerN = stTrailer, 0
				} else {
					c.state, c.remaining = stChunkData, size
				}
				continue
			}
			// Trailer section: field lines, then an empty line.
			c.trailerN += len(line)
			if c.trailerN > c.g.maxHeaderBytes {
				c.failBody("trailer_too_large")
				return
			}
			c.emit(line)
			if isEmptyLine(line) {
				c.state = stHead
				continue
			}
			if !validFieldLine(trimEOL(line)) {
				c.failBody("bad_trailer_field")
				return
			}
		case stChunkData:
			b = c.passCounted(b, stChunkDataEnd)
			c.head = c.head[:0]
		case stChunkDataEnd:
			// Exactly CRLF (or a bare LF) must follow chunk data.
			c.hold(b[:1])
			b = b[1:]
			switch string(c.head) {
			case "\r":
			case "\r\n", "\n":
				c.emit(c.head)
				c.head = c.head[:0]
				c.state = stChunkSize
			default:
				c.failBody("chunk_data_overrun")
				return
			}
		}
	}
}

// passCounted emits up to c.remaining bytes of b as they are and moves to
// next when the counted part (a body or a chunk) is complete.
func (c *guardConn) passCounted(b []byte, next parseState) []byte {
	n := min(int64(len(b)), c.remaining)
	c.emit(b[:n])
	c.remaining -= n
	if c.remaining == 0 {
		c.state = next
	}
	return b[n:]
}

const maxChunkLine = 4096

func (c *guardConn) tooLarge() *FramingError {
	if i := bytes.IndexByte(c.head, '\n'); i < 0 || i > c.g.maxURIBytes {
		return &FramingError{http.StatusRequestURITooLong, "uri_too_long"}
	}
	return &FramingError{http.StatusRequestHeaderFieldsTooLarge, "header_too_large"}
}

// Buffers for held-back heads and validated bytes come from a pool and go
// back as soon as they are empty.
var guardBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (c *guardConn) emit(b []byte) {
	if c.out == nil {
		c.outp = guardBufs.Get().(*[]byte)
		c.out = (*c.outp)[:0]
	}
	c.out = append(c.out, b...)
}

func (c *guardConn) hold(b []byte) {
	if c.head == nil {
		c.headp = guardBufs.Get().(*[]byte)
		c.head = (*c.headp)[:0]
	}
	c.head = append(c.head, b...)
}

// putBuf gives b, taken from guardBufs as *p, back to the pool; the
// pointer goes back too, so a put costs no allocation.
func putBuf(b []byte, p *[]byte) {
	if p != nil && cap(b) <= 64<<10 {
		*p = b[:0]
		guardBufs.Put(p)
	}
}

func (c *guardConn) releaseOut() {
	putBuf(c.out, c.outp)
	c.out, c.outp, c.outOff = nil, nil, 0
}

func (c *guardConn) releaseHead() {
	putBuf(c.head, c.headp)
	c.head, c.headp = nil, nil
}

func (c *guardConn) reject(e *FramingError) {
	c.releaseHead()
	c.emit(c.g.poison(e))
	c.poisoned = true
}

func (c *guardConn) failBody(reason string) {
	c.releaseHead()
	c.bodyErr = &FramingError{Status: http.StatusBadRequest, Reason: reason}
}

// findHeadEnd returns the offset in b just past the blank line that ends a
// head whose first bytes are prev, or -1. A CR not followed by LF is an
// error at once (RFC 9112 2.2: bare CR must be rejected or replaced).
func findHeadEnd(prev, b []byte) (int, *FramingError) {
	// Track the last two line ends across prev and b.
	var last1, last2 byte // the two bytes before the current one (0 if none)
	if n := len(prev); n > 0 {
		last1 = prev[n-1]
		if n > 1 {
			last2 = prev[n-2]
		}
	}
	for i, ch := range b {
		if last1 == '\r' && ch != '\n' {
			return -1, &FramingError{http.StatusBadRequest, "bare_cr"}
		}
		if ch == '\n' {
			// "\n\n" or "\n\r\n" ends the head.
			if last1 == '\n' || last1 == '\r' && last2 == '\n' {
				return i + 1, nil
			}
		}
		last2, last1 = last1, ch
	}
	return -1, nil
}

// framing is what a valid head says about the body that follows.
type framing struct {
	length  int64
	chunked bool
}

// parseHead validates a complete request head (request line, fields, and
// the terminating empty line) as RFC 9112 asks of a careful server.
func parseHead(head []byte, maxURI int) (framing, *FramingError) {
	bad := func(reason string) (framing, *FramingError) {
		return framing{}, &FramingError{Status: http.StatusBadRequest, Reason: reason}
	}
	var f framing
	line, rest, _ := bytes.Cut(head, []byte{'\n'})
	line = trimEOL(line)
	if len(line) > maxURI {
		return framing{}, &FramingError{http.StatusRequestURITooLong, "uri_too_long"}
	}
	method, rl, ok1 := bytes.Cut(line, []byte{' '})
	target, version, ok2 := bytes.Cut(rl, []byte{' '})
	if !ok1 || !ok2 || !ascii.IsToken(method) || len(target) == 0 || bytes.IndexByte(version, ' ') >= 0 {
		return bad("bad_request_line")
	}
	var http10 bool
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		if len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) && version[6] == '.' &&
			isDigit(version[5]) && isDigit(version[7]) {
			return framing{}, &FramingError{http.StatusHTTPVersionNotSupported, "http_version_not_supported"}
		}
		return bad("bad_request_line")
	}
	switch string(method) {
	case "CONNECT", "TRACE", "TRACK":
		// Not a forward proxy; TRACE reflects credentials (XST).
		return framing{}, &FramingError{http.StatusMethodNotAllowed, "method_not_allowed"}
	}
	if reason := checkTarget(method, target); reason != "" {
		return bad(reason)
	}

	var (
		hosts, lengths, encodings int
		te                        []byte
		fields                    int
	)
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return bad("obs_fold")
		}
		if !validFieldLine(line) {
			return bad("bad_header_field")
		}
		if fields++; fields > maxFields {
			return framing{}, &FramingError{http.StatusRequestHeaderFieldsTooLarge, "too_many_headers"}
		}
		name, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.Trim(value, " \t")
		switch {
		case ascii.EqualFold(name, "Host"):
			hosts++
			if !validHost(value) {
				return bad("bad_host")
			}
		case ascii.EqualFold(name, "Content-Length"):
			lengths++
			n, ok := parseContentLength(value)
			if !ok {
				return bad("bad_content_length")
			}
			f.length = n
		case ascii.EqualFold(name, "Transfer-Encoding"):
			encodings++
			te = value
		case ascii.EqualFold(name, rejectHeader):
			return bad("reserved_header")
		}
	}
	switch {
	case hosts == 0 && !http10:
		return bad("missing_host")
	case hosts > 1:
		return bad("duplicate_host")
	case lengths > 1:
		return bad("duplicate_content_length")
	case encodings > 0 && http10:
		// RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
		// faulty framing.
		return bad("transfer_encoding_in_http10")
	case encodings > 0 && lengths > 0:
		// RFC 9112 6.3: the classic smuggling shape.
		return bad("content_length_with_transfer_encoding")
	case encodings > 1:
		return bad("duplicate_transfer_encoding")
	case encodings == 1:
		if !ascii.EqualFold(te, "chunked") {
			if ascii.IsToken(te) {
				return framing{}, &FramingError{http.StatusNotImplemented, "unsupported_transfer_encoding"}
			}
			return bad("bad_transfer_encoding")
		}
		f.chunked = true
		f.length = 0
	}
	return f, nil
}

const maxFields = 256

// checkTarget accepts origin-form targets ("/path?query") and "*" for
// OPTIONS. Absolute-form is for forward proxies, which gatehouse is not;
// a fragment, a raw byte outside visible ASCII, a broken %-escape, a
// backslash or a dot segment in the path are refused, because the app,
// the rate limiter and the static mounts must all see the same path.
func checkTarget(method, t []byte) string {
	if string(t) == "*" {
		if string(method) == "OPTIONS" {
			return ""
		}
		return "bad_target"
	}
	if t[0] != '/' {
		if bytes.Contains(t, []byte("://")) {
			return "absolute_form_target"
		}
		return "bad_target"
	}
	path := t
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		path = t[:i]
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		switch {
		case ch <= ' ' || ch >= 0x7f:
			return "bad_target_byte"
		case ch == '#':
			return "fragment_in_target"
		case ch == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return "bad_percent_encoding"
			}
		case ch == '\\' && i < len(path):
			return "backslash_in_path"
		}
	}
	// Dot segments, also percent-encoded ones ("%2e%2e"), and encoded NUL.
	for seg := range bytes.SplitSeq(path[1:], []byte{'/'}) {
		if isDotSegment(seg) {
			return "dot_segment"
		}
	}
	if bytes.Contains(path, []byte("%00")) {
		return "nul_in_path"
	}
	return ""
}

// isDotSegment reports whether seg is "." or "..", each dot perhaps
// percent-encoded ("%2e", "%2E"), without allocating: it runs for every
// segment of every request path.
func isDotSegment(seg []byte) bool {
	dots := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case i+2 < len(seg) && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		if dots++; dots > 2 {
			return false
		}
	}
	return dots > 0
}

func parseChunkSize(line []byte) (int64, bool) { return ascii.ParseChunkSize(trimEOL(line)) }

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// validFieldLine checks "name:value" with a token name directly followed by
// the colon (RFC 9112 5.1: no whitespace before it) and a value of visible
// characters, spaces, tabs and obs-text (RFC 9110 5.5), no other controls.
func validFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !ascii.IsToken(line[:i]) {
		return false
	}
	for _, ch := range line[i+1:] {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts a reg-name, IPv4 or [IPv6] with an optional port.
func validHost(v []byte) bool {
	if len(v) == 0 || len(v) > 255 {
		return false
	}
	for _, ch := range v {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("-._~:[]!$&'()*+,;=%", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

func isEmptyLine(line []byte) bool { return len(trimEOL(line)) == 0 }

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func isDigit(ch byte) bool { return ch >= '0' && ch <= '9' }

func isHex(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
}

// framingErrorOf returns the guard's error inside err, if any.
func framingErrorOf(err error) *FramingError {
	var fe *FramingError
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}
