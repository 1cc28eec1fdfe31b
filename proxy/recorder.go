package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// recorder is the ResponseWriter every handler behind the front writes
// to. It adds the configured response headers at the moment the status is
// written (so an app's own X-Frame-Options wins), keeps the status and byte
// count for the access log, and bounds each write to a slow client with
// server.send_timeout. Flush, Hijack and ReadFrom pass through, so SSE,
// WebSocket and sendfile keep working.
type recorder struct {
	w        http.ResponseWriter
	rc       http.ResponseController // by value: no allocation of its own
	f        *front
	status   int
	bytes    int64
	hijacked bool
	sendTO   time.Duration
	hsts     string    // Strict-Transport-Security for HTTPS responses
	deadline time.Time // the write deadline last set, zero for none
	ip       string    // the client IP in text, once made (clientIP)
	// The last client IP made into text on this connection, kept from
	// request to request (newExchange): a keep-alive client's requests
	// share it, so the text is made once per connection.
	lastIP     netip.Addr
	lastIPText string
	// fwd holds the forwarding header values the forwarder sets (see
	// rewrite): part of the exchange's allocation, not one of its own.
	fwd [4]string
}

// clientIP is info.ClientIP in text ("unix" for none), made once per
// request for X-Real-IP, X-Forwarded-For and the access log.
func (r *recorder) clientIP(info *reqinfo.Info) string {
	if r.ip == "" {
		if r.lastIPText != "" && r.lastIP == info.ClientIP {
			r.ip = r.lastIPText
		} else {
			r.ip = addrString(info)
			r.lastIP, r.lastIPText = info.ClientIP, r.ip
		}
	}
	return r.ip
}

// init readies a recorder that is part of a larger per-request allocation
// (see exchange in front.go).
func (r *recorder) init(w http.ResponseWriter, f *front) {
	r.w, r.rc, r.f, r.sendTO = w, *http.NewResponseController(w), f, f.cfg.SendTimeout.D()
	if m, ok := w.(interface{ ManagesSendTimeout() bool }); ok && m.ManagesSendTimeout() {
		// The HTTP/1 server bounds every write itself, cheaper than a
		// deadline moved per response (internal/h1srv's clock.go).
		r.sendTO = 0
	}
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(status int) {
	if r.status != 0 {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		// 1xx informational responses (103 Early Hints) pass as they are.
		r.w.WriteHeader(status)
		return
	}
	r.status = status
	h := r.w.Header()
	if r.hsts != "" {
		if _, ok := h["Strict-Transport-Security"]; !ok {
			h["Strict-Transport-Security"] = []string{r.hsts}
		}
	}
	for _, rule := range r.f.headers {
		if rule.value == "" {
			h.Del(rule.name)
		} else if _, ok := h[rule.name]; !ok {
			h[rule.name] = rule.vals
		}
	}
	r.w.WriteHeader(status)
}

// moveDeadline gives the next write send_timeout. Moving a deadline is a
// timer update in the runtime, so one set less than a sixteenth of the
// timeout ago is left alone: a write then gets at least 15/16 of
// send_timeout, and a response written in many small pieces does not pay
// for a timer update each.
func (r *recorder) moveDeadline() {
	if r.sendTO <= 0 {
		return
	}
	now := time.Now()
	if !r.deadline.IsZero() && r.deadline.Sub(now) > r.sendTO-r.sendTO/16 {
		return
	}
	r.deadline = now.Add(r.sendTO)
	_ = r.rc.SetWriteDeadline(r.deadline)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.moveDeadline()
	n, err := r.w.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy from a file reach net/http's sendfile path.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.sendTO > 0 {
		// sendfile(2) runs as one call from here, so there is no point
		// between writes to move a deadline: give the whole copy sixty
		// send timeouts (an hour by default), enough for a large file on
		// a slow link, still finite for a client that stopped reading.
		r.deadline = time.Now().Add(60 * r.sendTO)
		_ = r.rc.SetWriteDeadline(r.deadline)
	}
	var n int64
	var err error
	if rf, ok := r.w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.w}, src)
	}
	r.bytes += n
	return n, err
}

// FlushError is what http.ResponseController.Flush calls first.
func (r *recorder) FlushError() error {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.moveDeadline()
	return r.rc.Flush()
}

// Flush implements http.Flusher for handlers that assert it directly.
func (r *recorder) Flush() { _ = r.FlushError() }

// Hijack hands the connection over after a protocol upgrade.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := r.rc.Hijack()
	if err == nil {
		r.hijacked = true
		if r.status == 0 {
			r.status = http.StatusSwitchingProtocols
		}
		// Deadlines set for the HTTP exchange must not cut the tunnel.
		_ = c.SetDeadline(time.Time{})
		r.deadline = time.Time{}
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer for
// anything not handled here (read deadlines, full-duplex).
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }
