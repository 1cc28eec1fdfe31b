package workers

import (
	"errors"
	"io"
	"os"
	"sync"
)

// maxSpool bounds what one response may put in a temp file; a larger one
// passes through as the client reads it.
const maxSpool = 1 << 30

// spool takes a response body off the backend as fast as the backend
// sends it, into an unlinked temp file, while the client reads from that
// file behind it: the backend (and its slot) is free as soon as it has
// sent everything, however slowly the client reads. It is used for
// responses of known length above response_buffer; the client still sees
// bytes as soon as they arrive, so nothing is delayed.
type spool struct {
	f   *os.File
	src io.ReadCloser // the backend's body; closing it aborts the exchange (client gone)

	mu      sync.Mutex
	cond    sync.Cond
	written int64
	read    int64
	done    bool
	err     error // the backend's error, io.EOF when complete
	closed  bool
}

// newSpool starts copying src into a temp file. done is called once, from
// the copying goroutine, when src is finished (ok) or failed.
func newSpool(src io.ReadCloser, done func(ok bool)) (*spool, error) {
	f, err := os.CreateTemp("", "gatehouse-response-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // unlinked: the space goes with the last close
	s := &spool{f: f, src: src}
	s.cond.L = &s.mu
	go s.fill(src, done)
	return s, nil
}

func (s *spool) fill(src io.ReadCloser, done func(ok bool)) {
	buf := make([]byte, 64<<10)
	var err error
	for {
		var n int
		n, err = src.Read(buf)
		if n > 0 {
			s.mu.Lock()
			off, closed := s.written, s.closed
			s.mu.Unlock()
			if closed {
				err = errors.New("client gone")
				break
			}
			if _, werr := s.f.WriteAt(buf[:n], off); werr != nil {
				err = werr
				break
			}
			s.mu.Lock()
			s.written += int64(n)
			s.cond.Broadcast()
			s.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	src.Close()
	s.mu.Lock()
	s.done, s.err = true, err
	closed := s.closed
	s.cond.Broadcast()
	s.mu.Unlock()
	if closed {
		s.f.Close()
	}
	done(err == io.EOF)
}

func (s *spool) Read(p []byte) (int, error) {
	s.mu.Lock()
	for s.read == s.written && !s.done && !s.closed {
		s.cond.Wait()
	}
	switch {
	case s.closed:
		s.mu.Unlock()
		return 0, os.ErrClosed
	case s.read == s.written:
		err := s.err
		s.mu.Unlock()
		return 0, err
	}
	n := int(min(int64(len(p)), s.written-s.read))
	off := s.read
	s.mu.Unlock()
	n, err := s.f.ReadAt(p[:n], off)
	s.mu.Lock()
	s.read += int64(n)
	s.mu.Unlock()
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Close ends the client's side. If the backend is still sending, its
// exchange is cancelled; the file goes when both sides are done.
func (s *spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	done := s.done
	s.cond.Broadcast()
	s.mu.Unlock()
	if done {
		return s.f.Close()
	}
	// A Close during the copy's blocked Read aborts it (the transports'
	// bodies allow that), so the backend is not waited for.
	s.src.Close()
	return nil
}
