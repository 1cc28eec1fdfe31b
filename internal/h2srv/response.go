package h2srv

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bufMax is how much body a handler may write before the response goes
// out: a response that ends within it gets an exact Content-Length and
// leaves in one piece with its HEADERS.
const bufMax = 8 << 10

// responseWriter is the http.ResponseWriter of one stream. It implements
// http.Flusher, io.ReaderFrom and the methods http.ResponseController
// looks for (FlushError, SetReadDeadline, SetWriteDeadline,
// EnableFullDuplex).
type responseWriter struct {
	st  *stream
	req *http.Request
	hdr http.Header

	status      int
	wroteHeader bool // the status is fixed
	sentHeader  bool // HEADERS went out (under c.mu)
	isHEAD      bool
	bodyOK      bool  // the status allows a body
	cl          int64 // Content-Length the handler set, -1 if none
	written     int64
	buf         []byte // body not yet sent
	err         error
}

func (w *responseWriter) reset(r *http.Request) {
	w.req = r
	w.status = 0
	w.wroteHeader, w.sentHeader = false, false
	w.isHEAD = r.Method == http.MethodHead
	w.cl = -1
	w.written = 0
	w.err = nil
}

func (w *responseWriter) Header() http.Header { return w.hdr }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		if code == http.StatusSwitchingProtocols {
			return // no upgrades in HTTP/2
		}
		// An informational response (103 Early Hints) goes out at once,
		// with the header as it is now.
		c := w.st.c
		c.mu.Lock()
		if !w.st.reset && !c.closing {
			start := c.beginHeadersLocked(w.st.id, 0)
			c.wbuf = appendStatus(c.wbuf, code)
			w.writeFieldsLocked(false)
			c.endHeadersLocked(start)
			c.wakeWriter()
		}
		c.mu.Unlock()
		return
	}
	w.wroteHeader = true
	w.status = code
	w.bodyOK = bodyAllowed(code)
	w.cl = w.declaredLength()
}

