package workers

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
	"github.com/gatehouse/gatehouse/internal/watchdog"
)

// shimSource is the Python side of app.wsgi, written to the pool's private
// runtime dir and run by app.python. Its docstring describes the protocol.
//
//go:embed gatehouse_wsgi.py
var shimSource []byte

// Frame types of the gatehouse <-> shim protocol. A frame is the type byte,
// a big-endian uint32 payload length and the payload.
const (
	frameRequest  = 'R' // environ as length-prefixed pairs (when a value holds a NUL)
	frameRequestQ = 'Q' // environ as NUL-separated keys and values (the usual form)
	frameBody     = 'B' // a request body chunk
	frameBodyEnd  = 'E' // end of the request body
	frameHead     = 'H' // ":status", status, then header names and values, NUL-separated
	frameData     = 'D' // a response body chunk
	frameFinish   = 'F' // response complete; the connection is reusable
	frameAbort    = 'X' // the app failed after the head was sent
	maxFrame      = 1 << 20
	bodyChunkSize = 64 << 10
)

var errProtocol = errors.New("workers: WSGI shim protocol error")

// noBodyDone is the bodyDone of every request without a body: closed, so
// it reads as "written, no error" at once, and allocated once.
var noBodyDone = func() chan error { ch := make(chan error); close(ch); return ch }()

// wsgiTransport speaks the framed protocol to one shim process over its
// Unix socket, keeping up to maxIdle connections open between requests.
type wsgiTransport struct {
	path    string
	maxIdle int

	mu   sync.Mutex
	idle []*wsgiConn

	// dog closes the connection of an exchange whose request context is
	// done or whose timeout passed.
	dog watchdog.Dog
}

type wsgiConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// scratch is reused for the environ and the response head, which
	// are copied out before the next request on this connection.
	scratch []byte
	watch   watchdog.Entry
}

func newWSGITransport(path string, threads int) *wsgiTransport {
	return &wsgiTransport{path: path, maxIdle: threads}
}

// CloseIdleConnections closes the kept-alive connections.
func (t *wsgiTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, wc := range idle {
		wc.c.Close()
	}
}

func (t *wsgiTransport) get(ctx context.Context) (*wsgiConn, error) {
	t.mu.Lock()
	if n := len(t.idle); n > 0 {
		wc := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return wc, nil
	}
	t.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", t.path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &dialError{err}
	}
	wc := &wsgiConn{c: c, br: bufio.NewReaderSize(c, 64<<10), bw: bufio.NewWriterSize(c, 64<<10)}
	wc.watch.Abort = func() { c.Close() }
	return wc, nil
}

func (t *wsgiTransport) put(wc *wsgiConn) {
	t.mu.Lock()
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, wc)
		wc = nil
	}
	t.mu.Unlock()
	if wc != nil {
		wc.c.Close()
	}
}

// RoundTrip sends r to the shim and returns as soon as the response head
// arrives; the body streams from the connection as the shim writes it.
func (t *wsgiTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.RoundTripTimeout(r, 0)
}

// RoundTripTimeout is RoundTrip bounded by timeout (zero: none) until the
// caller calls StopTimeout on the body; an exchange cut by it fails with
// an error that wraps watchdog.ErrDeadline.
func (t *wsgiTransport) RoundTripTimeout(r *http.Request, timeout time.Duration) (*http.Response, error) {
	ctx := r.Context()
	wc, err := t.get(ctx)
	if err != nil {
		closeBody(r)
		return nil, err
	}
	// The client leaving or the timeout passing closes the connection,
	// which unblocks every read and write on it.
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	t.dog.Watch(&wc.watch, ctx, deadline)
	fail := func(err error) (*http.Response, error) {
		t.dog.Release(&wc.watch)
		wc.c.Close()
		return nil, wc.watch.Err(ctx, err)
	}
	typ, env := encodeEnviron(wc.scratch[:0], r)
	wc.scratch = env
	if err := writeFrame(wc.bw, typ, env); err != nil {
		closeBody(r)
		return fail(err)
	}
	noBody := r.Body == nil || r.Body == http.NoBody
	if noBody {
		writeFrame(wc.bw, frameBodyEnd, nil)
	}
	if err := wc.bw.Flush(); err != nil {
		// The shim is gone (a kept-alive connection to a worker that just
		// died): it cannot have acted on a request it never fully got, so
		// the pool may try another worker.
		closeBody(r)
		return fail(&dialError{err})
	}
	bodyDone := noBodyDone
	if !noBody {
		// The body goes on its own goroutine so that an app answering
		// before reading all of it cannot deadlock the exchange.
		ch := make(chan error, 1)
		go func() { ch <- writeBody(wc.bw, r.Body) }()
		bodyDone = ch
	}
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	typ, payload, err := readFrameInto(wc.br, wc.scratch[:0])
	if err != nil {
		return fail(fmt.Errorf("reading response head: %w", err))
	}
	wc.scratch = payload
	if typ != frameHead {
		return fail(fmt.Errorf("%w: response starts with frame %q", errProtocol, typ))
	}
	resp, err := parseHead(payload)
	if err != nil {
		return fail(err)
	}
	resp.Request = r
	resp.Body = &wsgiBody{t: t, wc: wc, bodyDone: bodyDone, ctx: ctx}
	if r.Method == http.MethodHead {
		resp.ContentLength = -1
		if cl, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
			resp.ContentLength = cl
		}
	}
	return resp, nil
}

