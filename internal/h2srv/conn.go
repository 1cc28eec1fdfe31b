package h2srv

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
)

// wbufMax is how much output may wait in a connection's buffer before a
// handler writing a body waits for the writer: with the buffer being
// written, at most twice this is held per connection.
const wbufMax = 64 << 10

// ctrlMax bounds output the client makes us queue without reading it
// (PING and SETTINGS acknowledgements, resets): a client that does not read
// is cut off instead of growing the buffer.
const ctrlMax = 1 << 20

// lingerTime is how long a connection that sent GOAWAY keeps reading (and
// discarding) before it closes, so that the GOAWAY is not lost to a TCP
// reset caused by unread input.
const lingerTime = time.Second

var (
	errConnClosed   = errors.New("h2srv: connection closed")
	errStreamReset  = errors.New("h2srv: stream reset by the client")
	errStreamClosed = errors.New("h2srv: stream closed")
	errBodyClosed   = errors.New("h2srv: read on closed body")
)

// conn is one HTTP/2 connection. One goroutine reads and processes frames
// (serve); one writes (writeLoop); each request runs its handler on its
// own goroutine. Output of every kind is appended, under mu, to wbuf,
// which the writer takes whole and writes with one call: the responses
// that handlers finish while a write is under way go out together in the
// next.
type conn struct {
	srv        *Server
	nc         net.Conn
	ctx        context.Context
	tlsState   *tls.ConnectionState
	remoteAddr string
	maxHeader  int
	maxStreams int

	// Read side, owned by serve.
	rbuf       []byte
	rbufp      *[]byte // rbuf's pool entry
	rpos, rend int
	dec        *hpack.Decoder
	fields     []hpack.HeaderField
	hdrID      uint32 // stream of the header block being read, 0 if none
	hdrKind    int
	hdrEnd     bool // the block's HEADERS had END_STREAM
	hdrErr     ErrCode
	hdrBytes   int
	hdrSize    int
	hdrTooBig  bool
	canon      map[string]string // lowercase field name -> canonical key
	sawFirst   bool              // the first SETTINGS arrived
	resets     int               // streams the client reset while their handlers ran

	wake       chan struct{}
	writerDone chan struct{}
	running    atomic.Int32 // handlers running, for the writer's batching

	mu          sync.Mutex
	cond        sync.Cond // waits for send credit, buffer room, close
	streams     map[uint32]*stream
	queue       []*stream // streams waiting for a handler slot
	nrunning    int       // handlers running, reset streams included
	maxClientID uint32
	nanswered   int // streams in streams whose response is complete
	sendWindow  int64
	peerWindow  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame   int   // the client's SETTINGS_MAX_FRAME_SIZE
	recvWindow  int64 // what all streams may still send us
	recvUnacked int64 // credit consumed but not yet returned
	wbuf        []byte
	wspare      []byte
	sizeUpdate  bool              // the next header block starts with a table size update
	prefix      map[string]string // header key -> HPACK field opening (fieldPrefix)
	goAwaySent  bool
	closing     bool // no output after wbuf; the writer closes when done
	closed      bool // serve has returned
	idleArmed   bool
	// The streams we reset last (RST_STREAM sent), whose frames in flight
	// are ignored rather than taken for protocol errors.
	recentResets [32]uint32
	nresets      uint32
	untracked    bool
}

func newConn(s *Server, nc net.Conn, ctx context.Context) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		remoteAddr: nc.RemoteAddr().String(),
		maxHeader:  s.maxHeaderBytes(),
		maxStreams: s.maxStreams(),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		streams:    make(map[uint32]*stream),
		sendWindow: initialPeerWindow,
		peerWindow: initialPeerWindow,
		peerFrame:  defaultMaxFrame,
		recvWindow: connWindow,
		canon:      make(map[string]string),
		prefix:     make(map[string]string),
	}
	// Not made cancelable: every stream's context is canceled by itself
	// (reset, handler done, teardown), and children of a plain context
	// cost no registration with a parent.
	c.ctx = ctx
	c.cond.L = &c.mu
	c.sizeUpdate = true
	c.dec = hpack.NewDecoder(4096, c.onField)
	c.dec.SetMaxStringLength(c.maxHeader)
	return c
}

