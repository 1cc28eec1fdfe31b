package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse/gatehouse/internal/h1srv"
	"github.com/gatehouse/gatehouse/internal/h2srv"
)

// Options is everything a Server is built from. A reload passes a new
// Options to Apply.
type Options struct {
	Config Config
	TLS    TLSConfig
	// Admin is the admin listener's config; nil means no admin listener.
	Admin *AdminConfig
	// Pool serves the app route; nil means there is no app and requests
	// that match no static mount get 404.
	Pool Pool
	// Static routes URL prefixes to files; nil means no mounts.
	Static StaticRouter
	// Limit wraps the app route (the rate limiter); nil means none.
	Limit Middleware
	// LimitStatic applies Limit to static mounts too.
	LimitStatic bool
	// Prefetch, when set, is told each request's client IP as soon as it
	// is known, so the rate limiter can start loading that client's bucket
	// while the front does its own checks (ratelimit.Limiter.Prefetch).
	Prefetch func(netip.Addr)
	// Encode wraps the app route to compress responses; nil means none.
	Encode Middleware
	// Logger receives operational logs; nil means slog.Default().
	Logger *slog.Logger
	// AccessLog receives one line per request; nil means no access log.
	AccessLog *slog.Logger
	// Status adds sections to /status (the pool, the config file state).
	Status func() map[string]any
	// Metrics is what /metrics serves; nil means the registry given to New.
	Metrics prometheus.Gatherer
}

// Server is the HTTP front: its listeners, the admin listener, and the
// current configuration generation. Typical usage:
//
//	s, err := proxy.New(opts, registry)
//	if err := s.Listen(); err != nil { ... }
//	go s.Serve(ctx)         // returns after ctx is done and requests drained
//	s.Apply(newOpts)        // on SIGHUP
type Server struct {
	log     *slog.Logger
	obs     *observer
	reg     *prometheus.Registry
	started time.Time

	certs     certSource             // nil without TLS
	tlsConf   *tls.Config            // built once from certs
	httpsPort atomic.Pointer[string] // where redirects point: the bound TLS port, "" for 443

	mu        sync.Mutex // serializes Apply
	opts      Options    // the running generation's options
	cur       atomic.Pointer[front]
	status    atomic.Pointer[func() map[string]any]
	lns       []net.Listener
	unixPaths []string
	adminLn   net.Listener
	h2        *h2srv.Server // HTTP/2 over TLS
	h1        *h1srv.Server
	adminSrv  *http.Server
}

// New builds a Server. reg is where gatehouse's metrics are registered and
// what /metrics serves; nil makes a private registry.
func New(opts Options, reg *prometheus.Registry) (*Server, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := opts.Config
	s := &Server{
		log:     opts.Logger.With("component", "proxy"),
		obs:     newObserver(opts.AccessLog, reg),
		reg:     reg,
		started: time.Now(),
	}
	if opts.TLS.On() {
		src, err := newCertSource(opts.TLS, cfg.Hosts, s.log)
		if err != nil {
			return nil, fmt.Errorf("setting up TLS: %w", err)
		}
		s.certs = src
		s.tlsConf = serverTLSConfig(src)
	}
	if err := s.install(opts); err != nil {
		if s.certs != nil {
			s.certs.close()
		}
		return nil, err
	}
	h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.cur.Load().ServeHTTP(w, r) }))
	// HTTP/1.x, in the clear and over TLS, is served by h1srv: net/http's
	// server costs a third of the throughput and 20 KiB per idle
	// connection (docs/benchmarks.md). HTTP/2 is served by h2srv, for the
	// same reasons (net/http's HTTP/2 server reached a quarter of nginx's
	// requests/s; bench/tls).
	s.h1 = &h1srv.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.IdleTimeout.D(),
		SendTimeout:       cfg.SendTimeout.D(),
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		MaxURIBytes:       int(cfg.MaxURIBytes),
		// Refusals go through the front like any request: logged,
		// counted, answered with the request id (front.ServeHTTP).
		HandleRejects: true,
		ErrorLog:      s.log,
		ConnContext:   connExchange,
	}
	s.h2 = &h2srv.Server{
		Handler:              h,
		ReadHeaderTimeout:    cfg.ReadHeaderTimeout.D(),
		IdleTimeout:          cfg.IdleTimeout.D(),
		MaxHeaderBytes:       int(cfg.MaxHeaderBytes) + 1024,
		MaxConcurrentStreams: 250,
		ErrorLog:             s.log,
	}
	return s, nil
}

