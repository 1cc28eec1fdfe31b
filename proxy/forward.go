package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/backend"
	"github.com/gatehouse/gatehouse/internal/h1srv"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// forwarder hands app requests to the pool: it reads the whole request body
// from the client first (so a slow client never holds a backend, and a
// malformed body is refused before anything is sent), sets what the app
// learns about the client, strips hop-by-hop headers (RFC 9110 section
// 7.6.1) and copies the response back, flushing a stream as it comes,
// tunnelling a protocol upgrade, passing trailers. It replaced
// httputil.ReverseProxy, which clones every request and copies its headers
// twice: here the request the front made (a shallow copy of the server's,
// see front.ServeHTTP) is edited in place and sent as it is, and response
// header values are shared, not copied (see forward_headers.go).
type forwarder struct {
	f        *front
	pool     Pool
	recycler ResponseRecycler // pool, when it is one
	static   StaticRouter
	log      *slog.Logger
}

func newForwarder(f *front, pool Pool) *forwarder {
	fw := &forwarder{f: f, pool: pool, static: f.static, log: f.log}
	fw.recycler, _ = pool.(ResponseRecycler)
	return fw
}

// done ends the use of a response that respond wrote to the client.
func (fw *forwarder) done(res *http.Response) {
	if fw.recycler != nil {
		fw.recycler.Done(res)
		return
	}
	res.Body.Close()
}

