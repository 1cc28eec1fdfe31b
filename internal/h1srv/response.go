package h1srv

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// pendMax is how much body a handler may write, without having set a
// Content-Length, before the head goes out: a response that ends within it
// gets an exact Content-Length instead of chunked framing (net/http
// buffers 2 KiB for the same reason).
const pendMax = 4 << 10

var pendBufs = sync.Pool{New: func() any { b := make([]byte, 0, pendMax); return &b }}

// response is the http.ResponseWriter of one request; the connection
// keeps one and resets it per request. It implements http.Flusher,
// http.Hijacker, io.ReaderFrom and the methods http.ResponseController
// looks for (FlushError, SetReadDeadline, SetWriteDeadline,
// EnableFullDuplex).
type response struct {
	c    *conn
	req  *http.Request
	body *body
	hdr  http.Header

	status      int
	wroteHeader bool // the status is fixed
	committed   bool // the status line and header are in c.out
	handlerDone bool
	chunked     bool
	isHEAD      bool
	bodyOK      bool  // the status allows a body
	cl          int64 // Content-Length to send, -1 unknown
	written     int64
	pend        []byte // body held back before the head goes out
	pendp       *[]byte
	closeAfter  bool
}

func (w *response) reset(r *http.Request, b *body) {
	if w.hdr == nil {
		w.hdr = make(http.Header, 8)
	}
	clear(w.hdr)
	*w = response{c: w.c, hdr: w.hdr, req: r, body: b, cl: -1, isHEAD: r.Method == http.MethodHead}
}

func (w *response) Header() http.Header { return w.hdr }

