package h2srv

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
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

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
	done      chan struct{}
	onceDone  sync.Once
	onceClose sync.Once
	workers   workerPool
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It is
// net/http's, so callers can treat the servers alike.
var ErrServerClosed = http.ErrServerClosed

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

func (s *Server) doneChan() chan struct{} {
	s.onceDone.Do(func() { s.done = make(chan struct{}) })
	return s.done
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, then returns ErrServerClosed. It closes ln when
// it returns. The connections must already speak HTTP/2: a *tls.Conn is
// handshaken if it was not, but ALPN is not checked.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h2srv: Server.Handler is nil")
	}
	done := s.doneChan()
	if !s.track(&ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.track(&ln, false)
	defer ln.Close()
	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(ln)
		if base == nil {
			panic("h2srv: BaseContext returned a nil context")
		}
	}
	base = context.WithValue(base, http.ServerContextKey, (*http.Server)(nil))
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("h2srv: accepting a connection failed; retrying", "error", err, "delay", backoff.String())
				select {
				case <-time.After(backoff):
				case <-done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		s.serveConn(base, nc)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// ServeConn serves one connection that was accepted elsewhere, on a new
// goroutine, as if Serve had accepted it. ctx is its base context.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.serveConn(context.WithValue(ctx, http.ServerContextKey, (*http.Server)(nil)), nc)
}

func (s *Server) serveConn(base context.Context, nc net.Conn) {
	ctx := base
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, nc)
		if ctx == nil {
			panic("h2srv: ConnContext returned a nil context")
		}
	}
	c := newConn(s, nc, context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr()))
	if !s.trackConn(c, true) {
		nc.Close()
		return
	}
	go c.serve()
}

func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		if s.listeners == nil {
			s.listeners = make(map[*net.Listener]struct{})
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		if s.conns == nil {
			s.conns = make(map[*conn]struct{})
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) closeListeners() error {
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	return err
}

func (s *Server) closeDone() {
	done := s.doneChan()
	s.onceClose.Do(func() { close(done) })
}

// Shutdown stops accepting, sends every connection GOAWAY (streams the
// client already opened are answered, new ones are not), closes each
// connection once its streams are done, and waits for that or for ctx to
// be done, whose error it then returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	lnerr := s.closeListeners()
	for c := range s.conns {
		c.goAway()
	}
	s.mu.Unlock()
	s.closeDone()

	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.workers.close()
			return lnerr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 500*time.Millisecond)
			t.Reset(wait)
		}
	}
}

// Close closes the listeners and every connection at once, requests in
// flight included (their contexts are canceled). Use Shutdown for a
// graceful stop.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeListeners()
	s.closeDone()
	for c := range s.conns {
		c.nc.Close()
	}
	s.workers.close()
	return err
}