func writeBody(bw *bufio.Writer, body io.ReadCloser) error {
	defer body.Close()
	buf := make([]byte, bodyChunkSize)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if werr := writeFrame(bw, frameBody, buf[:n]); werr != nil {
				return werr
			}
			if werr := bw.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading request body: %w", err)
		}
	}
	if err := writeFrame(bw, frameBodyEnd, nil); err != nil {
		return err
	}
	return bw.Flush()
}

func writeFrame(bw *bufio.Writer, typ byte, payload []byte) error {
	n := uint32(len(payload))
	bw.WriteByte(typ)
	bw.WriteByte(byte(n >> 24))
	bw.WriteByte(byte(n >> 16))
	bw.WriteByte(byte(n >> 8))
	bw.WriteByte(byte(n))
	_, err := bw.Write(payload)
	return err
}

// readFrame reads one frame whole. Only head frames are read this way;
// data frames stream through wsgiBody.
func readFrame(br *bufio.Reader) (byte, []byte, error) {
	return readFrameInto(br, nil)
}

// readFrameInto is readFrame reading into buf's storage when it is large
// enough.
func readFrameInto(br *bufio.Reader, buf []byte) (byte, []byte, error) {
	typ, n, err := readFrameHeader(br)
	if err != nil {
		return 0, nil, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	p := buf[:n]
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, nil, unexpected(err)
	}
	return typ, p, nil
}

func readFrameHeader(br *bufio.Reader) (byte, int, error) {
	h, err := br.Peek(5)
	if err != nil {
		return 0, 0, unexpected(err)
	}
	typ, n := h[0], binary.BigEndian.Uint32(h[1:])
	br.Discard(5)
	if n > maxFrame {
		return 0, 0, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	return typ, int(n), nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodePairs reads frame R's pairs (addEnv with pairs: uint16 key length,
// key, uint32 value length, value); it rejects anything malformed.
func decodePairs(p []byte, fn func(k, v []byte) error) error {
	for len(p) > 0 {
		if len(p) < 2 {
			return fmt.Errorf("%w: truncated pair", errProtocol)
		}
		kl := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if len(p) < kl+4 {
			return fmt.Errorf("%w: truncated pair", errProtocol)
		}
		k := p[:kl]
		vl := binary.BigEndian.Uint32(p[kl:])
		p = p[kl+4:]
		if uint64(len(p)) < uint64(vl) {
			return fmt.Errorf("%w: truncated pair", errProtocol)
		}
		if err := fn(k, p[:vl]); err != nil {
			return err
		}
		p = p[vl:]
	}
	return nil
}

// parseHead turns an H frame (NUL-separated ":status", status, then names
// and values) into a response, refusing what would be unsafe to pass on
// (bad names, control characters in values). The head becomes one string
// that the status, names and values are slices of, and the values share
// one backing array: a handful of allocations whatever the header count.
func parseHead(p []byte) (*http.Response, error) {
	fields := bytes.Count(p, []byte{0}) + 1
	if fields < 2 || fields%2 != 0 {
		if fields < 2 {
			return nil, fmt.Errorf("%w: head without status", errProtocol)
		}
		return nil, fmt.Errorf("%w: header without value", errProtocol)
	}
	h := string(p)
	next := func() string {
		i := strings.IndexByte(h, 0)
		if i < 0 {
			f := h
			h = ""
			return f
		}
		f := h[:i]
		h = h[i+1:]
		return f
	}
	if next() != ":status" {
		return nil, fmt.Errorf("%w: head without status", errProtocol)
	}
	status := next()
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' || !validHeaderValue(status) {
		return nil, fmt.Errorf("%w: bad status %q", errProtocol, status)
	}
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: bad status %q", errProtocol, status)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return nil, fmt.Errorf("%w: bad status %q", errProtocol, status)
	}
	n := fields/2 - 1
	header := make(http.Header, n)
	values := make([]string, n)
	for i := range n {
		k, v := next(), next()
		if !validHeaderName(k) || !validHeaderValue(v) {
			return nil, fmt.Errorf("%w: invalid header %q", errProtocol, k)
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		if vs, ok := header[k]; ok {
			header[k] = append(vs, v)
			continue
		}
		values[i] = v
		header[k] = values[i : i+1 : i+1]
	}
	resp := &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, StatusCode: code, Status: status, Header: header, ContentLength: -1}
	if vs := header["Content-Length"]; len(vs) > 0 {
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 || len(vs) > 1 && !allEqual(vs) {
			return nil, fmt.Errorf("%w: bad Content-Length %q", errProtocol, vs)
		}
		resp.ContentLength = n
	}
	return resp, nil
}