func (w *response) WriteHeader(code int) {
	if w.c.hijackedNow() {
		w.c.srv.logger().Warn("h1srv: WriteHeader on a hijacked connection")
		return
	}
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response (103 Early Hints) goes out at once,
		// with the header as it is now.
		c := w.c
		c.out = appendStatusLine(c.appendProto(w.req), code)
		w.appendFields(false)
		c.appendOut("\r\n")
		_ = c.flush()
		c.outMark = len(c.out)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.bodyOK = code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
	if vs := w.hdr["Content-Length"]; len(vs) > 0 {
		if n, ok := parseContentLength(vs[0]); ok {
			w.cl = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.c.hijackedNow() {
		return 0, http.ErrHijacked
	}
	if !w.bodyOK {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.cl < 0 && len(w.pend)+len(p) <= pendMax {
			// Length unknown yet: hold the bytes, the handler may finish
			// within pendMax.
			if !w.isHEAD {
				if w.pend == nil {
					w.pendp = pendBufs.Get().(*[]byte)
					w.pend = (*w.pendp)[:0]
				}
				w.pend = append(w.pend, p...)
			}
			return len(p), nil
		}
		if len(w.pend) > 0 {
			w.commit(w.pend)
			w.writeBody(w.pend)
			w.releasePend()
		} else {
			w.commit(p)
		}
	}
	if w.isHEAD {
		return len(p), nil
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString spares io.WriteString's copy: Write only copies from p or
// passes it to the socket, never keeps or changes it.
func (w *response) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (w *response) releasePend() {
	if w.pend != nil {
		pendBufs.Put(w.pendp)
		w.pend, w.pendp = nil, nil
	}
}

// writeBody appends body bytes to the output, framed as chunks when the
// response is chunked; a large write goes straight to the socket.
func (w *response) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	c := w.c
	if w.chunked {
		if c.out == nil {
			c.appendOut("")
		}
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, '\r', '\n')
	}
	if len(p) >= writeBufSize {
		// Large: no copy; what is pending (the head, say) goes with it
		// in one writev where the connection allows.
		if err := c.writeWith(p); err != nil {
			return err
		}
	} else {
		if c.out == nil {
			c.appendOut("")
		}
		c.out = append(c.out, p...)
	}
	if w.chunked {
		c.out = append(c.out, '\r', '\n')
	}
	if len(c.out) >= writeBufSize {
		return c.flush()
	}
	return nil
}

// commit decides the framing and puts the status line and header into
// the output. data is the start of the body (for Content-Type sniffing).
func (w *response) commit(data []byte) {
	c := w.c
	c.mu.Lock()
	w.committed = true
	c.mu.Unlock()
	h := w.hdr
	if c.srv.base.Closing() {
		w.closeAfter = true
	}
	if vs, ok := h["Connection"]; ok {
		for _, v := range vs {
			if hasToken(v, "close") {
				w.closeAfter = true
			}
		}
	}
	_, hasTrailer := h["Trailer"]
	forceChunked := false
	if vs, ok := h["Transfer-Encoding"]; ok {
		// The handler asked for chunking by name: done here.
		for _, v := range vs {
			if hasToken(v, "chunked") {
				forceChunked = true
			}
		}
		delete(h, "Transfer-Encoding")
		if forceChunked {
			delete(h, "Content-Length")
			w.cl = -1
		}
	}
	autoCL := false
	if w.handlerDone && w.cl < 0 && w.bodyOK && !forceChunked && !hasTrailer && (!w.isHEAD || w.written > 0) {
		w.cl = w.written
		autoCL = true
	}
	http10 := w.req.ProtoMinor == 0
	switch {
	case !w.bodyOK || w.status == http.StatusSwitchingProtocols:
	case w.isHEAD && !forceChunked:
	case w.cl >= 0 && !forceChunked:
	case !http10:
		w.chunked = true
	default:
		// HTTP/1.0 without a length: the body ends when the connection
		// does.
		w.closeAfter = true
	}
	if !w.closeAfter && w.req.Close {
		w.closeAfter = true
	}
	if b := w.body; b != nil && w.handlerDone && !w.closeAfter && !b.finished() {
		// Say now whether the rest of the body will be read away.
		b.lock()
		if b.expect || b.err != nil || !b.chunked && b.remaining > c.srv.maxDrain() {
			w.closeAfter = true
		}
		b.unlock()
	}

	c.out = appendStatusLine(c.appendProto(w.req), w.status)
	if _, ok := h["Date"]; !ok {
		c.out = appendDate(c.out, c.srv.wallNow())
	}
	if w.bodyOK && len(data) > 0 {
		if _, ok := h["Content-Type"]; !ok {
			if ce := h.Get("Content-Encoding"); ce == "" {
				c.out = append(c.out, "Content-Type: "...)
				c.out = append(c.out, http.DetectContentType(data)...)
				c.out = append(c.out, '\r', '\n')
			}
		}
	}
	w.appendFields(w.chunked || w.status == http.StatusNoContent)
	if autoCL {
		c.out = append(c.out, "Content-Length: "...)
		c.out = strconv.AppendInt(c.out, w.cl, 10)
		c.out = append(c.out, '\r', '\n')
	}
	if w.chunked {
		c.out = append(c.out, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter {
		// HTTP/1.0 closes by default; net/http says so only to 1.1.
		if _, ok := h["Connection"]; !ok && !http10 {
			c.out = append(c.out, "Connection: close\r\n"...)
		}
	} else if http10 && w.status != http.StatusSwitchingProtocols {
		c.out = append(c.out, "Connection: keep-alive\r\n"...)
	}
	c.out = append(c.out, '\r', '\n')
}

// appendFields writes the handler's header fields, skipping invalid
// names and trailers, and turning line breaks in values into spaces (a
// value must not start a field of its own).
func (w *response) appendFields(noLength bool) {
	c := w.c
	if c.out == nil {
		c.appendOut("")
	}
	for k, vs := range w.hdr {
		if !ascii.IsToken(k) {
			continue
		}
		if noLength && k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			c.out = append(c.out, k...)
			c.out = append(c.out, ':', ' ')
			c.out = appendValue(c.out, v)
			c.out = append(c.out, '\r', '\n')
		}
	}
}

func appendValue(dst []byte, v string) []byte {
	if n := len(v); n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n-1] == ' ' || v[n-1] == '\t') {
		v = ascii.TrimOWS(v)
	}
	// The common value has no line break: two vectorised scans, then one
	// copy, instead of a loop over every byte.
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		return append(dst, v...)
	}
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch == '\r' || ch == '\n' {
			for j := 0; j < len(v); j++ {
				ch := v[j]
				if ch == '\r' || ch == '\n' {
					ch = ' '
				}
				dst = append(dst, ch)
			}
			return dst
		}
	}
	return append(dst, v...)
}

// finish completes the response after the handler returned. It reports
// false when the connection failed.
func (w *response) finish() bool {
	c := w.c
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pend)
		if !w.isHEAD && w.bodyOK {
			c.out = append(c.out, w.pend...)
		}
	} else if w.chunked {
		c.out = append(c.out, '0', '\r', '\n')
		w.appendTrailers()
		c.out = append(c.out, '\r', '\n')
	}
	w.releasePend()
	if w.bodyOK && !w.isHEAD && w.cl >= 0 && w.written != w.cl {
		// Short of the declared length: the client would wait for the
		// rest, so the connection is of no further use.
		w.closeAfter = true
	}
	return !c.broken.Load()
}

func (w *response) appendTrailers() {
	c := w.c
	field := func(name string, vals []string) {
		for _, val := range vals {
			c.out = append(c.out, name...)
			c.out = append(c.out, ':', ' ')
			c.out = appendValue(c.out, val)
			c.out = append(c.out, '\r', '\n')
		}
	}
	trailerNames(w.hdr["Trailer"], func(name string) {
		name = http.CanonicalHeaderKey(name)
		field(name, w.hdr[name])
	})
	for k, vs := range w.hdr {
		if len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix {
			if name := k[len(http.TrailerPrefix):]; ascii.IsToken(name) {
				field(name, vs)
			}
		}
	}
}

