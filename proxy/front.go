package proxy

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/h1"
	"github.com/gatehouse/gatehouse/internal/h1srv"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// Pool is what the front forwards app requests to: the worker pool, a set
// of command-run processes, or upstreams run elsewhere (*workers.Pool).
type Pool interface {
	// RoundTrip sends r to a backend and returns its response. It blocks
	// while the request waits for a free backend and returns errors that
	// wrap the internal/backend sentinels for the answers the front gives
	// on its behalf. Closing the response body releases the backend. A
	// 101 response's Body is an io.ReadWriteCloser, as with
	// net/http.Transport, so protocol upgrades pass through.
	RoundTrip(r *http.Request) (*http.Response, error)
}

// ResponseRecycler is a Pool that can reuse a response's memory once the
// front has written it to the client (*workers.Pool). Done closes the
// body; the front uses neither the Response nor its Header map after it,
// only header values it copied.
type ResponseRecycler interface {
	Done(resp *http.Response)
}

// StaticRouter serves files for URL prefixes (*static.Server).
type StaticRouter interface {
	// Match returns the handler of the mount serving path, if any.
	Match(path string) (http.Handler, bool)
	// ServeInternal serves target, the URL path an app named in
	// X-Accel-Redirect, when it lies under an internal mount; false means
	// it does not and nothing was written.
	ServeInternal(w http.ResponseWriter, r *http.Request, target string) bool
	// ServeSendfile does the same for X-Sendfile, which names a file
	// system path under an internal mount's root.
	ServeSendfile(w http.ResponseWriter, r *http.Request, file string) bool
}

// Middleware wraps a handler: the rate limiter, response compression.
type Middleware func(http.Handler) http.Handler

// front is one configuration generation of the request pipeline. It is
// immutable once built; a reload builds a new one and swaps it in, while
// requests already inside keep the one they started with.
type front struct {
	cfg     Config
	trust   trustSet
	hosts   hostAllow
	headers []headerRule
	static  StaticRouter
	// prefetch starts the rate limiter's bucket load (Options.Prefetch).
	prefetch func(netip.Addr)
	app      http.Handler // nil when there is no app section
	// limitedStatic serves static mounts behind the rate limiter when
	// ratelimit.static is set; nil otherwise.
	limitedStatic http.Handler
	obs           *observer
	log           *slog.Logger
	tls           *frontTLS // nil without TLS
}

// frontTLS is the HTTPS policy of a generation.
type frontTLS struct {
	certs     certSource
	hsts      string // Strict-Transport-Security value, "" for none
	redirect  bool
	httpsPort *atomic.Pointer[string] // "" for 443
}

type headerRule struct {
	name, value string   // empty value: remove
	vals        []string // {value}, shared by every response: len == cap, so no append can write into it
}

// defaultHeaders are safe defaults a newcomer should not need to know
// about; server.headers can change or remove each.
var defaultHeaders = []headerRule{
	{name: "X-Content-Type-Options", value: "nosniff"},
	{name: "Referrer-Policy", value: "strict-origin-when-cross-origin"},
	{name: "X-Frame-Options", value: "SAMEORIGIN"},
}

func buildHeaders(custom map[string]string) []headerRule {
	out := make([]headerRule, 0, len(defaultHeaders)+len(custom))
	for _, d := range defaultHeaders {
		if _, ok := lookupFold(custom, d.name); !ok {
			out = append(out, d)
		}
	}
	for name, v := range custom {
		out = append(out, headerRule{name: http.CanonicalHeaderKey(name), value: v})
	}
	for i := range out {
		out[i].vals = []string{out[i].value}
	}
	return out
}

func lookupFold(m map[string]string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// spoofable are the request headers through which a client could claim to
// be someone else or to have come another way; they are removed unless the
// peer is a trusted proxy.
var spoofable = []string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Ssl", "Forwarded", "X-Real-Ip", "X-Client-Ip",
	"True-Client-Ip", "X-Request-Id", "X-Request-Start",
}

func isSpoofable(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Forwarded-Prefix", "X-Forwarded-Ssl", "Forwarded", "X-Real-Ip", "X-Client-Ip",
		"True-Client-Ip", "X-Request-Id", "X-Request-Start":
		return true
	}
	return false
}