func (fw *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := reqinfo.From(r.Context())
	body, err := fw.spool(w, r)
	if err != nil {
		status, reason := bodyErrorStatus(err)
		info.Reason = reason
		if status == 499 {
			fw.log.LogAttrs(r.Context(), slog.LevelDebug, "client left while sending its body", slog.String("request_id", info.ID), slog.Any("error", err))
		} else {
			fw.log.LogAttrs(r.Context(), slog.LevelInfo, "request body refused", slog.String("request_id", info.ID), slog.String("reason", reason), slog.Any("error", err))
		}
		w.Header().Set("Connection", "close")
		writeError(w, status, info.ID, 0)
		return
	}
	if body != nil {
		defer body.Close()
	}
	upgrade := fw.rewrite(w, r, info)
	res, err := fw.pool.RoundTrip(r)
	if err != nil {
		fw.fail(w, r, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		fw.tunnel(w, r, res, upgrade)
		return
	}
	if fw.static != nil {
		if target, sendfile := accelTarget(res.Header); target != "" {
			// The backend is released before the file is served.
			res.Body.Close()
			fw.accel(w, r, target, res.Header, sendfile)
			return
		}
	}
	fw.respond(w, r, res, info)
}

// rewrite turns the front's request into the one the pool sends, in place,
// and returns the protocol the client asked to upgrade to, if any. Only
// gatehouse's own view counts for what the app learns about the client:
// the client IP from trusted-proxy resolution, the scheme the client used,
// the Host it asked for, the request id. Strings the front made already
// (the client IP, the X-Request-Id value) are shared, not made again.
func (fw *forwarder) rewrite(w http.ResponseWriter, r *http.Request, info *reqinfo.Info) (upgrade string) {
	h := r.Header
	upgrade = stripHopRequest(h)
	// The client's Connection: close is about its own connection, not the
	// pooled one to the app.
	r.Close = false
	if r.ContentLength == 0 && r.Body != nil && r.Body != http.NoBody && len(r.TransferEncoding) == 0 {
		r.Body = http.NoBody
	}
	// Pools take the address from their own member; the scheme says
	// plain HTTP/1.1 to any RoundTripper. (r.URL is the server's; nothing
	// after the handler reads its Scheme or Host.)
	r.URL.Scheme = "http"
	if r.URL.Host == "" {
		r.URL.Host = r.Host
		if r.URL.Host == "" {
			r.URL.Host = "app"
		}
	}
	r.RequestURI = ""

	// One array for the values set below, the recorder's (part of the
	// exchange, so no allocation of its own): each slice has len == cap,
	// so an append elsewhere copies. The request is written to the app
	// before the handler returns, and only the connection's next request
	// reuses the array.
	rec, _ := frontWriter(w).(*recorder)
	var vals []string
	if rec != nil {
		vals = rec.fwd[:]
	} else {
		vals = make([]string, 4)
	}
	peer := "unix"
	if info.Peer.Addr().IsValid() {
		if info.ClientIP == info.Peer.Addr() && rec != nil {
			peer = rec.clientIP(info)
		} else {
			peer = info.Peer.Addr().String()
		}
	}
	// A trusted peer's chain is kept and extended; an untrusted peer's
	// was deleted by the front, so the chain starts at the peer.
	switch prior := h["X-Forwarded-For"]; len(prior) {
	case 0:
		vals[0] = peer
	case 1:
		vals[0] = prior[0] + ", " + peer
	default:
		vals[0] = strings.Join(prior, ", ") + ", " + peer
	}
	h["X-Forwarded-For"] = vals[0:1:1]
	// Forwarded (RFC 7239) would describe the hops before a trusted
	// proxy and not gatehouse's; the X-Forwarded-* set here replace it.
	delete(h, "Forwarded")
	if info.TLS {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	if xfh := h["X-Forwarded-Host"]; len(xfh) > 0 && xfh[0] != "" {
		h["X-Forwarded-Host"] = xfh[:1:1]
	} else {
		vals[1] = r.Host
		h["X-Forwarded-Host"] = vals[1:2:2]
	}
	if info.ClientIP.IsValid() {
		switch {
		case info.ClientIP == info.Peer.Addr():
			vals[2] = peer
		case rec != nil:
			vals[2] = rec.clientIP(info)
		default:
			vals[2] = info.ClientIP.String()
		}
		h["X-Real-Ip"] = vals[2:3:3]
	}
	if idv := w.Header()["X-Request-Id"]; len(idv) == 1 && cap(idv) == 1 && idv[0] == info.ID {
		h["X-Request-Id"] = idv
	} else {
		h["X-Request-Id"] = []string{info.ID}
	}
	var start [24]byte
	vals[3] = string(strconv.AppendInt(append(start[:0], "t="...), info.Start.UnixMicro(), 10))
	h["X-Request-Start"] = vals[3:4:4]
	return upgrade
}

// Shared header values (len == cap, so an append copies): one allocation
// fewer per request.
var (
	protoHTTPS = []string{"https"}
	protoHTTP  = []string{"http"}
)

// respond copies the app's response to w: the head without hop-by-hop
// fields, then the body, flushed whenever the app has nothing more ready,
// then the trailers.
func (fw *forwarder) respond(w http.ResponseWriter, r *http.Request, res *http.Response, info *reqinfo.Info) {
	defer fw.done(res)
	dst := w.Header()
	copyResponseHeader(dst, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		// Trailers are sent as the app announced them (RFC 9110 6.5.1).
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	if announced > 0 {
		// Commit to chunked now: with the whole (small) body in hand,
		// net/http would otherwise set a Content-Length and drop the
		// trailers.
		_ = flush(w)
	}
	if err := fw.copyBody(w, res); err != nil {
		// The head is out: all that is left is to cut the response
		// short, so the client cannot take it for a whole one.
		if err.client {
			fw.log.LogAttrs(r.Context(), slog.LevelDebug, "client left during the response", slog.String("request_id", info.ID), slog.Any("error", err.err))
		} else {
			fw.log.LogAttrs(r.Context(), slog.LevelWarn, "app response body failed", slog.String("request_id", info.ID),
				slog.String("upstream", info.Upstream), slog.Any("error", err.err))
		}
		panic(http.ErrAbortHandler)
	}
	if len(res.Trailer) == 0 {
		return
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			dst[k] = vv
		}
		return
	}
	// Trailers the app did not announce go out with net/http's prefix
	// convention (or are dropped by a server that cannot send them).
	for k, vv := range res.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
}

// copyError says which side of a body copy failed.
type copyError struct {
	err    error
	client bool // writing to the client failed
}

// copyBody copies the response body to w. A read shorter than the buffer
// means the app had nothing more ready at that moment, so what was
// written is flushed then: a stream (Server-Sent Events, a long poll)
// reaches the client as the app writes it, while a response that arrives
// whole goes out in one write when the handler returns.
func (fw *forwarder) copyBody(w http.ResponseWriter, res *http.Response) *copyError {
	if res.Body == http.NoBody {
		return nil
	}
	bp := copyBuffers.Get()
	defer copyBuffers.Put(bp)
	buf := *bp
	var written int64
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return &copyError{err: werr, client: true}
			}
			written += int64(n)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &copyError{err: rerr}
		}
		if n > 0 && n < len(buf) && (res.ContentLength < 0 || written < res.ContentLength) {
			if err := flush(w); err != nil {
				return &copyError{err: err, client: true}
			}
		}
	}
}

