package h1srv

import (
	"sync/atomic"
	"time"
)

// The server's clock. Setting a socket deadline is a timer update in the
// Go runtime (a lock and a heap fix-up), and a keep-alive request would
// need three or four of them: the short wait before a busy connection is
// handed over, the header timeout, clearing it for the handler, the close
// watch's timer. nginx pays for its timers with a cached clock and a
// red-black tree; here one sweeper per server ticks every tickEvery,
// keeps a coarse clock, and enforces those bounds lazily: a connection
// only stores the instant a bound expires (an atomic store), and the
// sweeper, finding it past, sets a deadline in the past on the socket to
// wake the blocked read, or starts the close watch. Bounds are therefore
// late by up to one tick, which for timeouts of seconds is nothing, and
// for the 20ms hand-over and the 10ms close-check delay only means a
// little later.
//
// A kick can race with the connection moving on (the sweeper saw an
// expired bound that the connection has just replaced): the connection
// then sees a timeout no bound justifies, clears the socket's deadline and
// reads again (see conn.spurious).

// tickEvery is the sweeper's period and the clock's resolution while any
// connection has a bound pending; tickIdle while none has (10,000 idle
// keep-alive connections, waiting with real deadlines, then cost a scan
// ten times a second, not a hundred).
const (
	tickEvery = 10 * time.Millisecond
	tickIdle  = 100 * time.Millisecond
)

type clock struct {
	epoch time.Time
	now   atomic.Int64 // nanoseconds since epoch, as of the last tick
}

// While the sweeper ticks slowly, the clock may be up to tickIdle behind,
// and a bound armed then expires up to that much early: harmless for a
// hand-over or a close check, and small beside timeouts of seconds.

// nowNanos returns the coarse time: never ahead of the real one, at most
// one tick behind.
func (s *Server) nowNanos() int64 { return s.clk.now.Load() }

// wallNow is the coarse clock as a time of day: good for a Date field,
// without a clock read per response.
func (s *Server) wallNow() time.Time {
	return s.clk.epoch.Add(time.Duration(s.clk.now.Load()))
}

// after returns the coarse instant d from now, never 0 (0 means "no
// bound" in a connection's fields).
func (s *Server) after(d time.Duration) int64 {
	if !s.busy.Load() {
		// Back to the short tick (a read first: a store per request
		// would bounce the line between cores).
		s.busy.Store(true)
	}
	return max(s.clk.now.Load()+int64(d), 1)
}

// atLeast is after for a bound that must not come due before d has
// passed: the coarse clock can be a tick behind, so after(d) alone may
// expire after as little as d minus a tick, and one tick more makes d a
// floor.
func (s *Server) atLeast(d time.Duration) int64 { return s.after(d + tickEvery) }

// startSweeper starts the sweeper once, with the first connection.
func (s *Server) startSweeper() {
	s.sweepOnce.Do(func() {
		s.clk.epoch = time.Now()
		s.clk.now.Store(1)
		go s.sweep()
	})
}

// sweep ticks until the server is closing and has no connection left.
func (s *Server) sweep() {
	t := time.NewTimer(tickEvery)
	defer t.Stop()
	var batch []*conn
	for range t.C {
		now := int64(time.Since(s.clk.epoch))
		s.clk.now.Store(now)
		if s.base.Closing() && s.base.Len() == 0 {
			return
		}
		batch = batch[:0]
		armed := false
		s.base.Each(func(c *conn) {
			due, set := c.due(now)
			if due {
				batch = append(batch, c)
			}
			armed = armed || set
		})
		if armed || s.busy.Swap(false) {
			t.Reset(tickEvery)
		} else {
			t.Reset(tickIdle)
		}
		// Socket calls outside the server's lock: accepts and closes go on.
		for _, c := range batch {
			c.expire(now)
		}
		if cap(batch) > 1024 {
			batch = nil
		}
	}
}

// due reports whether one of c's lazy bounds has expired, and set whether
// it has any.
func (c *conn) due(now int64) (due, set bool) {
	r, w := c.readBy.Load(), c.watchAt.Load()
	return r != 0 && now >= r || w != 0 && now >= w, r != 0 || w != 0
}

// expire acts on c's expired bounds.
func (c *conn) expire(now int64) {
	if r := c.readBy.Load(); r != 0 && now >= r {
		// kicked first: the read that fails must find it set.
		c.kicked.Store(true)
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
	if w := c.watchAt.Load(); w != 0 && now >= w && c.watchAt.CompareAndSwap(w, 0) {
		c.watchTimer()
	}
}

// setReadBy bounds the next reads lazily: they fail with a timeout once
// the coarse clock passes by (0: no bound). The socket must carry no
// deadline of its own for this to be the only one.
func (c *conn) setReadBy(by int64) {
	if c.readDLSet {
		c.setReadDeadline(time.Time{})
	}
	c.readBy.Store(by)
}

// spurious reports whether err, a read error, is a timeout that no bound
// justifies (a kick that raced with the connection moving on), and if so
// undoes the kick so that the read can be retried.
func (c *conn) spurious(err error) bool {
	if !c.kicked.Load() || !isTimeout(err) {
		return false
	}
	if r := c.readBy.Load(); r != 0 && c.srv.nowNanos() >= r {
		return false // the bound did expire
	}
	c.kicked.Store(false)
	var t time.Time
	if u := c.userReadBy.Load(); u != 0 {
		t = time.Unix(0, u)
	}
	_ = c.nc.SetReadDeadline(t)
	return true
}

// moveWriteDeadline gives the next write SendTimeout. Moving a socket
// deadline is a timer update, so one set recently (at least 15/16 of the
// timeout still ahead, and not further than the timeout) is left alone: a
// write then gets at least 15/16 of SendTimeout, and a connection pays for
// one update every few seconds instead of one per request.
func (c *conn) moveWriteDeadline() {
	st := c.srv.SendTimeout
	if st <= 0 || c.userWrite {
		return
	}
	now := c.srv.nowNanos()
	left := c.writeBy - now
	if left > int64(st-st/16) && left <= int64(st) {
		return
	}
	c.setWriteBy(now + int64(st))
}

// setWriteBy sets the socket's write deadline to the coarse instant by.
func (c *conn) setWriteBy(by int64) {
	c.writeBy = by
	_ = c.nc.SetWriteDeadline(c.srv.clk.epoch.Add(time.Duration(by)))
}