// deleteFields removes the fields named in keys (is says whether a name is
// one of them) from h. A request usually has fewer fields than there are
// keys, so it walks h when that is shorter: a delete hashes its key even
// when the field is absent.
func deleteFields(h http.Header, keys []string, is func(string) bool) {
	if len(h) < len(keys) {
		for k := range h {
			if is(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range keys {
		delete(h, k)
	}
}

// exchange is what the front keeps per request, in one allocation: the
// record the later stages read from the context, the writer every handler
// behind the front writes to, and the request's context itself, which
// answers reqinfo's key with the record (instead of a context.WithValue
// node per request) and internal/h1's InformationalKey with the exchange,
// so 1xx responses from the app reach the client (see Informational).
//
// An HTTP/1 connection serves one request at a time, so it keeps one
// exchange for all of them (connExchange): it is in the context of the
// connection's requests already, and a request costs neither the
// allocation nor the copy of the Request that WithContext makes.
type exchange struct {
	context.Context // the server's context for the request (or connection)
	info            reqinfo.Info
	rec             recorder
	id              [1]string // X-Request-Id's value, shared by the request and the response
	perConn         bool      // reused by every request of a connection
}

// exchangeKey finds a connection's exchange in a request's context.
type exchangeKey struct{}

// connExchange is the ConnContext of the HTTP/1 server: the connection's
// exchange, which its requests reuse one after the other.
func connExchange(ctx context.Context, _ net.Conn) context.Context {
	return &exchange{Context: ctx, perConn: true}
}

// newExchange returns the exchange for r and r with it in its context.
func newExchange(r *http.Request, start time.Time) (*exchange, *http.Request) {
	if x, ok := r.Context().Value(exchangeKey{}).(*exchange); ok && x.perConn {
		// Field by field: Context stays as it is, never written while a
		// context derived from it may be reading it.
		ip, text := x.rec.lastIP, x.rec.lastIPText
		x.info, x.rec, x.id = reqinfo.Info{Start: start}, recorder{}, [1]string{}
		x.rec.lastIP, x.rec.lastIPText = ip, text
		return x, r
	}
	x := &exchange{Context: r.Context(), info: reqinfo.Info{Start: start}}
	return x, r.WithContext(x)
}

// infoKey is the key reqinfo.From looks up, learnt once by asking a
// context that records it: reqinfo keeps its key type unexported, as it
// should, and exchange.Value must recognise it.
var infoKey = func() any {
	var spy keySpy
	reqinfo.From(&spy)
	return spy.key
}()

type keySpy struct {
	context.Context
	key any
}

func (s *keySpy) Value(k any) any { s.key = k; return nil }

// Value makes the exchange the request's context.
func (x *exchange) Value(k any) any {
	switch k {
	case infoKey:
		return &x.info
	case h1.InformationalKey{}:
		return x
	case exchangeKey{}:
		return x
	case h1.CheckedKey{}:
		// Requests on gatehouse's HTTP/1 server (internal/h1srv, which
		// refuses invalid field names and values) carry only fields
		// that parser accepted and the ones rewrite builds: the
		// transport need not check them again.
		return x.perConn
	}
	return x.Context.Value(k)
}

// Informational passes a 1xx response from the app (103 Early Hints) to
// the client, with its own header fields, which then leave the response
// header again. 100 Continue is not passed: the server answered the
// client's Expect itself when the forwarder read the body.
func (x *exchange) Informational(code int, h http.Header) error {
	if code == http.StatusContinue || x.rec.status != 0 {
		return nil
	}
	dst := x.rec.Header()
	before := dst.Clone()
	for k, vv := range h {
		if !isHopHeader(k) {
			dst[k] = vv
		}
	}
	x.rec.WriteHeader(code)
	clear(dst)
	maps.Copy(dst, before)
	return nil
}

// ServeHTTP runs the request flow documented in doc.go.
func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, r := newExchange(r, time.Now())
	info, rec := &x.info, &x.rec
	rec.init(w, f)
	f.obs.start()
	defer f.obs.done(rec, r, info)

	info.Peer = peerOf(r.RemoteAddr)
	trusted := f.trust.peerTrusted(info.Peer.Addr())

	if status, reason, ok := h1srv.Rejection(r); ok {
		// A request the HTTP/1 parser refused (framing, size, a timeout):
		// what stands in for it is not the client's, so nothing of it is
		// believed.
		info.ID = newRequestID()
		info.ClientIP = info.Peer.Addr()
		info.Route = "guard"
		f.refuse(rec, r, info, status, reason)
		return
	}

	info.ID = firstValue(r.Header, "X-Request-Id")
	if !trusted || !validRequestID(info.ID) {
		info.ID = newRequestID()
	}
	info.ClientIP = f.trust.clientIP(info.Peer.Addr(), r.Header["X-Forwarded-For"])
	if f.prefetch != nil {
		f.prefetch(info.ClientIP)
	}
	if status, reason := checkRequest(r); status != 0 {
		// Route "refused": the request parsed, so the log shows its
		// method and path (a parser refusal, route "guard", cannot).
		f.refuse(rec, r, info, status, reason)
		return
	}
	info.TLS = r.TLS != nil
	if trusted && !info.TLS {
		info.TLS = strings.EqualFold(lastValue(r.Header.Values("X-Forwarded-Proto")), "https")
	}
	if !trusted {
		deleteFields(r.Header, spoofable, isSpoofable)
	}
	x.id[0] = info.ID
	rec.Header()["X-Request-Id"] = x.id[:]

	info.Host = hostOf(r.Host)
	if f.tls != nil && r.TLS == nil && f.tls.certs.httpChallenge(rec, r) {
		// ACME HTTP-01: answered only for tokens of a pending order, so it
		// may come before the Host check (on-demand names are not listed).
		info.Route = "acme"
		return
	}
	if !f.hosts.allows(info.Host) && !f.onDemandHost(r, info.Host) {
		f.refuse(rec, r, info, http.StatusMisdirectedRequest, "host_not_allowed")
		return
	}
	if f.tls != nil {
		if r.TLS != nil && f.tls.hsts != "" {
			rec.hsts = f.tls.hsts
		}
		if f.tls.redirect && !info.TLS {
			info.Route = "redirect"
			f.redirectHTTPS(rec, r)
			return
		}
	}

	if f.static != nil {
		if h, ok := f.static.Match(r.URL.Path); ok {
			if info.Route == "" {
				info.Route = "static"
			}
			if f.limitedStatic != nil {
				h = f.limitedStatic
			}
			h.ServeHTTP(rec, r)
			return
		}
	}
	if f.app == nil {
		info.Route = "none"
		f.refuse(rec, r, info, http.StatusNotFound, "no_route")
		return
	}
	info.Route = "app"
	f.app.ServeHTTP(rec, r)
}

// hostOf is canonicalHost with a fast path for the common Host that is
// already canonical (lower case, no port, no trailing dot), which it
// returns without allocating.
func hostOf(h string) string {
	if h == "" || h[len(h)-1] == '.' || h[0] == '[' {
		return canonicalHost(h)
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == ':':
			// "name:port", the usual form off the default port: the
			// name is already canonical when the port is all digits.
			if i == 0 || h[i-1] == '.' || !allDigits(h[i+1:]) {
				return canonicalHost(h)
			}
			return h[:i]
		case c >= 'A' && c <= 'Z':
			return canonicalHost(h)
		}
	}
	return h
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// onDemandHost admits a Host outside server.hosts when on-demand TLS
// covers it: on its allow list, or, over TLS, the name the client's
// handshake got a certificate for (the ask URL approved it then).
func (f *front) onDemandHost(r *http.Request, host string) bool {
	if f.tls == nil {
		return false
	}
	if f.tls.certs.allowsHost(host) {
		return true
	}
	a, ok := f.tls.certs.(*acmeCerts)
	return ok && a.ask && r.TLS != nil && strings.EqualFold(r.TLS.ServerName, host)
}

// redirectHTTPS answers plain HTTP with 308 to the same URL over HTTPS
// (308, unlike 301, keeps the method and body of a POST).
func (f *front) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := canonicalHost(r.Host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := *f.tls.httpsPort.Load(); p != "" {
		host += ":" + p
	}
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusPermanentRedirect)
	_, _ = w.Write([]byte("308 Permanent Redirect: use HTTPS\n"))
}

// refuse answers a request gatehouse itself turns away.
func (f *front) refuse(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, status int, reason string) {
	info.Reason = reason
	if info.Route == "" {
		info.Route = "refused"
	}
	if status >= 400 && (r.ProtoMajor == 1 && status != http.StatusNotFound) {
		// After a framing or policy refusal the connection's state is not
		// worth trusting (RFC 9112 11.2).
		w.Header().Set("Connection", "close")
	}
	writeError(w, status, info.ID, 0)
}

// writeError writes the body every gatehouse-made error has: the status
// line in words and the request id to quote in a support ticket, never
// internal detail (that goes to the log under the same id).
func writeError(w http.ResponseWriter, status int, id string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Del("ETag")
	if status == 499 {
		// The client is gone (or half-closed, which net/http takes for
		// gone): close the connection without an answer rather than let
		// net/http send an empty 200. The access log shows 499 (from
		// info.Reason), as nginx does.
		panic(http.ErrAbortHandler)
	}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(max(1, retryAfter.Round(time.Second)/time.Second))))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(strconv.Itoa(status) + " " + http.StatusText(status) + "\nrequest id: " + id + "\n"))
	if h.Get("Connection") == "close" {
		// net/http would otherwise read what is left of the request body
		// before closing, waiting on a client that may never send it
		// (a 413 for a declared length, say). The answer is flushed
		// before that read, so failing it at once costs nothing.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

func peerOf(remote string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// firstValue is h.Get(key) for a key already in canonical form, without
// canonicalising it again on every request.
func firstValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func lastValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	v := vs[len(vs)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

func newRequestID() string {
	const hexdigits = "0123456789abcdef"
	var b [32]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 16 {
		b[i] = hexdigits[x>>(60-4*i)&0xf]
		b[16+i] = hexdigits[y>>(60-4*i)&0xf]
	}
	return string(b[:])
}

// validRequestID accepts ids a trusted proxy may hand on: 1 to 128
// characters that are safe in logs and headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-_.:+/=@", ch) >= 0) {
			return false
		}
	}
	return true
}