// flush pushes what w holds to the client.
func flush(w http.ResponseWriter) error {
	switch f := w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(w).Flush()
}

// accelTarget returns the X-Accel-Redirect URL path or X-Sendfile file
// an app response names, if any.
func accelTarget(h http.Header) (target string, sendfile bool) {
	if v := h["X-Accel-Redirect"]; len(v) > 0 && v[0] != "" {
		return v[0], false
	}
	if v := h["X-Sendfile"]; len(v) > 0 && v[0] != "" {
		return v[0], true
	}
	return "", false
}

// accelKeep are app headers that stay on a file served for X-Accel-Redirect,
// as nginx keeps them: the app decides disposition and caching.
var accelKeep = []string{"Content-Disposition", "Cache-Control", "Expires", "Set-Cookie", "Content-Language"}

// accel serves the file an app named with X-Accel-Redirect or X-Sendfile
// from an internal static mount.
func (fw *forwarder) accel(w http.ResponseWriter, r *http.Request, target string, header http.Header, sendfile bool) {
	info := reqinfo.From(r.Context())
	for _, k := range accelKeep {
		if v := header.Values(k); len(v) > 0 {
			w.Header()[k] = v
		}
	}
	info.Route = "accel"
	// The file is served to the front's own writer, below response
	// compression: static mounts compress (or not) by their own rules,
	// and a second pass would only burn CPU.
	w = frontWriter(w)
	served := false
	if sendfile {
		served = fw.static.ServeSendfile(w, r, target)
	} else {
		served = fw.static.ServeInternal(w, r, target)
	}
	if served {
		return
	}
	info.Reason = "accel_target_not_internal"
	fw.log.LogAttrs(r.Context(), slog.LevelError, "app sent X-Accel-Redirect or X-Sendfile for a path under no internal static mount",
		slog.String("request_id", info.ID), slog.String("target", target))
	writeError(w, http.StatusInternalServerError, info.ID, 0)
}

// fail is the one place where a failed exchange with the pool becomes an
// answer to the client.
func (fw *forwarder) fail(w http.ResponseWriter, r *http.Request, err error) {
	info := reqinfo.From(r.Context())
	status, reason := statusFor(r.Context(), err)
	info.Reason = reason
	lvl := slog.LevelWarn
	if status == 499 {
		lvl = slog.LevelDebug
	}
	fw.log.LogAttrs(r.Context(), lvl, "app request failed",
		slog.String("request_id", info.ID), slog.Int("status", status), slog.String("reason", reason),
		slog.String("upstream", info.Upstream), slog.Any("error", err))
	var ra backend.RetryAfter
	retry := time.Duration(0)
	switch {
	case errors.As(err, &ra):
		retry = ra.RetryAfter()
	case reason == "app_not_ready":
		retry = 5 * time.Second
	case status == http.StatusServiceUnavailable:
		retry = time.Second
	}
	writeError(w, status, info.ID, retry)
}

// frontWriter unwraps w down to the front's recorder (through
// middlewares such as compression), or returns w if there is none.
func frontWriter(w http.ResponseWriter) http.ResponseWriter {
	for cur := w; ; {
		if rec, ok := cur.(*recorder); ok {
			return rec
		}
		u, ok := cur.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		cur = u.Unwrap()
	}
}

