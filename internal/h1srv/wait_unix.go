//go:build unix

package h1srv

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WaitRead blocks until the socket behind sc has input (or an error, a
// hang-up, or the read deadline), without reading it, so that a connection
// waiting for its next request holds no buffer. One non-blocking MSG_PEEK
// looks first: the poller reports only new arrivals (and RawConn.Read
// forgets one that came before the call), so bytes already queued would
// never end the wait.
func WaitRead(sc syscall.Conn) error {
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil // no descriptor: the read itself will wait
	}
	first := true
	var buf [1]byte
	return raw.Read(func(fd uintptr) bool {
		if !first {
			return true
		}
		first = false
		_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		return errno != unix.EAGAIN
	})
}
