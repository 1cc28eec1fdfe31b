package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// memoryStore keeps buckets in RAM: 64 shards, each a map from the 64-bit
// key hash to a slot holding the TAT, guarded by its own mutex, so two
// requests contend only when their keys land in the same shard. Keys are
// hashes (maphash with a per-process random seed), not strings: 24 bytes a
// slot plus about 20 in the map, and no allocation to build a key. Two
// clients share a bucket only on a 64-bit collision, which an attacker
// cannot aim for without the seed.
//
// Each shard holds at most max/64 slots. A new key in a full shard takes
// the slot of an idle bucket (one that is full again: forgetting it changes
// nothing) or else of one not used since the clock hand last passed (the
// CLOCK approximation of least recently used). A flood of one-time keys
// thus replaces itself and leaves clients that come back in place.
type memoryStore struct {
	shards  [numShards]shard
	evicted atomic.Uint64
}

const numShards = 64

type slot struct {
	key uint64
	tat int64
	ref bool // used since the hand last passed
}

type shard struct {
	mu    sync.Mutex
	index map[uint64]int32
	slots []slot
	max   int
	hand  int
	_     [40]byte // keep hot shards on separate cache lines
}

func newMemoryStore(maxKeys int) *memoryStore {
	m := &memoryStore{}
	per := max(maxKeys/numShards, 16)
	for i := range m.shards {
		m.shards[i].index = make(map[uint64]int32)
		m.shards[i].max = per
	}
	return m
}

// Len returns the number of buckets held.
func (m *memoryStore) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.slots)
		s.mu.Unlock()
	}
	return n
}

// take decides for one bucket and, when refund is set, gives back a token
// that take granted earlier (a later bucket of the same request refused).
func (m *memoryStore) take(key uint64, now int64, p policyParams) Result {
	s := &m.shards[key>>58]
	s.mu.Lock()
	i, ok := s.index[key]
	var tat int64
	if ok {
		tat = s.slots[i].tat
	}
	newTat, res := gcra(tat, now, p)
	if ok {
		s.slots[i].tat = newTat
		s.slots[i].ref = true
	} else if res.Allowed {
		// A refused request on an absent bucket cannot happen (it starts
		// full), so only allowed ones create slots.
		if s.insert(key, newTat, now) {
			m.evicted.Add(1)
		}
	}
	s.mu.Unlock()
	return res
}

// refund returns one token to a bucket.
func (m *memoryStore) refund(key uint64, p policyParams) {
	s := &m.shards[key>>58]
	s.mu.Lock()
	if i, ok := s.index[key]; ok {
		s.slots[i].tat -= p.interval
	}
	s.mu.Unlock()
}

// insert adds a slot, evicting one when the shard is full; it reports
// whether a live (not idle) bucket was evicted.
func (s *shard) insert(key uint64, tat, now int64) (evictedLive bool) {
	// Sweep: look at one slot per insert and drop it if it is idle, so
	// the store shrinks back to the live buckets without a background
	// goroutine.
	if n := len(s.slots); n > 0 {
		h := s.hand % n
		if s.slots[h].tat <= now {
			s.remove(h)
		} else {
			s.hand = h + 1
		}
		if s.hand >= len(s.slots) {
			s.hand = 0
		}
	}
	if len(s.slots) < s.max {
		s.index[key] = int32(len(s.slots))
		s.slots = append(s.slots, slot{key: key, tat: tat})
		return false
	}
	// CLOCK: skip (and clear) recently used slots, at most a few steps so a
	// shard full of busy clients still costs O(1); an idle slot is taken at
	// once.
	victim := -1
	for range 8 {
		h := s.hand
		s.hand++
		if s.hand == len(s.slots) {
			s.hand = 0
		}
		sl := &s.slots[h]
		if sl.tat <= now {
			victim = h
			break
		}
		if !sl.ref {
			victim = h
			evictedLive = true
			break
		}
		sl.ref = false
	}
	if victim < 0 {
		victim = s.hand
		evictedLive = true
	}
	delete(s.index, s.slots[victim].key)
	s.slots[victim] = slot{key: key, tat: tat}
	s.index[key] = int32(victim)
	return evictedLive
}

// remove drops slot i, moving the last slot into its place.
func (s *shard) remove(i int) {
	delete(s.index, s.slots[i].key)
	last := len(s.slots) - 1
	if i != last {
		s.slots[i] = s.slots[last]
		s.index[s.slots[i].key] = int32(i)
	}
	s.slots = s.slots[:last]
}

func hashBytes(l *Limiter, b []byte) uint64 { return maphash.Bytes(l.seed, b) }
