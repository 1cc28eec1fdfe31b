package srvbase

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Serve hands accepted connections over with the base context marked,
// Stop ends Serve with ErrServerClosed, and Shutdown waits for drained.
func TestServeStopAndShutdown(t *testing.T) {
	var b Base[net.Conn]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan net.Conn, 1)
	served := make(chan error, 1)
	go func() {
		served <- b.Serve(ln, Hooks{Name: "test"}, func(ctx context.Context, nc net.Conn) {
			if ctx.Value(http.LocalAddrContextKey) == nil || ctx.Value(http.ServerContextKey) == nil {
				t.Error("connection context lacks the server's values")
			}
			if !b.Add(nc) {
				nc.Close()
				return
			}
			got <- nc
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-got
	if b.Len() != 1 {
		t.Fatalf("Len = %d, want 1", b.Len())
	}

	var released atomic.Bool
	go func() {
		time.Sleep(50 * time.Millisecond)
		released.Store(true)
		b.Remove(sc)
		sc.Close()
	}()
	var stopped int
	err = b.Shutdown(context.Background(), func(net.Conn) { stopped++ }, func() bool { return b.Len() == 0 })
	if err != nil || !released.Load() || stopped != 1 {
		t.Fatalf("Shutdown = %v, released %v, atStop calls %d", err, released.Load(), stopped)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if b.Add(c) {
		t.Error("Add after Stop succeeded")
	}

	// A context that ends first ends the wait with its error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx, nil, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a short context = %v", err)
	}
}