// statusFor maps an error from the pool to the status the client gets and
// a reason word for logs and metrics.
func statusFor(ctx context.Context, err error) (int, string) {
	var ne net.Error
	switch {
	case errors.Is(err, backend.ErrQueueFull):
		return http.StatusServiceUnavailable, "queue_full"
	case errors.Is(err, backend.ErrQueueTimeout):
		return http.StatusServiceUnavailable, "queue_timeout"
	case errors.Is(err, backend.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, backend.ErrNotReady):
		return http.StatusServiceUnavailable, "app_not_ready"
	case ctx.Err() != nil && !errors.Is(err, backend.ErrTimeout):
		return 499, "client_closed"
	case errors.Is(err, backend.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout, "upstream_timeout"
	case errors.Is(err, backend.ErrNoBackend):
		return http.StatusBadGateway, "no_backend"
	}
	return http.StatusBadGateway, "upstream_error"
}

// bodyErrorStatus maps a failure to read the client's body.
func bodyErrorStatus(err error) (int, string) {
	var ne net.Error
	switch {
	case errors.Is(err, h1srv.ErrBodyFraming):
		return http.StatusBadRequest, "bad_chunked_body"
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout, "body_timeout"
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The body ended before its declared end. If the client is
		// still there (a half-close) it learns why; if not, nobody reads.
		return http.StatusBadRequest, "incomplete_body"
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		return 499, "client_closed"
	case errors.Is(err, errSpill):
		return http.StatusInternalServerError, "body_spill_failed"
	}
	// net/http's own chunked-body parser errors are unexported.
	return http.StatusBadRequest, "bad_body"
}

var (
	errBodyTooLarge = errors.New("proxy: request body larger than server.max_body_bytes")
	errSpill        = errors.New("proxy: cannot write request body to the temp dir")
)

// spooledBody is a request body read in full: in memory, or in an unlinked
// temporary file when larger than server.body_buffer_bytes.
type spooledBody struct {
	mem  []byte
	file *os.File
	size int64
}

func (b *spooledBody) reader() io.ReadCloser {
	if b.file != nil {
		return io.NopCloser(io.NewSectionReader(b.file, 0, b.size))
	}
	return io.NopCloser(bytes.NewReader(b.mem))
}

func (b *spooledBody) Close() error {
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}

// spool reads r's body completely, bounded by server.max_body_bytes and
// server.body_timeout between reads, and replaces it with the stored copy
// (with GetBody set, so a pool can resend it to another backend).
func (fw *forwarder) spool(w http.ResponseWriter, r *http.Request) (*spooledBody, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil, nil
	}
	cfg := &fw.f.cfg
	limit := int64(cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	rc := http.NewResponseController(w)
	memMax := int64(cfg.BodyBufferBytes)
	b := &spooledBody{}
	if r.ContentLength > 0 {
		b.mem = make([]byte, 0, min(r.ContentLength, memMax))
	}
	bp := copyBuffers.Get()
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		if cfg.BodyTimeout > 0 {
			_ = rc.SetReadDeadline(time.Now().Add(cfg.BodyTimeout.D()))
		}
		n, err := r.Body.Read(buf)
		if n > 0 {
			if b.size+int64(n) > limit {
				b.Close()
				return nil, errBodyTooLarge
			}
			if werr := b.add(buf[:n], memMax, cfg.TempDir); werr != nil {
				b.Close()
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Close()
			return nil, err
		}
	}
	// The rest of the exchange must not inherit the body deadline: net/http's
	// background read would take it for a dead client.
	_ = rc.SetReadDeadline(time.Time{})
	_ = r.Body.Close()
	r.Body = b.reader()
	r.GetBody = func() (io.ReadCloser, error) { return b.reader(), nil }
	r.ContentLength = b.size
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	return b, nil
}

func (b *spooledBody) add(p []byte, memMax int64, dir string) error {
	b.size += int64(len(p))
	if b.file == nil && int64(len(b.mem)+len(p)) <= memMax {
		b.mem = append(b.mem, p...)
		return nil
	}
	if b.file == nil {
		f, err := os.CreateTemp(dir, "gatehouse-body-*")
		if err != nil {
			return errors.Join(errSpill, err)
		}
		// Unlinked at once: the disk space comes back when the request
		// ends, even if gatehouse is killed.
		_ = os.Remove(f.Name())
		b.file = f
		if _, err := f.Write(b.mem); err != nil {
			return errors.Join(errSpill, err)
		}
		b.mem = nil
	}
	if _, err := b.file.Write(p); err != nil {
		return errors.Join(errSpill, err)
	}
	return nil
}

// bufferPool recycles the 32 KiB buffers used to copy bodies. It hands
// out the pointer it stores, so a Put allocates nothing.
type bufferPool struct{ p sync.Pool }

var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

func (bp *bufferPool) Get() *[]byte  { return bp.p.Get().(*[]byte) }
func (bp *bufferPool) Put(b *[]byte) { bp.p.Put(b) }
