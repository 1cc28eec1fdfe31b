package h2srv

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// stream is one request and its response. Streams are pooled: the
// Request template, its Header map and URL, the body buffer and the
// ResponseWriter are reused.
type stream struct {
	c    *conn
	id   uint32
	cond sync.Cond // body reads wait here (L is c.mu)

	// Under c.mu.
	sendWindow   int64
	recvWindow   int64
	recvUnacked  int64
	recvClosed   bool  // END_STREAM received
	sendClosed   bool  // END_STREAM sent
	reset        bool  // RST_STREAM sent or received, or the connection ended
	removed      bool  // no longer in c.streams
	started      bool  // handler goroutine started
	handlerDone  bool  // handler returned
	bodyErr      error // what Read returns once bbuf is empty
	bodyClosed   bool
	bbuf         []byte // request body received, bbuf[boff:] unread
	boff         int
	declLen      int64 // request Content-Length, -1 if none
	gotLen       int64
	afterEnd     int64 // body bytes received after our END_STREAM
	expect100    bool
	rdeadline    deadline
	wdeadline    deadline
	deadlineTmrs [2]*time.Timer

	cancel context.CancelFunc
	req    http.Request // template, filled from the header block
	out    http.Request // what the handler gets: req with its context
	url    url.URL
	hdr    http.Header
	vals   []string
	body   *requestBody // nil without a body
	rw     responseWriter
}

type deadline struct {
	t   time.Time
	set bool
}

var streamPool = sync.Pool{New: func() any {
	st := &stream{hdr: make(http.Header, 8)}
	st.rw.st = st
	st.rw.hdr = make(http.Header, 8)
	return st
}}

func getStream(c *conn, id uint32) *stream {
	st := streamPool.Get().(*stream)
	st.c = c
	st.id = id
	st.cond.L = &c.mu
	st.recvWindow = streamWindow
	st.declLen = -1
	return st
}

func putStream(st *stream) {
	for i, t := range st.deadlineTmrs {
		if t != nil {
			t.Stop()
			st.deadlineTmrs[i] = nil
		}
	}
	if cap(st.bbuf) > 64<<10 {
		st.bbuf = nil
	}
	hdr, rwhdr, vals, bbuf := st.hdr, st.rw.hdr, st.vals, st.bbuf
	clear(hdr)
	clear(rwhdr)
	clear(vals)
	wbuf := st.rw.buf
	*st = stream{hdr: hdr, vals: vals[:0], bbuf: bbuf[:0]}
	st.rw.st = st
	st.rw.hdr = rwhdr
	if wbuf != nil {
		st.rw.buf = wbuf[:0]
	}
	streamPool.Put(st)
}

// resetLocked marks st reset: its context is canceled, a body read and a
// response write in progress return.
func (st *stream) resetLocked() {
	if st.reset {
		return
	}
	st.reset = true
	if st.cancel != nil {
		st.cancel()
	}
	st.cond.Broadcast()
	st.c.cond.Broadcast()
}

// buildRequest validates the request header fields (RFC 9113, section
// 8.3) and fills st's Request; a malformed request gets its stream reset
// with the code returned.
func (st *stream) buildRequest(fields []hpack.HeaderField, endStream bool) ErrCode {
	c := st.c
	var method, scheme, path, authority string
	var cookies []string
	regular := false
	h := st.hdr
	for _, f := range fields {
		name := f.Name
		if name == "" {
			return ErrCodeProtocol
		}
		if name[0] == ':' {
			if regular {
				return ErrCodeProtocol
			}
			var dst *string
			switch name {
			case ":method":
				dst = &method
			case ":scheme":
				dst = &scheme
			case ":path":
				dst = &path
			case ":authority":
				dst = &authority
			default:
				return ErrCodeProtocol
			}
			if *dst != "" || f.Value == "" && name != ":authority" {
				return ErrCodeProtocol
			}
			*dst = f.Value
			continue
		}
		regular = true
		if !validFieldName(name) || !validFieldValue(f.Value) {
			return ErrCodeProtocol
		}
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return ErrCodeProtocol
		case "te":
			if f.Value != "trailers" {
				return ErrCodeProtocol
			}
		case "cookie":
			// Split crumbs are joined back into one field (section 8.2.3).
			cookies = append(cookies, f.Value)
			continue
		case "content-length":
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err != nil || n < 0 || f.Value[0] == '+' || st.declLen >= 0 && st.declLen != n {
				return ErrCodeProtocol
			}
			st.declLen = n
		}
		k := c.canonicalKey(name)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, f.Value)
			continue
		}
		st.vals = append(st.vals, f.Value)
		n := len(st.vals)
		h[k] = st.vals[n-1 : n : n]
	}
	if len(cookies) > 0 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if method == "" {
		return ErrCodeProtocol
	}
	if endStream && st.declLen > 0 {
		return ErrCodeProtocol
	}
	r := &st.req
	*r = http.Request{
		Method:     method,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     h,
		Host:       authority,
		RemoteAddr: c.remoteAddr,
		TLS:        c.tlsState,
	}
	if method == http.MethodConnect {
		if scheme != "" || path != "" || authority == "" {
			return ErrCodeProtocol
		}
		st.url = url.URL{Host: authority}
		r.RequestURI = authority
	} else {
		if scheme == "" || path == "" {
			return ErrCodeProtocol
		}
		if !parsePath(&st.url, path, method) {
			return ErrCodeProtocol
		}
		r.RequestURI = path
	}
	r.URL = &st.url
	if r.Host == "" {
		r.Host = h.Get("Host")
	}
	if endStream {
		r.Body = http.NoBody
	} else {
		st.body = &requestBody{c: c, st: st}
		r.Body = st.body
		r.ContentLength = st.declLen
		if st.declLen < 0 {
			r.ContentLength = -1
		}
		if vv := h["Expect"]; len(vv) == 1 && ascii.EqualFold(vv[0], "100-continue") {
			st.expect100 = true
		}
		if vv := h["Trailer"]; len(vv) > 0 {
			r.Trailer = make(http.Header)
			for _, v := range vv {
				for k := range strings.SplitSeq(v, ",") {
					k = http.CanonicalHeaderKey(strings.TrimSpace(k))
					switch k {
					case "", "Transfer-Encoding", "Trailer", "Content-Length":
						continue
					}
					r.Trailer[k] = nil
				}
			}
		}
	}
	var ctx context.Context
	ctx, st.cancel = context.WithCancel(c.ctx)
	// The handler's Request is the pooled one, with the context set by
	// copying WithContext's result over it: no Request allocated per
	// stream (the copy WithContext makes stays on the stack).
	st.out = *r.WithContext(ctx)
	st.rw.reset(&st.out)
	return ErrCodeNo
}

