package h1

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peeker returns a check that an idle connection is still open: one
// non-blocking recv with MSG_PEEK. EOF means the backend closed it (its
// keep-alive timeout, a restart); bytes mean it sent something unasked (a
// 408), and either way the connection is of no further use. This catches
// most stale connections before a request is written to them, which
// matters for a POST: it cannot be retried once written. It returns nil for
// connections without a file descriptor.
func peeker(nc net.Conn) func() bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var (
		buf   [1]byte
		alive bool
	)
	check := func(fd uintptr) bool {
		_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		alive = errno == unix.EAGAIN
		return true // never wait for readiness; MSG_DONTWAIT makes the raw call safe
	}
	return func() bool {
		alive = false
		if err := raw.Read(check); err != nil {
			return false
		}
		return alive
	}
}
