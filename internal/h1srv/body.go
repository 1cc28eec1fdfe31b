package h1srv

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// body reads a request body (Content-Length or chunked) from the
// connection's read buffer and then from the socket. Its mutex is there
// because a transport may still be reading a proxied body when the
// handler has returned (net/http's body has one for the same reason).
type body struct {
	c   *conn
	req *http.Request

	mu        sync.Mutex
	chunked   bool
	expect    bool // 100-continue not yet sent
	remaining int64
	cstate    uint8
	eof       bool
	closed    bool // Close was called or the handler is done
	err       error
	trailer   http.Header
	lineBuf   int // bytes of a chunk line already looked at
}

const (
	csSize uint8 = iota
	csData
	csDataEnd
	csTrailer
)

// ErrBodyFraming is returned by a request body whose chunked framing is
// broken.
var ErrBodyFraming = errors.New("h1srv: malformed chunked request body")

const maxChunkLine = 4096

func (b *body) lock()   { b.mu.Lock() }
func (b *body) unlock() { b.mu.Unlock() }

func (b *body) Read(p []byte) (int, error) {
	b.lock()
	defer b.unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		b.c.sendContinue()
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readCounted(p)
		if err == nil && b.remaining == 0 {
			err = io.EOF
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
		b.c.bodyEOF()
	case err != nil:
		b.err = err
		b.c.markBroken()
	}
	return n, err
}

// readCounted reads up to b.remaining bytes (a body or a chunk): from the
// buffer if it holds any, else straight from the socket into p.
func (b *body) readCounted(p []byte) (int, error) {
	c := b.c
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
		b.remaining -= int64(n)
		return n, nil
	}
	n, err := c.nc.Read(p)
	for n == 0 && err != nil && c.spurious(err) {
		n, err = c.nc.Read(p)
	}
	b.remaining -= int64(n)
	if n > 0 {
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, err
}

func (b *body) readChunked(p []byte) (int, error) {
	for {
		switch b.cstate {
		case csData:
			if len(p) == 0 {
				return 0, nil
			}
			n, err := b.readCounted(p)
			if b.remaining == 0 {
				b.cstate = csDataEnd
			}
			return n, err
		case csSize:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			size, ok := ascii.ParseChunkSize(line)
			if !ok {
				return 0, ErrBodyFraming
			}
			if size == 0 {
				b.cstate = csTrailer
			} else {
				b.cstate, b.remaining = csData, size
			}
		case csDataEnd:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			if len(line) != 0 {
				return 0, ErrBodyFraming
			}
			b.cstate = csSize
		case csTrailer:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			if len(line) == 0 {
				return 0, io.EOF
			}
			if err := b.addTrailer(line); err != nil {
				return 0, err
			}
		}
	}
}

// line returns the next line of chunk framing (without its line end) from
// the read buffer; it is valid until the next read.
func (b *body) line() ([]byte, error) {
	c := b.c
	for {
		buf := c.rbuf[c.rpos:c.rend]
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			c.rpos += i + 1
			line := buf[:i]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if bytes.IndexByte(line, '\r') >= 0 {
				return nil, ErrBodyFraming
			}
			return line, nil
		}
		if len(buf) > maxChunkLine {
			return nil, ErrBodyFraming
		}
		if err := c.fillRead(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func (b *body) addTrailer(line []byte) error {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !ascii.IsToken(line[:i]) {
		return ErrBodyFraming
	}
	b.lineBuf += len(line)
	if b.lineBuf > b.c.srv.maxHeaderBytes() {
		return ErrBodyFraming
	}
	canonicalize(line[:i])
	key := string(line[:i])
	switch key {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
		return nil // framing fields are not trailers (RFC 9110 6.5.1)
	}
	if b.trailer == nil {
		b.trailer = make(http.Header)
		b.req.Trailer = b.trailer
	}
	b.trailer[key] = append(b.trailer[key], string(bytes.Trim(line[i+1:], " \t")))
	return nil
}

// declareTrailers fills the trailer map with the names the Trailer field
// announced (net/http does the same: the keys are there, the values come
// at the end of the body).
func (b *body) declareTrailers(h http.Header) {
	trailerNames(h["Trailer"], func(name string) {
		if b.trailer == nil {
			b.trailer = make(http.Header)
		}
		b.trailer[http.CanonicalHeaderKey(name)] = nil
	})
}

// Close stops further reads; what is left is read away (or the
// connection closed) when the handler returns.
func (b *body) Close() error {
	b.lock()
	b.closed = true
	b.unlock()
	return nil
}

func (b *body) finished() bool {
	b.lock()
	defer b.unlock()
	return b.eof
}

// drain reads what the handler left of the body, up to max bytes, so the
// connection can carry the next request. It reports whether it got to the
// end. Reads after it fail.
func (b *body) drain(max int64) bool {
	b.lock()
	defer b.unlock()
	b.closed = true
	if b.eof {
		return true
	}
	if b.err != nil || b.expect {
		// A client waiting for 100 Continue sends no body: nothing to
		// read, and the connection cannot be reused (RFC 9110 10.1.1).
		return false
	}
	if !b.chunked && b.remaining > max {
		return false
	}
	c := b.c
	d := c.srv.ReadHeaderTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	c.setReadDeadline(time.Now().Add(d))
	var scratch [2048]byte
	var n int64
	for n <= max {
		m, err := b.readLocked(scratch[:])
		n += int64(m)
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// sendContinue answers Expect: 100-continue on the first body read,
// unless the response has begun.
func (c *conn) sendContinue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resp.committed || c.hijacked {
		return
	}
	if _, err := c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
		c.broken.Store(true)
	}
}

func (c *conn) markBroken() { c.broken.Store(true) }

// fillRead is fill for body reads: it must not write (the handler may be
// writing the response on another goroutine), so the connection flushes
// pending output before the handler starts instead.
func (c *conn) fillRead() error {
	if c.rbuf == nil {
		c.takeRead()
	}
	if c.rpos == c.rend {
		c.rpos, c.rend = 0, 0
	}
	if c.rend == len(c.rbuf) {
		if c.rpos == 0 {
			return ErrBodyFraming // a line longer than the buffer
		}
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	return c.readMore()
}