// declaredLength is the Content-Length the handler set, or -1 for none
// (or one that is not a number, which is not sent).
func (w *responseWriter) declaredLength() int64 {
	v := w.hdr["Content-Length"]
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyOK {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if w.isHEAD {
		return len(p), nil
	}
	if w.buf == nil {
		// Kept with the pooled stream from then on.
		w.buf = make([]byte, 0, bufMax)
	}
	if len(w.buf)+len(p) <= bufMax {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.send(p, false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *responseWriter) WriteString(s string) (int, error) {
	if w.buf != nil && len(w.buf)+len(s) <= bufMax && w.wroteHeader && w.bodyOK && !w.isHEAD && w.err == nil &&
		(w.cl < 0 || w.written+int64(len(s)) <= w.cl) {
		w.written += int64(len(s))
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// ReadFrom copies src into the response through the stream's own buffer:
// io.Copy would allocate 32 KiB per response (there is no sendfile in
// HTTP/2; the bytes are framed and encrypted anyway).
func (w *responseWriter) ReadFrom(src io.Reader) (n int64, err error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyOK || w.isHEAD || w.err != nil {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, bufMax)
	}
	for {
		if len(w.buf) == cap(w.buf) {
			if err := w.send(nil, false, false); err != nil {
				return n, err
			}
		}
		m, rerr := src.Read(w.buf[len(w.buf):cap(w.buf)])
		if m > 0 {
			if w.cl >= 0 && w.written+int64(m) > w.cl {
				return n, http.ErrContentLength
			}
			w.written += int64(m)
			w.buf = w.buf[:len(w.buf)+m]
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// send puts out the HEADERS if not yet sent, the buffered body and p;
// final means the handler returned.
func (w *responseWriter) send(p []byte, final, flush bool) error {
	st := w.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reset || c.closing {
		w.dropBuf()
		if st.reset {
			w.err = errStreamReset
		} else {
			w.err = errConnClosed
		}
		return w.err
	}
	var trailers bool
	if final {
		trailers = w.hasTrailers()
	}
	if !w.sentHeader {
		// A Content-Length set after WriteHeader still counts; it is sent
		// once, and a response that falls short of it is reset, not
		// passed off as complete.
		w.cl = w.declaredLength()
		if final && w.cl >= 0 && w.bodyOK && !w.isHEAD && w.written != w.cl {
			w.dropBuf()
			c.resetLocked(st.id, ErrCodeInternal)
			c.wakeWriter()
			w.err = http.ErrContentLength
			return w.err
		}
		end := final && len(w.buf) == 0 && len(p) == 0 && !trailers
		start := c.beginHeadersLocked(st.id, 0)
		if end {
			c.wbuf[start+4] |= flagEndStream
		}
		c.wbuf = appendStatus(c.wbuf, w.status)
		w.writeFieldsLocked(true)
		if w.cl >= 0 {
			c.wbuf = appendField(c.wbuf, "content-length", lengthText(w.cl))
		} else if final && w.bodyOK && (w.written > 0 || !w.isHEAD) {
			c.wbuf = appendField(c.wbuf, "content-length", lengthText(w.written))
		}
		if _, ok := w.hdr["Content-Type"]; !ok && w.bodyOK && len(w.hdr["Content-Encoding"]) == 0 {
			var sniff []byte
			if len(w.buf) > 0 {
				sniff = w.buf
			} else {
				sniff = p
			}
			if len(sniff) > 0 {
				c.wbuf = appendField(c.wbuf, "content-type", http.DetectContentType(sniff))
			}
		}
		c.endHeadersLocked(start)
		w.sentHeader = true
		if end {
			c.sentEndLocked(st)
			c.wakeWriter()
			return nil
		}
	}
	if final && w.cl >= 0 && w.bodyOK && !w.isHEAD && w.written < w.cl {
		w.dropBuf()
		c.resetLocked(st.id, ErrCodeInternal)
		c.wakeWriter()
		w.err = http.ErrContentLength
		return w.err
	}
	endData := final && !trailers
	var err error
	if len(w.buf) > 0 {
		err = c.sendDataLocked(st, w.buf, endData && len(p) == 0)
		w.buf = w.buf[:0]
	}
	if err == nil && (len(p) > 0 || endData && !st.sendClosed) {
		err = c.sendDataLocked(st, p, endData)
	}
	if err == nil && trailers {
		start := c.beginHeadersLocked(st.id, flagEndStream)
		w.writeTrailersLocked()
		c.endHeadersLocked(start)
		c.sentEndLocked(st)
	}
	if final || flush || len(c.wbuf) >= wbufMax {
		c.wakeWriter()
	}
	if err != nil {
		w.err = err
	}
	return err
}

func (w *responseWriter) dropBuf() {
	if w.buf != nil {
		w.buf = w.buf[:0]
	}
}

// finish completes the response after the handler returned.
func (w *responseWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil {
		_ = w.send(nil, true, false)
	}
	w.dropBuf()
	// A response cut short (write deadline, failed write) ends the stream
	// so that the client does not wait for the rest.
	c := w.st.c
	c.mu.Lock()
	if !w.st.sendClosed && !w.st.reset && !c.closing {
		c.resetLocked(w.st.id, ErrCodeInternal)
		c.wakeWriter()
	}
	c.mu.Unlock()
}

// connection-specific fields, never sent in HTTP/2 (section 8.2.2).
func connSpecific(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// writeFieldsLocked encodes the header map; final adds Date.
func (w *responseWriter) writeFieldsLocked(final bool) {
	c := w.st.c
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Content-Length" {
			continue // Content-Length: send writes it, once
		}
		p := c.fieldPrefix(k)
		if p == "" {
			continue
		}
		for _, v := range vv {
			if validFieldValue(v) {
				c.wbuf = appendFieldPrefixed(c.wbuf, p, v)
			}
		}
	}
	if _, ok := w.hdr["Date"]; !ok && final {
		c.wbuf = appendField(c.wbuf, "date", httpDate())
	}
}

// hasTrailers reports whether the handler set trailer fields: declared in
// Trailer, or with the http.TrailerPrefix.
func (w *responseWriter) hasTrailers() bool {
	for k, vv := range w.hdr {
		if len(vv) > 0 && strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	for _, v := range w.hdr["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if vv := w.hdr[http.CanonicalHeaderKey(strings.TrimSpace(k))]; len(vv) > 0 {
				return true
			}
		}
	}
	return false
}

func (w *responseWriter) writeTrailersLocked() {
	c := w.st.c
	emit := func(k string, vv []string) {
		p := c.fieldPrefix(k)
		if p == "" {
			return
		}
		for _, v := range vv {
			if validFieldValue(v) {
				c.wbuf = appendFieldPrefixed(c.wbuf, p, v)
			}
		}
	}
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			emit(http.CanonicalHeaderKey(k[len(http.TrailerPrefix):]), vv)
		}
	}
	for _, v := range w.hdr["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if _, dup := w.hdr[http.TrailerPrefix+k]; !dup {
				emit(k, w.hdr[k])
			}
		}
	}
}

// fieldPrefix returns the HPACK bytes that open a field for header key k
// (its name, from the static table or literal), or "" if k is not sent:
// not a valid field name, or connection-specific (section 8.2.2). One map
// lookup per field on the common path.
func (c *conn) fieldPrefix(k string) string {
	if p, ok := commonPrefix[k]; ok {
		return p
	}
	if p, ok := c.prefix[k]; ok {
		return p
	}
	p := namePrefix(k)
	if len(c.prefix) < 512 {
		c.prefix[k] = p
	}
	return p
}

func namePrefix(k string) string {
	if connSpecific(k) {
		return ""
	}
	name := strings.ToLower(k)
	if !validFieldName(name) {
		return ""
	}
	if i, ok := staticNames[name]; ok {
		return string(appendHpackInt(nil, 0, 4, uint64(i)))
	}
	return string(appendHpackString([]byte{0}, name))
}

var commonPrefix = func() map[string]string {
	m := make(map[string]string)
	for name := range staticNames {
		if name[0] != ':' {
			k := http.CanonicalHeaderKey(name)
			m[k] = namePrefix(k)
		}
	}
	for _, k := range []string{"Alt-Svc", "Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options",
		"X-Frame-Options", "X-Request-Id", "Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy",
		"Permissions-Policy", "X-Xss-Protection", "Trailer", "Connection", "Keep-Alive", "Proxy-Connection",
		"Transfer-Encoding", "Upgrade"} {
		m[k] = namePrefix(k)
	}
	return m
}()

// appendFieldPrefixed appends a field opened by prefix (fieldPrefix).
func appendFieldPrefixed(dst []byte, prefix, value string) []byte {
	return appendHpackString(append(dst, prefix...), value)
}

// Flush sends the response header and the body written so far at once
// (server-sent events, streamed responses).
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	return w.send(nil, false, true)
}

