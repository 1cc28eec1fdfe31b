// Package srvbase is what gatehouse's two HTTP servers, internal/h1srv and
// internal/h2srv, share about listeners and connections: the accept loop
// with its back-off, the sets of listeners and connections that Shutdown
// and Close need, and the graceful stop's wait. Typical usage, inside a
// server:
//
//	type Server struct {
//		base srvbase.Base[*conn]
//		...
//	}
//
//	func (s *Server) Serve(ln net.Listener) error {
//		return s.base.Serve(ln, srvbase.Hooks{Name: "h1srv", ...}, s.serveConn)
//	}
//	// in serveConn: if !s.base.Add(c) { nc.Close(); return }
//	// when a connection ends: s.base.Remove(c)
//
//	func (s *Server) Shutdown(ctx context.Context) error {
//		return s.base.Shutdown(ctx, (*conn).goAway, s.drained)
//	}
package srvbase

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

// ErrServerClosed is net/http's, so callers treat every server alike.
var ErrServerClosed = http.ErrServerClosed

// Hooks are a server's settings the accept loop needs.
type Hooks struct {
	Name string // "h1srv": the prefix of messages
	// BaseContext and ConnContext are the server's fields of those names.
	BaseContext func(ln net.Listener) context.Context
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	Log         *slog.Logger // nil: slog.Default()
}

// Base tracks a server's listeners and connections. The zero value is
// ready to use.
type Base[C comparable] struct {
	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[C]struct{}
	closing   atomic.Bool
	done      chan struct{} // closed by Stop, for the accept back-off
	onceDone  sync.Once
	onceClose sync.Once
}

// Closing reports whether Shutdown or Close has begun.
func (b *Base[C]) Closing() bool { return b.closing.Load() }

func (b *Base[C]) doneChan() chan struct{} {
	b.onceDone.Do(func() { b.done = make(chan struct{}) })
	return b.done
}

// Serve accepts connections on ln and hands each to serve, with the base
// context of its requests (BaseContext, ConnContext and the local
// address applied), until the server stops; then it returns
// ErrServerClosed. It closes ln when it returns. serve must not block.
func (b *Base[C]) Serve(ln net.Listener, h Hooks, serve func(ctx context.Context, nc net.Conn)) error {
	done := b.doneChan()
	if !b.track(&ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer b.track(&ln, false)
	defer ln.Close()
	base := context.Background()
	if h.BaseContext != nil {
		base = h.BaseContext(ln)
		if base == nil {
			panic(h.Name + ": BaseContext returned a nil context")
		}
	}
	base = BaseContext(base)
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if b.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// EMFILE and the like: back off instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn(h.Name+": accepting a connection failed; retrying", "error", err, "delay", backoff.String())
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
		serve(ConnContext(base, nc, h), nc)
	}
}

// BaseContext marks ctx as a server's base context, as net/http does.
func BaseContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, http.ServerContextKey, (*http.Server)(nil))
}

// ConnContext derives the context of nc's requests from base: the
// server's ConnContext, then the local address.
func ConnContext(base context.Context, nc net.Conn, h Hooks) context.Context {
	ctx := base
	if h.ConnContext != nil {
		ctx = h.ConnContext(ctx, nc)
		if ctx == nil {
			panic(h.Name + ": ConnContext returned a nil context")
		}
	}
	return context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr())
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (b *Base[C]) track(ln *net.Listener, add bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if add {
		if b.closing.Load() {
			return false
		}
		if b.listeners == nil {
			b.listeners = make(map[*net.Listener]struct{})
		}
		b.listeners[ln] = struct{}{}
	} else {
		delete(b.listeners, ln)
	}
	return true
}

// Add tracks c; false means the server is stopping and c must be closed.
func (b *Base[C]) Add(c C) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing.Load() {
		return false
	}
	if b.conns == nil {
		b.conns = make(map[C]struct{})
	}
	b.conns[c] = struct{}{}
	return true
}

// Remove stops tracking c.
func (b *Base[C]) Remove(c C) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// Each calls f for every connection, under the lock that Add and Remove
// take: f must be quick and must not call them.
func (b *Base[C]) Each(f func(C)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		f(c)
	}
}

// Len returns the number of connections.
func (b *Base[C]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Stop marks the server closing, closes its listeners (returning the
// first error but net.ErrClosed), and calls each for every connection.
func (b *Base[C]) Stop(each func(C)) error {
	b.closing.Store(true)
	b.mu.Lock()
	var err error
	for ln := range b.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	if each != nil {
		for c := range b.conns {
			each(c)
		}
	}
	b.mu.Unlock()
	done := b.doneChan()
	b.onceClose.Do(func() { close(done) })
	return err
}

// Shutdown is a graceful stop: Stop with atStop, then a wait until drained
// reports true, polled with a back-off up to 500ms as net/http does, or
// until ctx is done, whose error it then returns.
func (b *Base[C]) Shutdown(ctx context.Context, atStop func(C), drained func() bool) error {
	lnerr := b.Stop(atStop)
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if drained() {
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
