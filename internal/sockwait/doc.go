// Package sockwait waits on a socket's readiness without Go's read, so
// that a connection can wait holding no buffer, and so that a request and
// the wait for its answer cost two system calls instead of three.
//
// Typical use, for a connection that sends something and then waits for
// the peer's reply:
//
//	s := sockwait.New(tcpConn) // nil when there is no descriptor
//	n, werr, rerr := s.WriteWait(request)
//	switch {
//	case werr != nil: // the write failed
//	case n < len(request) && rerr == nil: // socket full: write the rest, then read as usual
//	case rerr != nil: // the wait failed: deadline, or the conn was closed
//	default: // input is ready: the next read returns it without blocking
//	}
//
// Why it saves a system call: Go's read first tries read(2) and, on
// EAGAIN, parks until the poller reports input, then reads again. When
// the caller has just written a request, the first read all but always
// finds nothing. WriteWait writes inside syscall.RawConn.Read's callback,
// after the poller's readiness flag was cleared for the call, so any
// input the write provokes is seen by the poller, and it parks straight
// away. Input that came before the write (and was not read) is not seen;
// callers bound the wait with a read deadline, or use WriteWait only
// where the peer sends nothing unasked.
//
// Wait blocks until input is ready without reading it (one MSG_PEEK
// first, since bytes queued before the call would not wake it), and Alive
// checks that an idle connection was neither closed nor sent to.
package sockwait