// Flush sends what is buffered; a response of unknown length becomes
// chunked (close-delimited for HTTP/1.0).
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with the write error (http.ResponseController).
func (w *response) FlushError() error {
	if w.c.hijackedNow() {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pend)
		if !w.isHEAD && w.bodyOK {
			if err := w.writeBody(w.pend); err != nil {
				return err
			}
		}
		w.releasePend()
	}
	return w.c.flush()
}

// ReadFrom sends src as the body; with a known length over a plain
// socket that is sendfile(2).
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	c := w.c
	rf, ok := c.nc.(io.ReaderFrom)
	_, typed := w.hdr["Content-Type"]
	// A head already out (an earlier Write or ReadFrom) is fine as long
	// as the length is known: the rest of the body may follow by sendfile.
	if !ok || w.isHEAD || !w.bodyOK || w.cl < 0 || len(w.pend) > 0 || c.hijackedNow() || !w.committed && !typed {
		return w.copyFrom(src)
	}
	if !w.committed {
		w.commit(nil)
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	if st := c.srv.SendTimeout; st > 0 && !c.userWrite {
		// sendfile(2) runs as one call, so there is no point between
		// writes to move the deadline: give the whole file sixty send
		// timeouts (an hour by default), enough for a large file on a
		// slow link, still finite for a client that stopped reading.
		c.setWriteBy(c.srv.nowNanos() + 60*int64(st))
	}
	n, err := rf.ReadFrom(io.LimitReader(src, w.cl-w.written))
	w.written += n
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

func (w *response) copyFrom(src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type writerOnly struct{ io.Writer }

// Hijack hands the connection to the handler (a protocol upgrade). What
// the client sent beyond the request head is in the returned reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	c.mu.Lock()
	if c.hijacked {
		c.mu.Unlock()
		return nil, nil, http.ErrHijacked
	}
	c.hijacked = true
	c.mu.Unlock()
	c.stopWatch()
	if w.wroteHeader && !w.committed {
		w.commit(w.pend)
		w.releasePend()
	}
	if err := c.flush(); err != nil {
		return nil, nil, err
	}
	c.state.Store(stateHijacked)
	var br *bufio.Reader
	if c.rpos < c.rend {
		// What the client sent past the head is buffered in the reader
		// returned, as with net/http (Buffered reports it), then the
		// socket follows.
		rest := bytes.Clone(c.rbuf[c.rpos:c.rend])
		c.rpos = c.rend
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), c.nc), max(4096, len(rest)))
		_, _ = br.Peek(len(rest))
	} else {
		br = bufio.NewReader(c.nc)
	}
	c.releaseRead()
	c.releaseOut()
	rw := bufio.NewReadWriter(br, bufio.NewWriter(c.nc))
	return c.nc, rw, nil
}

// SetReadDeadline and SetWriteDeadline are what
// http.ResponseController calls.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.readDLSet = true
	var u int64
	if !t.IsZero() {
		u = max(t.UnixNano(), 1)
	}
	w.c.userReadBy.Store(u)
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline replaces SendTimeout's bound for the rest of the
// response.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.userWrite = true
	return w.c.nc.SetWriteDeadline(t)
}

// ManagesSendTimeout tells a wrapper that the server bounds every write
// with SendTimeout itself, so it need not move write deadlines per
// response.
func (w *response) ManagesSendTimeout() bool { return w.c.srv.SendTimeout > 0 }

// EnableFullDuplex is a no-op: this server never consumes the request
// body on the handler's behalf when the response starts, so reads and
// writes may always interleave.
func (w *response) EnableFullDuplex() error { return nil }

func (c *conn) hijackedNow() bool {
	return c.state.Load() == stateHijacked
}

func (c *conn) appendProto(r *http.Request) []byte {
	if c.out == nil {
		c.appendOut("")
	}
	if r.ProtoMinor == 0 {
		return append(c.out, "HTTP/1.0 "...)
	}
	return append(c.out, "HTTP/1.1 "...)
}

var statusLines = func() (t [600]string) {
	for code := 100; code < 600; code++ {
		if txt := http.StatusText(code); txt != "" {
			t[code] = strconv.Itoa(code) + " " + txt + "\r\n"
		}
	}
	return t
}()

func appendStatusLine(dst []byte, code int) []byte {
	if code < len(statusLines) && statusLines[code] != "" {
		return append(dst, statusLines[code]...)
	}
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, " status code "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	return append(dst, '\r', '\n')
}

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

type dateLine struct {
	sec  int64
	line []byte
}

var dateCache atomic.Pointer[dateLine]

// appendDate adds the Date field for now, formatted once per second.
func appendDate(dst []byte, now time.Time) []byte {
	sec := now.Unix()
	d := dateCache.Load()
	if d == nil || d.sec != sec {
		b := append([]byte("Date: "), now.UTC().Format(http.TimeFormat)...)
		d = &dateLine{sec: sec, line: append(b, '\r', '\n')}
		dateCache.Store(d)
	}
	return append(dst, d.line...)
}
