//go:build unix

package h1srv

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Waiter blocks until a socket has input (or an error, a hang-up, or the
// read deadline), without reading it, so that a connection waiting for its
// next request holds no buffer. Make one per connection: it allocates
// nothing per wait.
type Waiter struct {
	raw   syscall.RawConn
	first bool
	buf   [1]byte
	fn    func(fd uintptr) bool
}

// NewWaiter returns a Waiter for sc, or nil when sc has no descriptor to
// wait on (then the caller's read waits instead).
func NewWaiter(sc syscall.Conn) *Waiter {
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &Waiter{raw: raw}
	w.fn = w.ready
	return w
}

// ready is the RawConn.Read callback. One non-blocking MSG_PEEK looks
// first: the poller reports only new arrivals (and RawConn.Read forgets
// one that came before the call), so bytes already queued would never end
// the wait.
func (w *Waiter) ready(fd uintptr) bool {
	if !w.first {
		return true
	}
	w.first = false
	_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno != unix.EAGAIN
}

// Wait blocks until input is ready. A nil Waiter returns at once.
func (w *Waiter) Wait() error {
	if w == nil {
		return nil
	}
	w.first = true
	return w.raw.Read(w.fn)
}
