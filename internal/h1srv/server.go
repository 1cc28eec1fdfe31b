package h1srv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/srvbase"
)

// Server serves HTTP/1.x on the connections of one or more listeners. Its
// fields mirror net/http.Server's where they mean the same; set them before
// Serve and do not change them after.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading one request head, from its first
	// byte (the first request of a connection: from the accept). Zero
	// means no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for the
	// next request. Zero means ReadHeaderTimeout; both zero, no limit.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response, from the end of its
	// request head. Zero means no limit; handlers may move it with
	// http.ResponseController.SetWriteDeadline.
	WriteTimeout time.Duration
	// SendTimeout bounds each write to the client, like nginx's
	// send_timeout: a client that takes longer to accept one write of the
	// response fails it and loses the connection. A file sent with
	// sendfile(2) gets sixty times as long. Zero means no limit.
	SendTimeout time.Duration
	// MaxURIBytes bounds the request line; a longer one gets 414. Zero
	// means only MaxHeaderBytes bounds it.
	MaxURIBytes int
	// HandleRejects passes requests the parser refuses to Handler, as a
	// stand-in GET / whose verdict Rejection reports, instead of answering
	// them with a bare status: the handler can then log and count them,
	// and answer in its own words. The connection closes after the answer.
	HandleRejects bool
	// MaxHeaderBytes bounds the request line plus header fields; a larger
	// head gets 431. Zero means 1 MiB (net/http's default).
	MaxHeaderBytes int
	// MaxDrainBytes is how much of a request body the handler left unread
	// is read and discarded so that the connection can be reused; a longer
	// rest closes the connection instead. Zero means 256 KiB (net/http's
	// figure).
	MaxDrainBytes int64
	// CloseCheckDelay is how long a handler must have run, with its
	// request body read, before the server watches the connection for the
	// client leaving (which cancels the request's context). net/http
	// watches every request from the start, at the cost of a goroutine and
	// three system calls each; short requests do not need it. Zero means
	// 10ms; negative means never watch; under 10ms (the sweeper's tick)
	// every request is watched from its start, as net/http does.
	CloseCheckDelay time.Duration
	// BaseContext returns the base context of the requests of ln's
	// connections; nil means context.Background().
	BaseContext func(ln net.Listener) context.Context
	// ConnContext derives a connection's context from the base context;
	// nil means the base context as it is.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ErrorLog receives connection-level errors (a handler panic, a failed
	// accept); nil means slog.Default().
	ErrorLog *slog.Logger

	base      srvbase.Base[*conn]
	clk       clock
	sweepOnce sync.Once
	busy      atomic.Bool  // a bound was armed since the last tick
	watches   atomic.Int64 // close watches started (for tests)
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It is
// net/http's, so callers can treat both servers alike.
var ErrServerClosed = srvbase.ErrServerClosed

const (
	defaultMaxHeaderBytes = 1 << 20
	defaultMaxDrain       = 256 << 10
	defaultCloseDelay     = 10 * time.Millisecond
)

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return defaultMaxHeaderBytes
}

func (s *Server) maxDrain() int64 {
	if s.MaxDrainBytes > 0 {
		return s.MaxDrainBytes
	}
	return defaultMaxDrain
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadHeaderTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.ErrorLog != nil {
		return s.ErrorLog
	}
	return slog.Default()
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, then returns ErrServerClosed. It closes ln when
// it returns.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h1srv: Server.Handler is nil")
	}
	return s.base.Serve(ln, s.hooks(), s.serveConn)
}

func (s *Server) hooks() srvbase.Hooks {
	return srvbase.Hooks{Name: "h1srv", BaseContext: s.BaseContext, ConnContext: s.ConnContext, Log: s.ErrorLog}
}

// ServeConn serves one connection that was accepted elsewhere, on a new
// goroutine, as if Serve had accepted it. ctx is its base context.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.serveConn(srvbase.ConnContext(srvbase.BaseContext(ctx), nc, s.hooks()), nc)
}

// serveConn serves nc, whose requests' context derives from ctx.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := newConn(s, nc)
	c.ctx = ctx
	rctx, cancel := context.WithCancel(c.ctx)
	c.cancel = cancel
	c.blank = *(&http.Request{}).WithContext(rctx)
	s.startSweeper()
	if !s.base.Add(c) {
		cancel()
		nc.Close()
		return
	}
	go c.serve()
}

// Shutdown stops accepting, closes idle connections at once, and waits
// for requests in flight to finish (their connections close after the
// response) or for ctx to be done, whose error it then returns. Hijacked
// connections are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.base.Shutdown(ctx, nil, s.closeIdle)
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.base.Each(func(c *conn) {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	})
	return s.base.Len() == 0
}

// Close closes the listeners and every connection at once, requests in
// flight included. Use Shutdown for a graceful stop.
func (s *Server) Close() error {
	return s.base.Stop(func(c *conn) {
		c.state.Store(stateClosed)
		c.nc.Close()
	})
}