// serve runs the connection: handshake (if not done), preface, frames.
func (c *conn) serve() {
	defer c.teardown()
	if tc, ok := c.nc.(*tls.Conn); ok {
		if d := c.srv.prefaceTimeout(); d > 0 {
			_ = c.nc.SetDeadline(time.Now().Add(d))
		}
		if err := tc.HandshakeContext(c.ctx); err != nil {
			close(c.writerDone)
			return
		}
		_ = c.nc.SetWriteDeadline(time.Time{})
		st := tc.ConnectionState()
		c.tlsState = &st
	} else if d := c.srv.prefaceTimeout(); d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.rbufp = rbufPool.Get().(*[]byte)
	c.rbuf = *c.rbufp

	// Our SETTINGS and the connection window go out at once, before the
	// client's preface is read (RFC 9113, section 3.4).
	c.mu.Lock()
	c.wbuf = appendFrameHeader(c.wbuf, 3*6, frameSettings, 0, 0)
	c.wbuf = appendSetting(c.wbuf, settingMaxConcurrentStreams, uint32(c.maxStreams))
	c.wbuf = appendSetting(c.wbuf, settingInitialWindowSize, streamWindow)
	c.wbuf = appendSetting(c.wbuf, settingMaxHeaderListSize, uint32(c.maxHeader))
	c.wbuf = appendWindowUpdate(c.wbuf, 0, connWindow-initialPeerWindow)
	c.mu.Unlock()
	go c.writeLoop()
	c.wakeWriter()

	if err := c.fill(len(clientPreface)); err != nil {
		return
	}
	if string(c.rbuf[c.rpos:c.rpos+len(clientPreface)]) != clientPreface {
		c.fail(ErrCodeProtocol)
		return
	}
	c.rpos += len(clientPreface)
	err := c.readFrames()
	var ce connError
	if errors.As(err, &ce) {
		c.srv.logger().Debug("h2srv: connection error", "remote_addr", c.remoteAddr, "error", err)
		c.fail(ce.code)
	}
}

// fail sends GOAWAY with code and closes the connection after a linger.
func (c *conn) fail(code ErrCode) {
	c.mu.Lock()
	if !c.closing {
		c.wbuf = appendGoAway(c.wbuf, c.maxClientID, code)
		c.goAwaySent = true
		c.closing = true
	}
	c.mu.Unlock()
	c.wakeWriter()
	c.linger()
}

// linger reads and discards input for up to lingerTime or until the client
// closes, so that a close with unread input does not reset the connection
// before the client has read our last frames.
func (c *conn) linger() {
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [4096]byte
	for {
		if _, err := c.nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// teardown ends the connection: every stream's context is canceled, the
// writer flushes what it can, the socket closes.
func (c *conn) teardown() {
	c.mu.Lock()
	c.closing = true
	c.closed = true
	for _, st := range c.streams {
		st.bodyErr = errConnClosed
		st.resetLocked()
		c.removeLocked(st)
	}
	for _, st := range c.queue {
		c.streamPool(st)
	}
	c.queue = nil
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wakeWriter()
	_ = c.nc.SetWriteDeadline(time.Now().Add(lingerTime))
	select {
	case <-c.writerDone:
	case <-time.After(2 * lingerTime):
		// The writer moved its deadline as we set ours; closing the
		// socket ends its write.
	}
	c.nc.Close()
	<-c.writerDone
	if c.rbufp != nil {
		rbufPool.Put(c.rbufp)
		c.rbuf, c.rbufp = nil, nil
	}
	c.mu.Lock()
	last := c.nrunning == 0 && !c.untracked
	if last {
		c.untracked = true
	}
	c.mu.Unlock()
	if last {
		c.srv.base.Remove(c)
	}
}

// goAway starts a graceful close (Server.Shutdown, or the client's GOAWAY):
// streams already opened are served, new ones ignored.
func (c *conn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.goAwaySent && !c.closing {
		c.wbuf = appendGoAway(c.wbuf, c.maxClientID, ErrCodeNo)
		c.goAwaySent = true
	}
	c.maybeDoneLocked()
	c.wakeWriter()
}

// idleLocked reports whether no request is in progress: no handler runs
// or waits, and every open stream has its response complete (a client
// that never ends its request body does not keep the connection busy).
func (c *conn) idleLocked() bool {
	return len(c.streams) == c.nanswered && c.nrunning == 0 && len(c.queue) == 0
}

// maybeDoneLocked closes a connection that sent GOAWAY once nothing is left.
func (c *conn) maybeDoneLocked() {
	if c.goAwaySent && !c.closing && c.idleLocked() {
		c.closing = true
		c.wakeWriter()
	}
}

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes wbuf whenever there is something in it, one write per
// batch. When handlers are still running it yields once before taking the
// buffer, so that responses about to be finished join the same write.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	for range c.wake {
		if c.running.Load() > 0 {
			runtime.Gosched()
		}
		for {
			c.mu.Lock()
			buf := c.wbuf
			if len(buf) == 0 {
				closing := c.closing
				c.mu.Unlock()
				if closing {
					c.closeWrite()
					return
				}
				break
			}
			c.wbuf = c.wspare[:0]
			c.wspare = nil
			closing := c.closing
			c.mu.Unlock()
			// A client that reads nothing for as long as an idle
			// connection may live is gone; its handlers are released.
			// Closing, the last frames get lingerTime. The deadline is
			// moved before every write: one left from an earlier write
			// would expire in the middle of this one.
			d := c.srv.IdleTimeout
			if closing {
				d = lingerTime
			}
			if d > 0 {
				_ = c.nc.SetWriteDeadline(time.Now().Add(d))
			}
			_, err := c.nc.Write(buf)
			c.mu.Lock()
			// The written buffer is kept for the next batch; an idle
			// connection keeps only a small one.
			if cap(buf) <= 4<<10 || cap(buf) <= 2*wbufMax && (len(c.streams) > 0 || c.nrunning > 0) {
				c.wspare = buf[:0]
			}
			if err != nil {
				c.closing = true
				c.wbuf = nil
				c.cond.Broadcast()
				c.mu.Unlock()
				c.closeAfterWriteError()
				return
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}
}

// closeAfterWriteError closes a connection whose write failed. Over TLS
// the socket underneath is closed, not the tls.Conn: a write that timed
// out may have sent part of a record, and the close_notify alert
// tls.Conn.Close would add after it reaches the client as a record that
// fails to decrypt ("bad record MAC") instead of a plain end.
func (c *conn) closeAfterWriteError() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	c.nc.Close()
}

// closeWrite ends our side after the last frames: the client sees the
// close, and serve's read ends after lingerTime at most.
func (c *conn) closeWrite() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
}