func allEqual(vs []string) bool {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	return true
}

// validHeaderName: a header name is an RFC 9110 token.
func validHeaderName(k string) bool { return ascii.IsToken(k) }

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// wsgiBody streams D frames to the reader. At F the connection goes back
// to the idle list (once the request body is fully written); on anything
// else, or an early Close, it is closed.
type wsgiBody struct {
	t        *wsgiTransport
	wc       *wsgiConn
	ctx      context.Context
	bodyDone <-chan error
	left     int // unread bytes of the current D frame
	err      error
	once     sync.Once
}

func (b *wsgiBody) Read(p []byte) (int, error) {
	for b.left == 0 && b.err == nil {
		typ, n, err := readFrameHeader(b.wc.br)
		switch {
		case err != nil:
			b.fail(err)
		case typ == frameData:
			b.left = n
		case typ == frameFinish && n == 0:
			b.err = io.EOF
			b.finish(true)
		case typ == frameAbort:
			msg := make([]byte, n)
			io.ReadFull(b.wc.br, msg)
			b.fail(fmt.Errorf("workers: app failed mid-response: %s", msg))
		default:
			b.fail(fmt.Errorf("%w: unexpected frame %q in response body", errProtocol, typ))
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.wc.br.Read(p)
	b.left -= n
	if err != nil {
		b.fail(unexpected(err))
		return n, b.err
	}
	return n, nil
}

func (b *wsgiBody) fail(err error) {
	b.err = b.wc.watch.Err(b.ctx, err)
	b.finish(false)
}

// StopTimeout lifts the exchange's timeout from the rest of the body.
func (b *wsgiBody) StopTimeout() { b.wc.watch.ClearDeadline() }

func (b *wsgiBody) Close() error {
	b.finish(false)
	return nil
}

func (b *wsgiBody) finish(reuse bool) {
	b.once.Do(func() {
		if b.t.dog.Release(&b.wc.watch) != watchdog.None {
			reuse = false // cut by the watchdog: the connection is closed already
		}
		if reuse {
			select {
			case err := <-b.bodyDone:
				reuse = err == nil
			default:
				// The request body is still being written (the app
				// answered without reading it all): wait a little.
				t := time.NewTimer(time.Second)
				select {
				case err := <-b.bodyDone:
					reuse = err == nil
				case <-t.C:
					reuse = false
				}
				t.Stop()
			}
		}
		if reuse {
			b.t.put(b.wc)
		} else {
			b.wc.c.Close()
		}
	})
}

// encodeEnviron returns the request frame for r: NUL-separated (one split
// in Python, the usual case) unless some value holds a NUL byte (a %00 in
// the path), when it falls back to length-prefixed pairs.
func encodeEnviron(b []byte, r *http.Request) (byte, []byte) {
	if strings.IndexByte(r.URL.Path, 0) < 0 && strings.IndexByte(r.Host, 0) < 0 && !headerHasNul(r.Header) {
		return frameRequestQ, appendEnviron(b, r, false)
	}
	return frameRequest, appendEnviron(b, r, true)
}

func headerHasNul(h http.Header) bool {
	for k, vs := range h {
		if strings.IndexByte(k, 0) >= 0 {
			return true
		}
		for _, v := range vs {
			if strings.IndexByte(v, 0) >= 0 {
				return true
			}
		}
	}
	return false
}

// addEnv appends one key and value: with pairs, as a uint16 key length,
// the key, a uint32 value length and the value (frame R); else as "k\0v", with a separating NUL before it unless b is empty
// (frame Q). Keys and values may be strings or byte slices, so that keys
// built in a scratch buffer need no string of their own.
func addEnv[K, V ~string | ~[]byte](b []byte, pairs bool, k K, v V) []byte {
	if pairs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...)
	}
	if len(b) > 0 {
		b = append(b, 0)
	}
	b = append(b, k...)
	b = append(b, 0)
	return append(b, v...)
}

