//go:build !unix

package sockwait

import (
	"io"
	"syscall"
)

// Socket cannot wait for readiness here: New returns nil, and a nil
// Socket's methods return at once, so callers fall back to plain reads.
type Socket struct{ Written func() }

// New returns nil: there is nothing to wait on.
func New(sc syscall.Conn) *Socket { return nil }

// Wait returns at once.
func (s *Socket) Wait() error { return nil }

// Alive reports true: it cannot tell.
func (s *Socket) Alive() bool { return true }

// WriteWait writes nothing: the caller writes p and reads as usual.
func (s *Socket) WriteWait(p []byte) (n int, werr, rerr error) { return 0, nil, nil }

// Read is never called: New returns nil here.
func (s *Socket) Read(p []byte) (int, error) { return 0, io.EOF }

// Write is never called: New returns nil here.
func (s *Socket) Write(a, b []byte) (int, error) { return 0, io.ErrClosedPipe }