// fill makes at least n bytes available in rbuf[rpos:rend], reading as
// needed. Before a read that may block, the batch's output is handed to
// the writer. A connection waits for input without its read buffer (20
// KiB): it reads the first bytes into a small array and takes a buffer
// from a pool once they are there (a TLS connection keeps the rest of the
// record it decrypted, so the next read makes no system call).
func (c *conn) fill(n int) error {
	for c.rend-c.rpos < n {
		if c.rpos > 0 && c.rbuf != nil && c.rpos+n > len(c.rbuf) {
			c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
			c.rpos = 0
		}
		if err := c.endBatch(); err != nil {
			return err
		}
		var m int
		var err error
		if c.rpos == c.rend && c.rbuf != nil {
			// Nothing buffered: the read may wait long (a handler may
			// finish meanwhile and leave the connection idle), so it
			// waits without the buffer.
			c.rpos, c.rend = 0, 0
			rbufPool.Put(c.rbufp)
			c.rbuf, c.rbufp = nil, nil
		}
		if c.rbuf == nil {
			var small [frameHeaderLen]byte
			m, err = c.nc.Read(small[:])
			c.rbufp = rbufPool.Get().(*[]byte)
			c.rbuf = *c.rbufp
			c.rend = copy(c.rbuf, small[:m])
		} else {
			m, err = c.nc.Read(c.rbuf[c.rend:])
			c.rend += m
		}
		if err != nil {
			if c.rend-c.rpos >= n {
				return nil
			}
			if isTimeout(err) && c.idleTimedOut() {
				return err
			} else if isTimeout(err) {
				continue
			}
			return err
		}
	}
	return nil
}

var rbufPool = sync.Pool{New: func() any {
	b := make([]byte, frameHeaderLen+defaultMaxFrame+4096)
	return &b
}}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// idleTimedOut decides on a read deadline that passed: the preface
// deadline, the idle timeout with no stream open, or a linger; it reports
// whether the connection should end (having sent GOAWAY when idle).
func (c *conn) idleTimedOut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || !c.sawFirst {
		return true
	}
	if c.idleLocked() {
		if !c.goAwaySent {
			c.wbuf = appendGoAway(c.wbuf, c.maxClientID, ErrCodeNo)
			c.goAwaySent = true
		}
		c.closing = true
		c.wakeWriter()
		return true
	}
	// A stream opened as the deadline passed.
	c.idleArmed = false
	_ = c.nc.SetReadDeadline(time.Time{})
	return false
}

// errLinger: the connection is closing; serve lingers, then ends.
var errLinger = errors.New("h2srv: closing")

// endBatch runs before every read that may block: it hands pending output
// to the writer, so control frames answering a batch of input go out in
// one write; it stops a closing connection and one whose client makes us
// queue output it does not read.
func (c *conn) endBatch() error {
	c.mu.Lock()
	pending := len(c.wbuf) > 0
	over := len(c.wbuf) > ctrlMax
	closing := c.closing
	c.mu.Unlock()
	if pending {
		c.wakeWriter()
	}
	if over {
		return connError{ErrCodeEnhanceYourCalm, "client does not read its control frames"}
	}
	if closing && c.sawFirst {
		return errLinger
	}
	return nil
}

// armIdleLocked starts the idle timeout when the last stream is done.
func (c *conn) armIdleLocked() {
	if c.srv.IdleTimeout <= 0 || c.idleArmed || c.closing {
		return
	}
	if c.idleLocked() {
		c.idleArmed = true
		_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	}
}

