package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/backend"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// forwarder hands app requests to the pool: it reads the whole request body
// from the client first (so a slow client never holds a backend, and a
// malformed body is refused before anything is sent), then forwards with
// httputil.ReverseProxy, which strips hop-by-hop headers (RFC 9110 7.6.1)
// and passes protocol upgrades and streaming responses through.
type forwarder struct {
	f      *front
	rp     *httputil.ReverseProxy
	static StaticRouter
	log    *slog.Logger
}

func newForwarder(f *front, pool Pool) *forwarder {
	fw := &forwarder{f: f, static: f.static, log: f.log}
	fw.rp = &httputil.ReverseProxy{
		Rewrite:        fw.rewrite,
		Transport:      pool,
		BufferPool:     copyBuffers,
		ModifyResponse: fw.modifyResponse,
		ErrorHandler:   fw.fail,
		ErrorLog:       slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	return fw
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
	fw.rp.ServeHTTP(w, r)
}

// rewrite sets what the app learns about the client. Only gatehouse's own
// view counts: the client IP from trusted-proxy resolution, the scheme the
// client used, the Host it asked for, the request id.
func (fw *forwarder) rewrite(pr *httputil.ProxyRequest) {
	info := reqinfo.From(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = pr.In.Host
	if out.URL.Host == "" {
		out.URL.Host = "app"
	}
	out.Host = pr.In.Host
	h := out.Header
	peer := "unix"
	if info.Peer.Addr().IsValid() {
		peer = info.Peer.Addr().String()
	}
	// A trusted peer's chain is kept and extended; an untrusted peer's
	// was deleted by the front, so the chain starts at the peer.
	if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+peer)
	} else {
		h.Set("X-Forwarded-For", peer)
	}
	if info.TLS {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	if xfh := pr.In.Header.Get("X-Forwarded-Host"); xfh != "" {
		h.Set("X-Forwarded-Host", xfh)
	} else {
		h.Set("X-Forwarded-Host", pr.In.Host)
	}
	if info.ClientIP.IsValid() {
		h.Set("X-Real-Ip", info.ClientIP.String())
	}
	h.Set("X-Request-Id", info.ID)
	h.Set("X-Request-Start", "t="+strconv.FormatInt(info.Start.UnixMicro(), 10))
}

func (fw *forwarder) modifyResponse(res *http.Response) error {
	if res.StatusCode == http.StatusSwitchingProtocols {
		if c := guardConnOf(res.Request.Context()); c != nil {
			c.Tunnel()
		}
		return nil
	}
	if fw.static == nil {
		return nil
	}
	if target := res.Header.Get("X-Accel-Redirect"); target != "" {
		return &accelRedirect{target: target, header: res.Header}
	}
	if file := res.Header.Get("X-Sendfile"); file != "" {
		return &accelRedirect{target: file, header: res.Header, sendfile: true}
	}
	return nil
}

// Shared header values (len == cap, so an append copies): one allocation
// fewer per request.
var (
	protoHTTPS = []string{"https"}
	protoHTTP  = []string{"http"}
)

// accelRedirect travels from modifyResponse to fail, which serves the file:
// ReverseProxy closes the app's response body on the way.
type accelRedirect struct {
	target   string
	header   http.Header
	sendfile bool // X-Sendfile: a file system path, not a URL path
}

func (a *accelRedirect) Error() string { return "X-Accel-Redirect to " + a.target }

// accelKeep are app headers that stay on a file served for X-Accel-Redirect,
// as nginx keeps them: the app decides disposition and caching.
var accelKeep = []string{"Content-Disposition", "Cache-Control", "Expires", "Set-Cookie", "Content-Language"}

// fail is the one place where a failed exchange with the pool becomes an
// answer to the client.
func (fw *forwarder) fail(w http.ResponseWriter, r *http.Request, err error) {
	info := reqinfo.From(r.Context())
	var accel *accelRedirect
	if errors.As(err, &accel) {
		for _, k := range accelKeep {
			if v := accel.header.Values(k); len(v) > 0 {
				w.Header()[k] = v
			}
		}
		info.Route = "accel"
		// The file is served to the front's own writer, below response
		// compression: static mounts compress (or not) by their own rules,
		// and a second pass would only burn CPU.
		w = frontWriter(w)
		served := false
		if accel.sendfile {
			served = fw.static.ServeSendfile(w, r, accel.target)
		} else {
			served = fw.static.ServeInternal(w, r, accel.target)
		}
		if served {
			return
		}
		info.Reason = "accel_target_not_internal"
		fw.log.LogAttrs(r.Context(), slog.LevelError, "app sent X-Accel-Redirect or X-Sendfile for a path under no internal static mount",
			slog.String("request_id", info.ID), slog.String("target", accel.target))
		writeError(w, http.StatusInternalServerError, info.ID, 0)
		return
	}
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
	switch fe := framingErrorOf(err); {
	case fe != nil:
		return fe.Status, fe.Reason
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
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
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

// bufferPool recycles the 32 KiB buffers used to copy bodies.
type bufferPool struct{ p sync.Pool }

var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

func (bp *bufferPool) Get() []byte  { return *(bp.p.Get().(*[]byte)) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
