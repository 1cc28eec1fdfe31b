//go:build !unix

package h1srv

import "syscall"

// Waiter cannot wait for readiness here; Wait returns at once and the
// caller's read waits, holding its buffer.
type Waiter struct{}

// NewWaiter returns nil: there is nothing to wait on.
func NewWaiter(sc syscall.Conn) *Waiter { return nil }

// Wait returns at once.
func (w *Waiter) Wait() error { return nil }