// SetReadDeadline bounds the handler's wait for request body bytes; a
// read past it returns os.ErrDeadlineExceeded. Zero means none.
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	w.st.setDeadline(0, t)
	return nil
}

// SetWriteDeadline bounds the wait for flow-control credit and buffer
// room when writing; a write past it returns os.ErrDeadlineExceeded.
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.st.setDeadline(1, t)
	return nil
}

// EnableFullDuplex is a no-op: HTTP/2 streams are always full duplex.
func (w *responseWriter) EnableFullDuplex() error { return nil }

func (st *stream) setDeadline(which int, t time.Time) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d := deadline{t: t, set: !t.IsZero()}
	if which == 0 {
		st.rdeadline = d
	} else {
		st.wdeadline = d
	}
	// The timer is made only when someone waits (armLocked): the proxy
	// moves the write deadline on every request, most never wait.
	if tm := st.deadlineTmrs[which]; tm != nil {
		tm.Stop()
		st.deadlineTmrs[which] = nil
	}
	st.cond.Broadcast()
	c.cond.Broadcast()
}

// armLocked starts the timer that wakes a waiter when the read (0) or
// write (1) deadline passes.
func (st *stream) armLocked(which int) {
	d := st.rdeadline
	if which == 1 {
		d = st.wdeadline
	}
	if !d.set || st.deadlineTmrs[which] != nil {
		return
	}
	c := st.c
	st.deadlineTmrs[which] = time.AfterFunc(time.Until(d.t), func() {
		c.mu.Lock()
		st.cond.Broadcast()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
}

var statusTexts = func() (t [1000]string) {
	for i := 100; i < 1000; i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string { return statusTexts[code] }

var smallLengths = func() (t [1024]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// lengthText formats a Content-Length, without allocating for small ones.
func lengthText(n int64) string {
	if n < int64(len(smallLengths)) {
		return smallLengths[n]
	}
	return strconv.FormatInt(n, 10)
}

var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec int64
	s   string
}

// httpDate returns the Date header value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateEntry{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}
