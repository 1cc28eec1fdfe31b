//go:build !unix

package h1srv

import "syscall"

// WaitRead returns at once where readiness cannot be waited for; the
// caller's read then waits, holding its buffer.
func WaitRead(sc syscall.Conn) error { return nil }
