package h2srv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/srvbase"
)

// Server serves HTTP/2 (RFC 9113) on connections whose protocol was agreed
// beforehand: TLS with ALPN "h2", or cleartext with prior knowledge. Its
// fields mirror net/http.Server's where they mean the same; set them before
// Serve and do not change them after.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds the wait for the client's connection
	// preface and first SETTINGS, from the accept. Zero means IdleTimeout;
	// both zero, no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a connection without open streams is kept
	// before it gets GOAWAY and is closed. It also bounds one write to the
	// client: one that reads nothing for that long is disconnected. Zero
	// means no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header list as HPACK counts it
	// (name + value + 32 per field); it is advertised as
	// SETTINGS_MAX_HEADER_LIST_SIZE and a larger request gets 431. Zero
	// means 1 MiB (net/http's default).
	MaxHeaderBytes int
	// MaxConcurrentStreams is how many streams a client may have open at
	// once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with
	// REFUSED_STREAM. It also bounds the handlers running per connection:
	// streams the client reset still count until their handler returns,
	// and a client that piles up more than four times as many is cut off
	// (CVE-2023-44487, "rapid reset"). Zero means 250, as net/http.
	MaxConcurrentStreams uint32
	// BaseContext returns the base context of the requests of ln's
	// connections; nil means context.Background().
	BaseContext func(ln net.Listener) context.Context
	// ConnContext derives a connection's context from the base context;
	// nil means the base context as it is.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ErrorLog receives connection-level errors (a handler panic, a failed
	// accept); nil means slog.Default().
	ErrorLog *slog.Logger

	base    srvbase.Base[*conn]
	workers workerPool
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It is
// net/http's, so callers can treat the servers alike.
var ErrServerClosed = srvbase.ErrServerClosed

const (
	defaultMaxHeaderBytes = 1 << 20
	defaultMaxStreams     = 250
)

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return defaultMaxHeaderBytes
}

func (s *Server) maxStreams() int {
	if s.MaxConcurrentStreams > 0 {
		return int(s.MaxConcurrentStreams)
	}
	return defaultMaxStreams
}

func (s *Server) prefaceTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.IdleTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.ErrorLog != nil {
		return s.ErrorLog
	}
	return slog.Default()
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, then returns ErrServerClosed. It closes ln when
// it returns. The connections must already speak HTTP/2: a *tls.Conn is
// handshaken if it was not, but ALPN is not checked.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h2srv: Server.Handler is nil")
	}
	return s.base.Serve(ln, s.hooks(), s.serveConn)
}

func (s *Server) hooks() srvbase.Hooks {
	return srvbase.Hooks{Name: "h2srv", BaseContext: s.BaseContext, ConnContext: s.ConnContext, Log: s.ErrorLog}
}

// ServeConn serves one connection that was accepted elsewhere, on a new
// goroutine, as if Serve had accepted it. ctx is its base context.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.serveConn(srvbase.ConnContext(srvbase.BaseContext(ctx), nc, s.hooks()), nc)
}

// serveConn serves nc, whose streams' contexts derive from ctx.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := newConn(s, nc, ctx)
	if !s.base.Add(c) {
		nc.Close()
		return
	}
	go c.serve()
}

// Shutdown stops accepting, sends every connection GOAWAY (streams the
// client already opened are answered, new ones are not), closes each
// connection once its streams are done, and waits for that or for ctx to
// be done, whose error it then returns.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.base.Shutdown(ctx, (*conn).goAway, func() bool {
		if s.base.Len() > 0 {
			return false
		}
		s.workers.close()
		return true
	})
}

// Close closes the listeners and every connection at once, requests in
// flight included (their contexts are canceled). Use Shutdown for a
// graceful stop.
func (s *Server) Close() error {
	err := s.base.Stop(func(c *conn) { c.nc.Close() })
	s.workers.close()
	return err
}