// appendNul appends "k\0v", with a separating NUL before it unless b is empty.
func appendNul(b []byte, k, v string) []byte { return addEnv(b, false, k, v) }

// appendEnviron encodes the PEP 3333 environ of r: CGI variables from the
// request, REMOTE_ADDR and wsgi.url_scheme from what the front learned
// (reqinfo), so the app needs no proxy-header trust of its own. With
// pairs it is frame R's encoding, else frame Q's. It allocates nothing
// beyond growing b, which the caller keeps for the next request.
func appendEnviron(b []byte, r *http.Request, pairs bool) []byte {
	info := reqinfo.From(r.Context())
	scheme := "http"
	var ipBuf [64]byte
	remote := ipBuf[:0]
	if info != nil {
		if info.TLS {
			scheme = "https"
		}
		if info.ClientIP.IsValid() {
			remote = info.ClientIP.Unmap().AppendTo(remote)
		}
	}
	if len(remote) == 0 {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			remote = ap.Addr().Unmap().AppendTo(remote)
		} else {
			remote = append(remote, "127.0.0.1"...)
		}
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	name, port := host, ""
	if strings.IndexByte(host, ':') >= 0 {
		if h, p, err := net.SplitHostPort(host); err == nil {
			name, port = h, p
		}
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	b = addEnv(b, pairs, "REQUEST_METHOD", r.Method)
	b = addEnv(b, pairs, "SCRIPT_NAME", "")
	b = addEnv(b, pairs, "PATH_INFO", path)
	b = addEnv(b, pairs, "QUERY_STRING", r.URL.RawQuery)
	b = addEnv(b, pairs, "RAW_URI", r.URL.RequestURI())
	b = addEnv(b, pairs, "SERVER_NAME", name)
	b = addEnv(b, pairs, "SERVER_PORT", port)
	b = addEnv(b, pairs, "SERVER_PROTOCOL", protoOf(r))
	b = addEnv(b, pairs, "REMOTE_ADDR", remote)
	b = addEnv(b, pairs, "wsgi.url_scheme", scheme)
	if host != "" {
		b = addEnv(b, pairs, "HTTP_HOST", host)
	}
	var num [24]byte
	if r.ContentLength > 0 || r.ContentLength == 0 && r.Body != nil && r.Body != http.NoBody {
		b = addEnv(b, pairs, "CONTENT_LENGTH", strconv.AppendInt(num[:0], r.ContentLength, 10))
	}
	if info != nil && !info.Start.IsZero() && r.Header.Get("X-Request-Start") == "" {
		// For APM tools (New Relic, Datadog, Scout): queue time as seen by
		// the app is its own start minus this. (Pool.RoundTrip adds the
		// header for other backends; here it goes straight in.)
		b = addEnv(b, pairs, "HTTP_X_REQUEST_START", strconv.AppendInt(append(num[:0], "t="...), info.Start.UnixMicro(), 10))
	}
	var keyBuf [64]byte
	for k, vs := range r.Header {
		switch k {
		case "Host":
			continue
		case "Content-Length":
			continue // from r.ContentLength, which the front verified
		case "Content-Type":
			b = addEnv(b, pairs, "CONTENT_TYPE", vs[0])
			continue
		}
		// A name with "_" would collide with its "-" twin once mapped
		// to HTTP_*, letting a client smuggle e.g. X_Forwarded_For past
		// the front's cleaning; drop it, as nginx and gunicorn do.
		if strings.IndexByte(k, '_') >= 0 {
			continue
		}
		key := append(keyBuf[:0], "HTTP_"...)
		for i := 0; i < len(k); i++ {
			c := k[i]
			switch {
			case c == '-':
				c = '_'
			case c >= 'a' && c <= 'z':
				c -= 'a' - 'A'
			}
			key = append(key, c)
		}
		if len(vs) == 1 {
			b = addEnv(b, pairs, key, vs[0])
			continue
		}
		sep := ", "
		if k == "Cookie" {
			sep = "; "
		}
		b = addEnv(b, pairs, key, strings.Join(vs, sep))
	}
	return b
}

func protoOf(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2.0"
	}
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}
