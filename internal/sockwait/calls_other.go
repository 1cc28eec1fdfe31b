//go:build unix && !linux

package sockwait

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The file calls, which work on any descriptor (calls_linux.go has why
// Linux uses the socket calls).

func rawWrite(fd uintptr, p []byte) (uintptr, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return n, errno
}

func rawRead(fd uintptr, p []byte) (uintptr, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return n, errno
}

// rawWritev writes s.iov[:n].
func (s *Socket) rawWritev(fd uintptr, n int) (uintptr, unix.Errno) {
	w, _, errno := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(n))
	return w, errno
}