func (s *Server) install(opts Options) error {
	if err := opts.Config.Validate(); err != nil {
		return fmt.Errorf("server config: %w", err)
	}
	trust, _ := parseTrusted(opts.Config.TrustedProxies)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &front{
		cfg:      opts.Config,
		trust:    trust,
		hosts:    parseHosts(opts.Config.Hosts),
		headers:  buildHeaders(opts.Config.Headers),
		static:   opts.Static,
		prefetch: opts.Prefetch,
		obs:      s.obs,
		log:      opts.Logger.With("component", "proxy"),
	}
	if s.certs != nil {
		f.tls = &frontTLS{
			certs:     s.certs,
			hsts:      opts.TLS.hstsValue(),
			redirect:  *opts.TLS.RedirectHTTP,
			httpsPort: &s.httpsPort,
		}
		if s.httpsPort.Load() == nil {
			p := httpsPort(opts.Config.ListenTLS)
			s.httpsPort.Store(&p)
		}
	}
	if opts.Pool != nil {
		var app http.Handler = newForwarder(f, opts.Pool)
		if opts.Encode != nil {
			app = opts.Encode(app)
		}
		if opts.Limit != nil {
			app = opts.Limit(app)
		}
		f.app = app
	}
	if opts.Limit != nil && opts.LimitStatic && opts.Static != nil {
		// Built once: the limiter wraps a dispatcher that finds the mount
		// again (a prefix scan), so no wrapper is made per request.
		f.limitedStatic = opts.Limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h, ok := opts.Static.Match(r.URL.Path); ok {
				h.ServeHTTP(w, r)
			}
		}))
	}
	s.opts = opts
	status := opts.Status
	s.status.Store(&status)
	s.cur.Store(f)
	return nil
}

// Apply swaps in a new configuration generation without dropping a request:
// requests in flight finish with the generation they started with. Settings
// bound to sockets (listen addresses, header timeouts and limits) need a
// restart; a change to them is logged and otherwise ignored.
func (s *Server) Apply(opts Options) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.opts.Config
	nc := opts.Config
	var fixed []string
	if !slices.Equal(old.Listen, nc.Listen) || !slices.Equal(old.ListenTLS, nc.ListenTLS) {
		fixed = append(fixed, "server.listen")
	}
	if old.ReadHeaderTimeout != nc.ReadHeaderTimeout || old.IdleTimeout != nc.IdleTimeout || old.SendTimeout != nc.SendTimeout {
		fixed = append(fixed, "server timeouts")
	}
	if old.MaxHeaderBytes != nc.MaxHeaderBytes || old.MaxURIBytes != nc.MaxURIBytes {
		fixed = append(fixed, "server.max_header_bytes/max_uri_bytes")
	}
	if (s.opts.Admin == nil) != (opts.Admin == nil) || opts.Admin != nil && s.opts.Admin.Listen != opts.Admin.Listen {
		fixed = append(fixed, "admin.listen")
	}
	if s.opts.TLS.Mode != opts.TLS.Mode || s.opts.TLS.Storage != opts.TLS.Storage || s.opts.TLS.CA != opts.TLS.CA ||
		!slices.Equal(s.opts.TLS.pairs(), opts.TLS.pairs()) {
		fixed = append(fixed, "tls certificates (mode, files, CA, storage)")
	}
	if len(fixed) > 0 {
		s.log.Warn("some changed settings take effect only after a restart", "settings", fixed)
	}
	if s.certs != nil {
		// SIGHUP re-reads certificate files (manual mode); a pair that does
		// not load keeps the old certificates.
		if err := s.certs.reload(); err != nil {
			s.log.Error("certificate files do not load; the old certificates stay", "error", err)
		}
	}
	return s.install(opts)
}