// parsePath fills u from a request's :path without allocating in the
// usual case (an origin-form path without escapes).
func parsePath(u *url.URL, path, method string) bool {
	if path == "*" {
		if method != http.MethodOptions {
			return false
		}
		*u = url.URL{Path: "*"}
		return true
	}
	if path[0] != '/' {
		return false
	}
	plain := true
	q := -1
	for i := 0; i < len(path); i++ {
		switch b := path[i]; {
		case b == '?' && q < 0:
			q = i
		case b == '%' && q < 0, b == '#', b <= ' ', b >= 0x7f:
			plain = false
		}
	}
	if plain {
		if q < 0 {
			*u = url.URL{Path: path}
		} else {
			*u = url.URL{Path: path[:q], RawQuery: path[q+1:], ForceQuery: q == len(path)-1}
		}
		return true
	}
	pu, err := url.ParseRequestURI(path)
	if err != nil {
		return false
	}
	*u = *pu
	return true
}

// validFieldName: a token without uppercase letters (section 8.2.1).
func validFieldName(s string) bool {
	if !ascii.IsToken(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// validFieldValue: no NUL, CR, LF or other controls but HTAB.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// requestBody is a stream's request body: the bytes the read loop
// buffered, handed out as the handler reads, with flow-control credit
// returned as they are consumed. It is the one per-request object that is
// not pooled: a body is often read by a goroutine of the handler's (a
// transport copying it upstream) that may still be inside Read when the
// handler returns. Then the body is done: the read returns an error and
// never touches the stream again, which by then may serve another request.
type requestBody struct {
	c    *conn
	st   *stream
	done bool // under c.mu: the handler returned
}

func (b *requestBody) Read(p []byte) (int, error) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.done {
		return 0, errBodyClosed
	}
	st := b.st
	if st.bodyClosed {
		return 0, errBodyClosed
	}
	if st.expect100 {
		st.expect100 = false
		if !st.reset && !st.recvClosed && !st.rw.sentHeader && !c.closing {
			start := c.beginHeadersLocked(st.id, 0)
			c.wbuf = appendStatus(c.wbuf, 100)
			c.endHeadersLocked(start)
			c.wakeWriter()
		}
	}
	for st.boff == len(st.bbuf) {
		if st.bodyErr != nil {
			return 0, st.bodyErr
		}
		if st.rdeadline.set && !time.Now().Before(st.rdeadline.t) {
			return 0, os.ErrDeadlineExceeded
		}
		if len(p) == 0 {
			return 0, nil
		}
		st.armLocked(0)
		st.cond.Wait()
		if b.done || st.bodyClosed {
			return 0, errBodyClosed
		}
	}
	n := copy(p, st.bbuf[st.boff:])
	st.boff += n
	if st.boff == len(st.bbuf) {
		st.bbuf, st.boff = st.bbuf[:0], 0
	}
	c.creditLocked(st, int64(n))
	return n, nil
}

// Close discards what is buffered and ends reads in progress.
func (b *requestBody) Close() error {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.done || b.st.bodyClosed {
		return nil
	}
	st := b.st
	st.bodyClosed = true
	if n := len(st.bbuf) - st.boff; n > 0 {
		c.creditLocked(st, int64(n))
		st.bbuf, st.boff = st.bbuf[:0], 0
	}
	st.cond.Broadcast()
	return nil
}

var _ io.ReadCloser = (*requestBody)(nil)