func (c *conn) disarmIdleLocked() {
	if c.idleArmed {
		c.idleArmed = false
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// readFrames reads and processes frames until the connection ends; a
// connError return asks for GOAWAY.
func (c *conn) readFrames() error {
	// The preface deadline stays until the first SETTINGS; then the idle
	// timeout takes over.
	for {
		if err := c.fill(frameHeaderLen); err != nil {
			if err == errLinger {
				c.linger()
				return nil
			}
			return err
		}
		fh := parseFrameHeader(c.rbuf[c.rpos:])
		if fh.length > defaultMaxFrame {
			return connError{ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
		}
		if err := c.fill(frameHeaderLen + int(fh.length)); err != nil {
			if err == errLinger {
				c.linger()
				return nil
			}
			return err
		}
		p := c.rbuf[c.rpos+frameHeaderLen : c.rpos+frameHeaderLen+int(fh.length)]
		c.rpos += frameHeaderLen + int(fh.length)
		if c.rpos == c.rend {
			c.rpos, c.rend = 0, 0
		}
		if !c.sawFirst {
			if fh.typ != frameSettings || fh.flags&flagAck != 0 {
				return connError{ErrCodeProtocol, "first frame is not SETTINGS"}
			}
			c.sawFirst = true
			c.mu.Lock()
			_ = c.nc.SetReadDeadline(time.Time{})
			c.armIdleLocked()
			c.mu.Unlock()
		}
		if err := c.processFrame(fh, p); err != nil {
			return err
		}
	}
}

func (c *conn) processFrame(fh frameHeader, p []byte) error {
	if c.hdrID != 0 && (fh.typ != frameContinuation || fh.streamID != c.hdrID) {
		return connError{ErrCodeProtocol, "frame inside a header block"}
	}
	switch fh.typ {
	case frameData:
		return c.onData(fh, p)
	case frameHeaders:
		return c.onHeaders(fh, p)
	case framePriority:
		return c.onPriority(fh, p)
	case frameRSTStream:
		return c.onRSTStream(fh, p)
	case frameSettings:
		return c.onSettings(fh, p)
	case framePushPromise:
		return connError{ErrCodeProtocol, "PUSH_PROMISE from a client"}
	case framePing:
		return c.onPing(fh, p)
	case frameGoAway:
		return c.onGoAway(fh, p)
	case frameWindowUpdate:
		return c.onWindowUpdate(fh, p)
	case frameContinuation:
		if c.hdrID == 0 {
			return connError{ErrCodeProtocol, "CONTINUATION without HEADERS"}
		}
		return c.headerFragment(p, fh.flags&flagEndHeaders != 0)
	}
	return nil // unknown frame types are ignored (section 5.5)
}

func (c *conn) onSettings(fh frameHeader, p []byte) error {
	if fh.streamID != 0 {
		return connError{ErrCodeProtocol, "SETTINGS on a stream"}
	}
	if fh.flags&flagAck != 0 {
		if len(p) != 0 {
			return connError{ErrCodeFrameSize, "SETTINGS ack with a payload"}
		}
		return nil
	}
	if len(p)%6 != 0 {
		return connError{ErrCodeFrameSize, "SETTINGS length not a multiple of 6"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; len(p) > 0; p = p[6:] {
		id := binary.BigEndian.Uint16(p)
		v := binary.BigEndian.Uint32(p[2:])
		switch id {
		case settingHeaderTableSize:
			_ = v // our table stays empty; the next block says so again
			c.sizeUpdate = true
		case settingEnablePush:
			if v > 1 {
				return connError{ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1"}
			}
		case settingInitialWindowSize:
			if v > maxWindow {
				return connError{ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large"}
			}
			delta := int64(v) - c.peerWindow
			c.peerWindow = int64(v)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return connError{ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window"}
				}
			}
		case settingMaxFrameSize:
			if v < defaultMaxFrame || v > maxFrameSizeLimit {
				return connError{ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE out of range"}
			}
			c.peerFrame = int(v)
		}
	}
	c.wbuf = appendFrameHeader(c.wbuf, 0, frameSettings, flagAck, 0)
	c.cond.Broadcast()
	return nil
}

func (c *conn) onPing(fh frameHeader, p []byte) error {
	if fh.streamID != 0 {
		return connError{ErrCodeProtocol, "PING on a stream"}
	}
	if len(p) != 8 {
		return connError{ErrCodeFrameSize, "PING length not 8"}
	}
	if fh.flags&flagAck != 0 {
		return nil
	}
	c.mu.Lock()
	c.wbuf = appendFrameHeader(c.wbuf, 8, framePing, flagAck, 0)
	c.wbuf = append(c.wbuf, p...)
	c.mu.Unlock()
	return nil
}

func (c *conn) onGoAway(fh frameHeader, p []byte) error {
	if fh.streamID != 0 {
		return connError{ErrCodeProtocol, "GOAWAY on a stream"}
	}
	if len(p) < 8 {
		return connError{ErrCodeFrameSize, "GOAWAY shorter than 8"}
	}
	c.goAway()
	return nil
}

func (c *conn) onPriority(fh frameHeader, p []byte) error {
	if fh.streamID == 0 {
		return connError{ErrCodeProtocol, "PRIORITY on stream 0"}
	}
	if len(p) != 5 {
		c.mu.Lock()
		c.resetLocked(fh.streamID, ErrCodeFrameSize)
		c.mu.Unlock()
		return nil
	}
	if binary.BigEndian.Uint32(p)&(1<<31-1) == fh.streamID {
		c.mu.Lock()
		c.resetLocked(fh.streamID, ErrCodeProtocol)
		c.mu.Unlock()
	}
	return nil
}

func (c *conn) onRSTStream(fh frameHeader, p []byte) error {
	if len(p) != 4 {
		return connError{ErrCodeFrameSize, "RST_STREAM length not 4"}
	}
	if fh.streamID == 0 {
		return connError{ErrCodeProtocol, "RST_STREAM on stream 0"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if fh.streamID > c.maxClientID {
		return connError{ErrCodeProtocol, "RST_STREAM on an idle stream"}
	}
	st := c.streams[fh.streamID]
	if st == nil {
		return nil
	}
	if st.started && !st.handlerDone {
		// Rapid reset (CVE-2023-44487): the handler keeps its slot until
		// it returns, so resets cannot make handlers pile up beyond the
		// queue bound; this counts them for the log.
		c.resets++
	}
	st.bodyErr = errStreamReset
	st.resetLocked()
	c.removeLocked(st)
	return nil
}

func (c *conn) onWindowUpdate(fh frameHeader, p []byte) error {
	if len(p) != 4 {
		return connError{ErrCodeFrameSize, "WINDOW_UPDATE length not 4"}
	}
	incr := int64(binary.BigEndian.Uint32(p) & (1<<31 - 1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if fh.streamID == 0 {
		if incr == 0 {
			return connError{ErrCodeProtocol, "WINDOW_UPDATE of 0"}
		}
		c.sendWindow += incr
		if c.sendWindow > maxWindow {
			return connError{ErrCodeFlowControl, "connection window over 2^31-1"}
		}
		c.cond.Broadcast()
		return nil
	}
	if fh.streamID > c.maxClientID {
		return connError{ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	if incr == 0 {
		c.resetLocked(fh.streamID, ErrCodeProtocol)
		return nil
	}
	st := c.streams[fh.streamID]
	if st == nil {
		return nil
	}
	st.sendWindow += incr
	if st.sendWindow > maxWindow {
		c.resetLocked(fh.streamID, ErrCodeFlowControl)
		return nil
	}
	c.cond.Broadcast()
	return nil
}

// resetLocked sends RST_STREAM for id and forgets its stream, if open.
func (c *conn) resetLocked(id uint32, code ErrCode) {
	c.wbuf = appendRSTStream(c.wbuf, id, code)
	c.recentResets[c.nresets%uint32(len(c.recentResets))] = id
	c.nresets++
	if st := c.streams[id]; st != nil {
		if st.bodyErr == nil || st.bodyErr == io.EOF {
			st.bodyErr = errStreamClosed
		}
		st.resetLocked()
		c.removeLocked(st)
	}
}

func (c *conn) onData(fh frameHeader, p []byte) error {
	if fh.streamID == 0 {
		return connError{ErrCodeProtocol, "DATA on stream 0"}
	}
	data := p
	if fh.flags&flagPadded != 0 {
		if len(p) == 0 || int(p[0]) >= len(p) {
			return connError{ErrCodeProtocol, "DATA padding too long"}
		}
		data = p[1 : len(p)-int(p[0])]
	}
	flen := int64(len(p))
	c.mu.Lock()
	defer c.mu.Unlock()
	if fh.streamID > c.maxClientID {
		return connError{ErrCodeProtocol, "DATA on an idle stream"}
	}
	if flen > c.recvWindow {
		return connError{ErrCodeFlowControl, "DATA beyond the connection window"}
	}
	c.recvWindow -= flen
	st := c.streams[fh.streamID]
	if st == nil || st.recvClosed {
		// Closed, or half closed (remote): STREAM_CLOSED, and the
		// connection window gets its credit back at once.
		c.creditConnLocked(flen)
		c.resetLocked(fh.streamID, ErrCodeStreamClosed)
		return nil
	}
	if flen > st.recvWindow {
		c.creditConnLocked(flen)
		c.resetLocked(fh.streamID, ErrCodeFlowControl)
		return nil
	}
	st.recvWindow -= flen
	st.gotLen += int64(len(data))
	if st.declLen >= 0 && st.gotLen > st.declLen {
		c.creditConnLocked(flen)
		c.resetLocked(fh.streamID, ErrCodeProtocol)
		return nil
	}
	if pad := flen - int64(len(data)); pad > 0 {
		c.creditLocked(st, pad)
	}
	if st.sendClosed {
		st.afterEnd += int64(len(data))
		if st.afterEnd > afterEndMax {
			c.creditConnLocked(flen)
			c.resetLocked(fh.streamID, ErrCodeNo)
			return nil
		}
	}
	if len(data) > 0 {
		if st.bodyClosed || st.handlerDone {
			c.creditLocked(st, int64(len(data)))
		} else {
			if st.boff == len(st.bbuf) {
				st.bbuf, st.boff = st.bbuf[:0], 0
			}
			st.bbuf = append(st.bbuf, data...)
			st.cond.Broadcast()
		}
	}
	if fh.flags&flagEndStream != 0 {
		if st.declLen >= 0 && st.gotLen != st.declLen {
			c.resetLocked(fh.streamID, ErrCodeProtocol)
			return nil
		}
		c.endRecvLocked(st)
	}
	return nil
}

// endRecvLocked marks the request complete (END_STREAM received).
func (c *conn) endRecvLocked(st *stream) {
	st.recvClosed = true
	if st.bodyErr == nil {
		st.bodyErr = io.EOF
	}
	st.cond.Broadcast()
	if st.sendClosed {
		c.removeLocked(st)
	}
}

// weReset reports whether we recently reset stream id, whose client may
// still send frames it had in flight.
func (c *conn) weReset(id uint32) bool {
	for _, r := range c.recentResets {
		if r == id {
			return true
		}
	}
	return false
}

// creditLocked returns n bytes of flow-control credit on st and on the
// connection, in WINDOW_UPDATEs of at least windowUpdateMinima.
func (c *conn) creditLocked(st *stream, n int64) {
	if !st.recvClosed && !st.reset {
		st.recvUnacked += n
		if st.recvUnacked >= streamWindow/8 {
			c.wbuf = appendWindowUpdate(c.wbuf, st.id, uint32(st.recvUnacked))
			st.recvWindow += st.recvUnacked
			st.recvUnacked = 0
			c.wakeWriter()
		}
	}
	c.creditConnLocked(n)
}

func (c *conn) creditConnLocked(n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= connWindow/8 {
		c.wbuf = appendWindowUpdate(c.wbuf, 0, uint32(c.recvUnacked))
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
		c.wakeWriter()
	}
}

const (
	kindNew      = iota // a new stream's request
	kindTrailers        // trailers of an open stream
	kindIgnore          // decoded for HPACK state only
)

func (c *conn) onHeaders(fh frameHeader, p []byte) error {
	id := fh.streamID
	if id == 0 || id%2 == 0 {
		return connError{ErrCodeProtocol, "HEADERS on stream 0 or an even stream"}
	}
	pad := 0
	if fh.flags&flagPadded != 0 {
		if len(p) < 1 {
			return connError{ErrCodeFrameSize, "HEADERS too short for padding"}
		}
		pad = int(p[0])
		p = p[1:]
	}
	c.hdrErr = ErrCodeNo
	if fh.flags&flagPriority != 0 {
		if len(p) < 5 {
			return connError{ErrCodeFrameSize, "HEADERS too short for priority"}
		}
		if binary.BigEndian.Uint32(p)&(1<<31-1) == id {
			c.hdrErr = ErrCodeProtocol
		}
		p = p[5:]
	}
	if pad > len(p) {
		return connError{ErrCodeProtocol, "HEADERS padding too long"}
	}
	p = p[:len(p)-pad]

	c.hdrID = id
	c.hdrEnd = fh.flags&flagEndStream != 0
	c.hdrBytes, c.hdrSize, c.hdrTooBig = 0, 0, false
	c.fields = c.fields[:0]
	c.dec.SetEmitEnabled(true)
	c.mu.Lock()
	switch st := c.streams[id]; {
	case st != nil:
		c.hdrKind = kindTrailers
		if st.recvClosed {
			c.hdrKind = kindIgnore
			c.resetLocked(id, ErrCodeStreamClosed)
		}
	case id <= c.maxClientID:
		if !c.weReset(id) {
			c.mu.Unlock()
			return connError{ErrCodeProtocol, "HEADERS on a closed stream"}
		}
		// Trailers in flight when we reset the stream: decoded for the
		// HPACK state, then dropped (section 5.4.2).
		c.hdrKind = kindIgnore
	default:
		c.maxClientID = id
		c.hdrKind = kindNew
		if c.goAwaySent {
			c.hdrKind = kindIgnore
		}
	}
	c.mu.Unlock()
	return c.headerFragment(p, fh.flags&flagEndHeaders != 0)
}

func (c *conn) onField(f hpack.HeaderField) {
	c.hdrSize += len(f.Name) + len(f.Value) + 32
	if c.hdrSize > c.maxHeader {
		c.hdrTooBig = true
		c.dec.SetEmitEnabled(false)
		return
	}
	if c.hdrKind != kindIgnore {
		c.fields = append(c.fields, f)
	}
}

func (c *conn) headerFragment(p []byte, end bool) error {
	c.hdrBytes += len(p)
	if c.hdrBytes > 2*c.maxHeader+64<<10 {
		return connError{ErrCodeEnhanceYourCalm, "header block too large"}
	}
	if _, err := c.dec.Write(p); err != nil {
		if errors.Is(err, hpack.ErrStringLength) {
			return connError{ErrCodeEnhanceYourCalm, "header field too large"}
		}
		return connError{ErrCodeCompression, err.Error()}
	}
	if !end {
		return nil
	}
	id := c.hdrID
	c.hdrID = 0
	if err := c.dec.Close(); err != nil {
		return connError{ErrCodeCompression, err.Error()}
	}
	switch c.hdrKind {
	case kindNew:
		c.newStream(id)
	case kindTrailers:
		c.trailers(id)
	}
	clear(c.fields)
	c.fields = c.fields[:0]
	return nil
}

// newStream opens the stream a complete request header block announced,
// or refuses it.
func (c *conn) newStream(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hdrErr != ErrCodeNo {
		c.resetLocked(id, c.hdrErr)
		return
	}
	if len(c.streams) >= c.maxStreams {
		c.resetLocked(id, ErrCodeRefusedStream)
		return
	}
	st := getStream(c, id)
	if c.hdrTooBig {
		// A 431 the handler never sees.
		st.sendWindow = c.peerWindow
		c.appendSimpleLocked(id, http.StatusRequestHeaderFieldsTooLarge)
		if !c.hdrEnd {
			c.wbuf = appendRSTStream(c.wbuf, id, ErrCodeNo)
		}
		c.streamPool(st)
		return
	}
	if code := st.buildRequest(c.fields, c.hdrEnd); code != ErrCodeNo {
		c.resetLocked(id, code)
		c.streamPool(st)
		return
	}
	st.sendWindow = c.peerWindow
	st.recvClosed = c.hdrEnd
	if c.hdrEnd {
		st.bodyErr = io.EOF
	}
	c.streams[id] = st
	c.disarmIdleLocked()
	if c.nrunning < c.maxStreams {
		c.startLocked(st)
		return
	}
	// Handlers of streams the client already reset still hold their slots;
	// new streams wait for one, up to a bound (rapid reset).
	if len(c.queue) >= 4*c.maxStreams {
		c.srv.logger().Warn("h2srv: client resets streams faster than handlers return; closing", "remote_addr", c.remoteAddr, "resets", c.resets)
		c.wbuf = appendGoAway(c.wbuf, c.maxClientID, ErrCodeEnhanceYourCalm)
		c.goAwaySent = true
		c.closing = true
		c.wakeWriter()
		return
	}
	c.queue = append(c.queue, st)
}

// appendSimpleLocked answers id with an empty response of status code.
func (c *conn) appendSimpleLocked(id uint32, code int) {
	start := c.beginHeadersLocked(id, flagEndStream)
	c.wbuf = appendStatus(c.wbuf, code)
	c.wbuf = appendField(c.wbuf, "date", httpDate())
	c.wbuf = appendField(c.wbuf, "content-length", "0")
	c.endHeadersLocked(start)
}

func (c *conn) trailers(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[id]
	if st == nil {
		return
	}
	if !c.hdrEnd || c.hdrErr != ErrCodeNo {
		c.resetLocked(id, ErrCodeProtocol)
		return
	}
	for _, f := range c.fields {
		if len(f.Name) > 0 && f.Name[0] == ':' || !validFieldName(f.Name) || !validFieldValue(f.Value) {
			c.resetLocked(id, ErrCodeProtocol)
			return
		}
	}
	if st.req.Trailer != nil {
		for _, f := range c.fields {
			k := c.canonicalKey(f.Name)
			if _, ok := st.req.Trailer[k]; ok {
				st.req.Trailer[k] = append(st.req.Trailer[k], f.Value)
			}
		}
	}
	if st.declLen >= 0 && st.gotLen != st.declLen {
		c.resetLocked(id, ErrCodeProtocol)
		return
	}
	c.endRecvLocked(st)
}

func (c *conn) canonicalKey(name string) string {
	if k, ok := c.canon[name]; ok {
		return k
	}
	k := http.CanonicalHeaderKey(name)
	if len(c.canon) < 512 {
		c.canon[name] = k
	}
	return k
}

// startLocked runs st's handler on a new goroutine.
func (c *conn) startLocked(st *stream) {
	c.nrunning++
	c.running.Add(1)
	st.started = true
	c.srv.workers.run(st)
}

func (c *conn) runHandler(st *stream) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logger().Error("h2srv: panic serving "+c.remoteAddr, "panic", p, "stack", string(buf))
			}
			c.mu.Lock()
			if !st.sendClosed && !st.reset {
				c.resetLocked(st.id, ErrCodeInternal)
			}
			c.mu.Unlock()
			c.wakeWriter()
		}
		c.handlerDone(st)
	}()
	c.srv.Handler.ServeHTTP(&st.rw, st.rw.req)
	st.rw.finish()
}

func (c *conn) handlerDone(st *stream) {
	st.cancel()
	c.running.Add(-1)
	c.mu.Lock()
	st.handlerDone = true
	c.nrunning--
	if st.body != nil {
		// A read still in progress (or to come) on another goroutine
		// ends here; the stream may serve another request next.
		st.body.done = true
		st.body = nil
		st.cond.Broadcast()
	}
	if n := len(st.bbuf) - st.boff; n > 0 {
		// Body the handler left unread: its credit goes back.
		st.bbuf, st.boff = st.bbuf[:0], 0
		c.creditLocked(st, int64(n))
	}
	release := st.removed
	for len(c.queue) > 0 && c.nrunning < c.maxStreams {
		next := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if next.reset {
			c.streamPool(next)
			continue
		}
		c.startLocked(next)
	}
	c.maybeDoneLocked()
	c.armIdleLocked()
	last := c.closed && c.nrunning == 0 && !c.untracked
	if last {
		c.untracked = true
	}
	if release {
		c.streamPool(st)
	}
	c.mu.Unlock()
	if last {
		c.srv.base.Remove(c)
	}
}

// removeLocked forgets a stream that is closed both ways or reset. Its
// state goes back to the pool once its handler has returned too.
func (c *conn) removeLocked(st *stream) {
	if st.removed {
		return
	}
	st.removed = true
	delete(c.streams, st.id)
	if st.sendClosed {
		c.nanswered--
	}
	if !st.started {
		// Queued, never run: the queue drops it when its turn comes.
		if !c.closed {
			return
		}
	} else if st.handlerDone {
		c.streamPool(st)
	}
	c.maybeDoneLocked()
	c.armIdleLocked()
}

// streamPool returns st to the pool, giving back the connection-window
// credit of body bytes nobody read.
func (c *conn) streamPool(st *stream) {
	if n := len(st.bbuf) - st.boff; n > 0 && !c.closed {
		c.creditConnLocked(int64(n))
	}
	putStream(st)
}

// beginHeadersLocked starts a HEADERS frame for id in wbuf and returns
// where; the fields are appended (encode.go), then endHeadersLocked.
func (c *conn) beginHeadersLocked(id uint32, flags uint8) int {
	start := len(c.wbuf)
	c.wbuf = appendFrameHeader(c.wbuf, 0, frameHeaders, flags, id)
	if c.sizeUpdate {
		c.wbuf = appendTableSizeZero(c.wbuf)
		c.sizeUpdate = false
	}
	return start
}

// endHeadersLocked fills in the HEADERS frame begun at start, splitting
// a block larger than the client's frame size into CONTINUATION frames.
func (c *conn) endHeadersLocked(start int) {
	n := len(c.wbuf) - start - frameHeaderLen
	if n <= c.peerFrame {
		putLength(c.wbuf, start, n)
		c.wbuf[start+4] |= flagEndHeaders
		return
	}
	block := append([]byte(nil), c.wbuf[start+frameHeaderLen:]...)
	flags := c.wbuf[start+4]
	id := binary.BigEndian.Uint32(c.wbuf[start+5:])
	c.wbuf = c.wbuf[:start]
	typ := uint8(frameHeaders)
	for len(block) > 0 {
		m := min(len(block), c.peerFrame)
		f := flags
		if m == len(block) {
			f |= flagEndHeaders
		}
		c.wbuf = appendFrameHeader(c.wbuf, m, typ, f, id)
		c.wbuf = append(c.wbuf, block[:m]...)
		block = block[m:]
		typ, flags = frameContinuation, 0
	}
}

// sendDataLocked appends DATA frames carrying p for st, waiting (mu
// released) for flow-control credit and buffer room; end sets END_STREAM
// on the last.
func (c *conn) sendDataLocked(st *stream, p []byte, end bool) error {
	for {
		if c.closing {
			return errConnClosed
		}
		if st.reset {
			return errStreamReset
		}
		if st.wdeadline.set && !time.Now().Before(st.wdeadline.t) {
			return os.ErrDeadlineExceeded
		}
		if len(p) == 0 {
			if end {
				c.wbuf = appendFrameHeader(c.wbuf, 0, frameData, flagEndStream, st.id)
				c.sentEndLocked(st)
			}
			return nil
		}
		if len(c.wbuf) >= wbufMax || st.sendWindow <= 0 || c.sendWindow <= 0 {
			c.wakeWriter()
			st.armLocked(1)
			c.cond.Wait()
			continue
		}
		n := int64(len(p))
		n = min(n, st.sendWindow, c.sendWindow, int64(c.peerFrame))
		var flags uint8
		if end && n == int64(len(p)) {
			flags = flagEndStream
		}
		c.wbuf = appendFrameHeader(c.wbuf, int(n), frameData, flags, st.id)
		c.wbuf = append(c.wbuf, p[:n]...)
		st.sendWindow -= n
		c.sendWindow -= n
		p = p[n:]
		if flags != 0 {
			c.sentEndLocked(st)
			return nil
		}
	}
}

// sentEndLocked records that our side of st is complete. A request body
// still arriving is read and discarded (the stream is half closed (local)
// until the client ends it), so that a malformed rest is still answered
// with PROTOCOL_ERROR; a client that sends more than afterEndMax of it is
// told to stop with RST_STREAM(NO_ERROR) (RFC 9113, section 8.1).
func (c *conn) sentEndLocked(st *stream) {
	st.sendClosed = true
	if !st.removed {
		c.nanswered++ // removeLocked counts it out
	}
	if st.recvClosed {
		c.removeLocked(st)
	}
}

const afterEndMax = 64 << 10
