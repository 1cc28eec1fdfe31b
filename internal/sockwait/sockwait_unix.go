//go:build unix

package sockwait

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket waits on one connection's descriptor. Make one per connection.
// Each method keeps its callback's state in the Socket, so that no call
// allocates: a method must not run twice at once, but Read (or Wait, or
// Alive) and Write may run at the same time from two goroutines, as a
// conn's Read and Write may. WriteWait writes outside the conn's write
// lock, so it must not overlap Write.
type Socket struct {
	raw syscall.RawConn

	// Wait's and Alive's state.
	peekFirst bool
	alive     bool
	buf       [1]byte

	// WriteWait's state.
	out     []byte
	written int
	werr    error
	waiting bool

	// Write's state.
	wa, wb []byte
	nw     int
	wrerr  error
	iov    [2]unix.Iovec

	// Read's state.
	in   []byte
	nin  int
	rerr error

	waitFn, aliveFn, writeFn, readFn, wvFn func(fd uintptr) bool

	// Written, when set, is called once WriteWait's bytes are all out,
	// before the wait: a server marks the connection idle there, so
	// that a graceful shutdown, which closes idle connections, cannot
	// close it before the response went out.
	Written func()
}

// New returns a Socket for sc, or nil when sc has no descriptor to wait
// on.
func New(sc syscall.Conn) *Socket {
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Socket{raw: raw}
	s.waitFn, s.aliveFn, s.writeFn, s.readFn, s.wvFn = s.ready, s.check, s.writeThenWait, s.readRaw, s.writeRaw
	return s
}

// peek is one non-blocking MSG_PEEK of a byte: EAGAIN means nothing is
// queued and the peer has not closed.
func (s *Socket) peek(fd uintptr) syscall.Errno {
	_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&s.buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// ready is Wait's RawConn.Read callback. The peek comes first because the
// poller reports only new arrivals (and RawConn.Read forgets one that came
// before the call), so bytes already queued would never end the wait.
func (s *Socket) ready(fd uintptr) bool {
	if !s.peekFirst {
		return true
	}
	s.peekFirst = false
	return s.peek(fd) != unix.EAGAIN
}

// Wait blocks until input is ready (or an error, a hang-up, or the read
// deadline), without reading it. A nil Socket returns at once.
func (s *Socket) Wait() error {
	if s == nil {
		return nil
	}
	s.peekFirst = true
	return s.raw.Read(s.waitFn)
}

func (s *Socket) check(fd uintptr) bool {
	s.alive = s.peek(fd) == unix.EAGAIN
	return true // never wait: MSG_DONTWAIT makes the raw call safe
}

// Alive reports whether an idle connection is still of use: not closed by
// the peer (EOF) and sent nothing unasked (a 408, say). A nil Socket
// reports true: it cannot tell.
func (s *Socket) Alive() bool {
	if s == nil {
		return true
	}
	s.alive = false
	if err := s.raw.Read(s.aliveFn); err != nil {
		return false
	}
	return s.alive
}

// writeThenWait is WriteWait's RawConn.Read callback: the first call
// writes, and asks to wait; the call after the wakeup ends it.
func (s *Socket) writeThenWait(fd uintptr) bool {
	if s.waiting {
		return true
	}
	for s.written < len(s.out) {
		p := s.out[s.written:]
		if len(p) > rawMax {
			p = p[:rawMax]
		}
		n, errno := rawWrite(fd, p)
		switch errno {
		case 0:
			s.written += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return true // full: the caller writes the rest its own way
		default:
			s.werr = os.NewSyscallError("write", errno)
			return true
		}
	}
	s.waiting = true
	if s.Written != nil {
		s.Written()
	}
	return false
}

// WriteWait writes p and then blocks until input is ready, as one step;
// see the package doc for why and for its one caveat. It returns how much
// of p was written, the write's error, and the wait's error. When the
// socket would block before p is out, it returns early with n < len(p)
// and both errors nil: the caller writes the rest as usual. A nil Socket
// writes nothing and returns (0, nil, nil).
func (s *Socket) WriteWait(p []byte) (n int, werr, rerr error) {
	if s == nil {
		return 0, nil, nil
	}
	s.out, s.written, s.werr, s.waiting = p, 0, nil, false
	rerr = s.raw.Read(s.writeFn)
	n, werr = s.written, s.werr
	s.out, s.werr = nil, nil
	return n, werr, rerr
}

// rawMax bounds one raw read or write. A raw system call keeps its P (no
// entersyscall): cheaper, and the scheduler's monitor never hands the P
// to another thread because a call looked blocked, which on a busy
// server costs a thread wakeup. That is right only for calls that cannot
// block and end soon: a non-blocking socket, and at most this many bytes
// copied.
const rawMax = 256 << 10

func (s *Socket) readRaw(fd uintptr) bool {
	p := s.in
	if len(p) > rawMax {
		p = p[:rawMax]
	}
	for {
		n, errno := rawRead(fd, p)
		switch errno {
		case 0:
			s.nin = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for input
		default:
			s.rerr = os.NewSyscallError("read", errno)
			return true
		}
	}
}

// Read reads like the conn's own Read (waiting for input, honouring the
// read deadline, io.EOF when the peer closed), with a raw system call:
// see rawMax. A nil Socket cannot read; callers read the conn instead.
func (s *Socket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.in, s.nin, s.rerr = p, 0, nil
	err := s.raw.Read(s.readFn)
	n := s.nin
	if err == nil {
		err = s.rerr
	}
	s.in, s.rerr = nil, nil
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// writeRaw is Write's RawConn.Write callback: one writev of what is left
// of wa and wb (at most rawMax bytes) per round, until all is out or the
// socket is full (then Go waits for room and calls again).
func (s *Socket) writeRaw(fd uintptr) bool {
	for len(s.wa)+len(s.wb) > 0 {
		n, budget := 0, rawMax
		for _, p := range [2][]byte{s.wa, s.wb} {
			if len(p) == 0 || budget == 0 {
				continue
			}
			m := min(len(p), budget)
			s.iov[n].Base = &p[0]
			s.iov[n].SetLen(m)
			budget -= m
			n++
		}
		w, errno := s.rawWritev(fd, n)
		s.iov = [2]unix.Iovec{} // hold no pointers into the buffers
		switch errno {
		case 0:
			s.nw += int(w)
			k := min(int(w), len(s.wa))
			s.wa = s.wa[k:]
			s.wb = s.wb[int(w)-k:]
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.wrerr = os.NewSyscallError("writev", errno)
			return true
		}
	}
	return true
}

// Write writes a and then b, waiting for room in the socket as the conn's
// own Write does (and honouring its write deadline), with raw system
// calls: see rawMax. It returns how many bytes went out.
func (s *Socket) Write(a, b []byte) (int, error) {
	s.wa, s.wb, s.nw, s.wrerr = a, b, 0, nil
	err := s.raw.Write(s.wvFn)
	n := s.nw
	if err == nil {
		err = s.wrerr
	}
	s.wa, s.wb, s.wrerr = nil, nil, nil
	return n, err
}