// Listen opens the listeners (and the admin listener) so that a failure to
// bind is reported before anything is served.
func (s *Server) Listen() error {
	cfg := s.opts.Config
	for _, addr := range cfg.Listen {
		ln, err := s.listen(addr)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.lns = append(s.lns, ln)
	}
	for _, addr := range cfg.ListenTLS {
		if s.tlsConf == nil {
			s.closeListeners()
			return fmt.Errorf("server.listen_tls is %s but tls.mode is off", addr)
		}
		ln, err := s.listen(addr)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.lns = append(s.lns, newTLSListener(ln, s.tlsConf, cfg.ReadHeaderTimeout.D(), s.log))
		if addr == cfg.ListenTLS[0] {
			// ":0" in the config: redirects name the port actually bound.
			p := httpsPort(Addrs{ln.Addr().String()})
			s.httpsPort.Store(&p)
		}
	}
	if s.opts.Admin != nil {
		ln, err := net.Listen("tcp", s.opts.Admin.Listen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("opening the admin listener on %s: %w", s.opts.Admin.Listen, err)
		}
		s.adminLn = ln
	}
	return nil
}

func (s *Server) listen(addr string) (net.Listener, error) {
	if path, ok := unixPath(addr); ok {
		// A socket file left by a previous run would make bind fail;
		// remove it only if it really is a socket.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			_ = os.Remove(path)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listening on Unix socket %s: %w", path, err)
		}
		s.unixPaths = append(s.unixPaths, path)
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w (is another server using the port?)", addr, err)
	}
	return ln, nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
}

// Addrs returns the bound addresses of the HTTP listeners, in config order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Serve serves until ctx is done, then stops accepting, waits up to
// server.shutdown_timeout for requests in flight, and returns. Listen must
// have been called.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2*len(s.lns)+1)
	for _, ln := range s.lns {
		go func() { errc <- s.h1.Serve(ln) }()
		if tl, ok := ln.(*tlsListener); ok {
			go func() { errc <- s.h2.Serve(tl.h2) }()
		}
	}
	if s.adminLn != nil {
		s.adminSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		go func() { errc <- s.adminSrv.Serve(s.adminLn) }()
	}
	for _, ln := range s.lns {
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		if errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = nil
		}
	}
	timeout := s.opts.Config.ShutdownTimeout.D()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Refuse new connections before saying so (Shutdown below closes the
	// listeners too, a moment later).
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	s.log.Info("draining in-flight requests", "timeout", timeout.String())
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(sctx) }()
	err := errors.Join(s.h1.Shutdown(sctx), <-h2err)
	if err != nil {
		s.log.Warn("shutdown timeout passed with requests still in flight; closing them", "error", err)
		s.h1.Close()
		s.h2.Close()
	}
	if s.adminSrv != nil {
		// The admin listener stays up during the drain so /status shows it.
		s.adminSrv.Close()
	}
	for _, p := range s.unixPaths {
		_ = os.Remove(p)
	}
	if s.certs != nil {
		s.certs.close()
	}
	return errors.Join(serveErr, err)
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p, ok := s.currentPool().(interface{ Ready() bool }); ok && !p.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("app not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := map[string]any{
			"uptime_seconds": int(time.Since(s.started).Seconds()),
			"listen":         s.addrStrings(),
		}
		if fn := *s.status.Load(); fn != nil {
			for k, v := range fn() {
				st[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	var g prometheus.Gatherer = s.reg
	if s.opts.Metrics != nil {
		g = s.opts.Metrics
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	if s.opts.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

func (s *Server) currentPool() Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Pool
}

func (s *Server) addrStrings() []string {
	var out []string
	for _, a := range s.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// httpsPort is the port redirects point at: that of the first TLS
// listener, or "" for 443 (and for Unix sockets, which a browser cannot
// reach anyway).
func httpsPort(addrs Addrs) string {
	for _, a := range addrs {
		if _, ok := unixPath(a); ok {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err == nil && port != "443" {
			return port
		}
		return ""
	}
	return ""
}
