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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
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

// wsgiTransport speaks the framed protocol to one shim process over its
// Unix socket, keeping up to maxIdle connections open between requests.
type wsgiTransport struct {
	path    string
	maxIdle int

	mu   sync.Mutex
	idle []*wsgiConn
}

type wsgiConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// scratch is reused for the environ and the response head, which
	// are copied out before the next request on this connection.
	scratch []byte
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
	return &wsgiConn{c: c, br: bufio.NewReaderSize(c, 64<<10), bw: bufio.NewWriterSize(c, 64<<10)}, nil
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
	ctx := r.Context()
	wc, err := t.get(ctx)
	if err != nil {
		closeBody(r)
		return nil, err
	}
	// Cancelling the request (client gone, timeout) closes the connection,
	// which unblocks every read and write on it.
	stop := context.AfterFunc(ctx, func() { wc.c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		wc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	typ, env := encodeEnviron(wc.scratch[:0], r)
	wc.scratch = env
	if err := writeFrame(wc.bw, typ, env); err != nil {
		closeBody(r)
		return fail(err)
	}
	bodyDone := make(chan error, 1)
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
	if noBody {
		bodyDone <- nil
	} else {
		// The body goes on its own goroutine so that an app answering
		// before reading all of it cannot deadlock the exchange.
		go func() { bodyDone <- writeBody(wc.bw, r.Body) }()
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
	resp.Body = &wsgiBody{t: t, wc: wc, stop: stop, bodyDone: bodyDone, ctx: ctx}
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
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	bw.Write(h[:])
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
	var h [5]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, 0, unexpected(err)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, 0, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	return h[0], int(n), nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendPair encodes one key/value pair: uint16 key length, key, uint32
// value length, value.
func appendPair(b []byte, k, v string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
	b = append(b, k...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// decodePairs is appendPair's inverse; it rejects anything malformed.
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
// (bad names, control characters in values).
func parseHead(p []byte) (*http.Response, error) {
	resp := &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: -1}
	next := func() ([]byte, bool) {
		if p == nil {
			return nil, false
		}
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			f := p
			p = nil
			return f, true
		}
		f := p[:i]
		p = p[i+1:]
		return f, true
	}
	k, ok1 := next()
	v, ok2 := next()
	if !ok1 || !ok2 || string(k) != ":status" || len(v) < 3 {
		return nil, fmt.Errorf("%w: head without status", errProtocol)
	}
	code, err := strconv.Atoi(string(v[:3]))
	if err != nil || code < 100 || code > 999 || len(v) > 3 && v[3] != ' ' || !validHeaderValue(v) {
		return nil, fmt.Errorf("%w: bad status %q", errProtocol, v)
	}
	resp.StatusCode, resp.Status = code, string(v)
	for p != nil {
		k, _ := next()
		v, ok := next()
		if !ok {
			return nil, fmt.Errorf("%w: header %q without value", errProtocol, k)
		}
		if !validHeaderName(k) || !validHeaderValue(v) {
			return nil, fmt.Errorf("%w: invalid header %q", errProtocol, k)
		}
		resp.Header.Add(string(k), string(v))
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: bad Content-Length %q", errProtocol, cl)
		}
		resp.ContentLength = n
	}
	return resp, nil
}

func validHeaderName(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		// RFC 9110 token characters.
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
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
	stop     func() bool
	bodyDone chan error
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
	if b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	b.err = err
	b.finish(false)
}

func (b *wsgiBody) Close() error {
	b.finish(false)
	return nil
}

func (b *wsgiBody) finish(reuse bool) {
	b.once.Do(func() {
		if !b.stop() {
			reuse = false // the context ended: the connection is closed already
		}
		if reuse {
			select {
			case err := <-b.bodyDone:
				reuse = err == nil
			case <-time.After(time.Second):
				reuse = false
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
		return frameRequestQ, appendEnviron(b, r, appendNul)
	}
	return frameRequest, appendEnviron(b, r, appendPair)
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

// appendNul appends "k\0v", with a separating NUL before it unless b is empty.
func appendNul(b []byte, k, v string) []byte {
	if len(b) > 0 {
		b = append(b, 0)
	}
	b = append(b, k...)
	b = append(b, 0)
	return append(b, v...)
}

// appendEnviron encodes the PEP 3333 environ of r: CGI variables from the
// request, REMOTE_ADDR and wsgi.url_scheme from what the front learned
// (reqinfo), so the app needs no proxy-header trust of its own.
//
// add appends one key and value: appendPair (frame R) or appendNul (frame Q).
func appendEnviron(b []byte, r *http.Request, add func(b []byte, k, v string) []byte) []byte {
	info := reqinfo.From(r.Context())
	scheme := "http"
	remote := ""
	if info != nil {
		if info.TLS {
			scheme = "https"
		}
		if info.ClientIP.IsValid() {
			remote = info.ClientIP.Unmap().String()
		}
	}
	if remote == "" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			remote = ap.Addr().Unmap().String()
		} else {
			remote = "127.0.0.1"
		}
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
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
	b = add(b, "REQUEST_METHOD", r.Method)
	b = add(b, "SCRIPT_NAME", "")
	b = add(b, "PATH_INFO", path)
	b = add(b, "QUERY_STRING", r.URL.RawQuery)
	b = add(b, "RAW_URI", r.URL.RequestURI())
	b = add(b, "SERVER_NAME", name)
	b = add(b, "SERVER_PORT", port)
	b = add(b, "SERVER_PROTOCOL", protoOf(r))
	b = add(b, "REMOTE_ADDR", remote)
	b = add(b, "wsgi.url_scheme", scheme)
	if host != "" {
		b = add(b, "HTTP_HOST", host)
	}
	if r.ContentLength > 0 || r.ContentLength == 0 && r.Body != nil && r.Body != http.NoBody {
		b = add(b, "CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	var key []byte
	for k, vs := range r.Header {
		switch k {
		case "Host":
			continue
		case "Content-Length":
			continue // from r.ContentLength, which the front verified
		case "Content-Type":
			b = add(b, "CONTENT_TYPE", vs[0])
			continue
		}
		// A name with "_" would collide with its "-" twin once mapped
		// to HTTP_*, letting a client smuggle e.g. X_Forwarded_For past
		// the front's cleaning; drop it, as nginx and gunicorn do.
		if strings.IndexByte(k, '_') >= 0 {
			continue
		}
		key = append(key[:0], "HTTP_"...)
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
		sep := ", "
		if k == "Cookie" {
			sep = "; "
		}
		b = add(b, string(key), strings.Join(vs, sep))
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
