// Package watchdog aborts exchanges with a backend whose client has gone or
// whose deadline has passed, from one ticking goroutine, instead of a
// context and a timer per request. Typical usage, in a transport:
//
//	var dog watchdog.Dog // one per transport
//
//	type conn struct {
//		nc    net.Conn
//		watch watchdog.Entry
//	}
//
//	c.watch.Abort = func() { c.nc.SetDeadline(aLongTimeAgo) } // once per conn
//	dog.Watch(&c.watch, r.Context(), time.Now().Add(timeout))
//	... write the request, read the response head ...
//	c.watch.ClearDeadline()     // from here on only the client can cut it
//	... read the body ...
//	switch dog.Release(&c.watch) { // the exchange is over
//	case watchdog.Canceled, watchdog.Expired: // the conn was aborted
//	}
//
// Why: deriving a cancelable context for a request timeout
// (context.WithCancelCause plus time.AfterFunc) and registering
// context.AfterFunc to cut the connection when the client leaves cost
// about ten allocations, two timer updates and two lock round trips on
// the parent context for every proxied request, a tenth of gatehouse's
// CPU when forwarding small responses. Here a request costs linking its
// entry into a list and unlinking it, under a mutex, and the price is
// precision: the abort
// comes up to one tick (Tick) after the client left or the deadline
// passed, which for timeouts of seconds and for clients that have gone
// does not matter.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Tick is how often in-flight exchanges are checked.
const Tick = 10 * time.Millisecond

// idleTicks is how many ticks without an exchange the goroutine waits
// before it ends (the next Watch starts another).
const idleTicks = 100

// ErrDeadline is the error transports return for an exchange that the
// watchdog aborted because its deadline passed.
var ErrDeadline = errors.New("backend deadline passed")

// Reason says why an entry was aborted.
type Reason uint32

const (
	None     Reason = iota
	Canceled        // the context was done (the client left)
	Expired         // the deadline passed
)

// Entry is one exchange being watched. It is meant to live inside the
// connection it watches and be reused for each exchange on it.
type Entry struct {
	// Abort makes the exchange's blocked and future I/O fail. It is
	// called at most once per Watch, from the watchdog's goroutine.
	Abort func()

	ctx      context.Context
	deadline atomic.Int64 // Unix nanoseconds; 0: none
	fired    atomic.Uint32

	// The Dog's list of watched entries, under its mu (next is nil when
	// e is not in it): an intrusive list links and unlinks without
	// hashing or allocating, where a map did both for every exchange.
	prev, next *Entry
}

// Fired reports whether, and why, the entry was aborted since Watch.
func (e *Entry) Fired() Reason { return Reason(e.fired.Load()) }

// Err is the error to report for an exchange on this entry that failed
// with err, an I/O error perhaps provoked by an abort: ErrDeadline (with
// err) when the deadline cut it, else ctx's error, with its cause, when
// ctx is done, else err. ctx is the context Watch was given.
func (e *Entry) Err(ctx context.Context, err error) error {
	if e.Fired() == Expired {
		return fmt.Errorf("%w: %w", ErrDeadline, err)
	}
	return CtxErr(ctx, err)
}

// CtxErr prefers ctx's error, with its cause, to err, the I/O error its
// cancellation provoked; err when ctx is not done.
func CtxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && cause != cerr {
		return fmt.Errorf("%w: %w", cerr, cause)
	}
	return cerr
}

// ClearDeadline removes the deadline; the context still applies.
func (e *Entry) ClearDeadline() { e.deadline.Store(0) }

// Dog watches entries. The zero value is ready to use. Its goroutine runs
// only while exchanges are in flight (and a second after), so a Dog needs
// no Close.
type Dog struct {
	mu      sync.Mutex
	head    Entry // sentinel of the circular list of watched entries
	n       int   // entries watched
	running bool
}

// link adds e to the list; d.mu is held.
func (d *Dog) link(e *Entry) {
	if d.head.next == nil {
		d.head.next, d.head.prev = &d.head, &d.head
	}
	if e.next != nil {
		return
	}
	e.prev, e.next = d.head.prev, &d.head
	d.head.prev.next = e
	d.head.prev = e
	d.n++
}

// unlink removes e from the list; d.mu is held.
func (d *Dog) unlink(e *Entry) {
	if e.next == nil {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	d.n--
}

// Watch starts watching e for ctx and deadline (zero: none).
func (d *Dog) Watch(e *Entry, ctx context.Context, deadline time.Time) {
	e.ctx = ctx
	e.fired.Store(uint32(None))
	var dl int64
	if !deadline.IsZero() {
		dl = max(deadline.UnixNano(), 1)
	}
	e.deadline.Store(dl)
	d.mu.Lock()
	d.link(e)
	if !d.running {
		d.running = true
		go d.run()
	}
	d.mu.Unlock()
}

// Release stops watching e and reports whether it was aborted. After it
// returns, Abort is not called for this exchange.
func (d *Dog) Release(e *Entry) Reason {
	d.mu.Lock()
	d.unlink(e)
	d.mu.Unlock()
	e.ctx = nil
	return e.Fired()
}

// Watching reports how many entries are watched (for tests).
func (d *Dog) Watching() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *Dog) run() {
	t := time.NewTicker(Tick)
	defer t.Stop()
	idle := 0
	for range t.C {
		now := time.Now().UnixNano()
		d.mu.Lock()
		if d.n == 0 {
			if idle++; idle >= idleTicks {
				d.running = false
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		idle = 0
		// Aborts run under the lock, so that Release, which takes it,
		// cannot return while one is under way: the caller may reuse the
		// connection right after. An abort is a deadline set on a socket.
		for e := d.head.next; e != &d.head; e = e.next {
			if e.fired.Load() != uint32(None) {
				continue
			}
			why := None
			if dl := e.deadline.Load(); dl != 0 && now >= dl {
				why = Expired
			} else if e.ctx.Err() != nil {
				why = Canceled
			}
			if why != None {
				e.fired.Store(uint32(why))
				e.Abort()
			}
		}
		d.mu.Unlock()
	}
}
