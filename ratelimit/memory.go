package ratelimit

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// memoryStore keeps buckets in RAM: 16 shards, each an open-addressing
// hash table guarded by its own mutex, so two requests contend only when
// their keys land in the same shard. Keys are 64-bit hashes (keyed, with a
// per-process random secret), not strings: a bucket is one 16-byte slot
// (key, TAT) in a table kept at most 3/4 full, about 32 bytes a bucket,
// one cache miss to find it and no allocation to build its key. Two
// clients share a bucket only on a hash collision (about 2^-62 for a
// pair), which an attacker cannot aim for without the secret.
//
// With a million buckets the table is 32 MiB, far larger than the CPU
// caches, and a lookup is a miss to memory (115-155 ns on the development
// VM). A lookup costs that one miss and no other: a key's search starts
// at the first slot of a cache line (home), the slot holds the key and the
// bucket's state together, nothing else is read (the shard header and
// the policy are hot), and tables of 2 MiB and more sit on huge pages
// (tables.go), so the miss does not walk page tables too. The middleware
// computes the bucket's line first thing and prefetches it, then does its
// other work (identification, the other buckets) while the line is on its
// way; Limiter.Prefetch lets the front start it earlier still.
//
// Each shard holds at most max/16 buckets. A new key in a full shard takes
// the slot of an idle bucket (one that is full again: forgetting it changes
// nothing) or else of one not used since the clock hand last passed (the
// CLOCK approximation of least recently used), looking at a bounded number
// of slots. A flood of one-time keys thus replaces itself and leaves the
// clients that come back in place. Each insert also looks at one slot and
// drops it if idle, so the table shrinks back to the live buckets without a
// background goroutine.
type memoryStore struct {
	shards  [numShards]shard
	locks   *shardLocks // locks[i] guards shards[i]
	evicted atomic.Uint64
	off     *offHeap // the shards' mapped tables (see tables.go)
}

// shardLocks are the shards' mutexes, each on its own cache line. They
// belong to the Limiter, not to a store: every store a Limiter creates
// (a reload may replace it while requests still run on the old one) has
// its shard i guarded by the same lock i, and so do the cells i of the
// decision counters (stripedCounter), which takeTAT increments under that
// lock with a plain add instead of a locked one.
type shardLocks [numShards]struct {
	sync.Mutex
	_ [64 - unsafe.Sizeof(sync.Mutex{})]byte
}

const (
	// 16 shards keep contention low on the few cores a gateway has, and
	// give each shard a table of 2 MiB, one huge page, at a million
	// buckets.
	numShards  = 16
	shardShift = 60 // the top 4 bits of a hash pick the shard

	// In a slot's key the top bit, which the shard already fixes, holds
	// the CLOCK reference bit instead; 0 marks an empty slot.
	refBit  = uint64(1) << 63
	keyMask = refBit - 1
)

type slot struct {
	key uint64 // hash&keyMask|1, plus refBit; 0: empty
	tat int64
}

// A shard is 64 bytes, one cache line, so that an insert in one does not
// write to a line its neighbours' lookups read.
type shard struct {
	slots []slot // len is a power of two
	n     int    // buckets held
	max   int
	hand  int
	// view is slots for prefetch, which reads it without the lock: the
	// address of the first slot (tables are aligned to at least 256
	// bytes) with log2(len(slots)) in the low byte. An integer, not a
	// pointer, so that a stale one (grow replaces it) keeps nothing alive
	// and costs a useless prefetch, nothing more.
	view atomic.Uint64
	_    [8]byte
}

// newMemoryStore returns a store for maxKeys buckets whose shards the
// given locks guard (nil: locks of its own).
func newMemoryStore(maxKeys int, locks *shardLocks) *memoryStore {
	if locks == nil {
		locks = new(shardLocks)
	}
	m := &memoryStore{off: &offHeap{}, locks: locks}
	per := max(maxKeys/numShards, 16)
	for i := range m.shards {
		m.shards[i].max = per
		m.shards[i].setSlots(make([]slot, 16))
	}
	runtime.AddCleanup(m, (*offHeap).freeAll, m.off)
	return m
}

// tableBytes is the memory the slot tables take outside the Go heap.
func (m *memoryStore) tableBytes() int { return m.off.mappedBytes() }

// Len returns the number of buckets held.
func (m *memoryStore) Len() int {
	n := 0
	for i := range m.shards {
		m.locks[i].Lock()
		n += m.shards[i].n
		m.locks[i].Unlock()
	}
	return n
}

func (s *shard) setSlots(t []slot) {
	s.slots = t
	v := uint64(uintptr(unsafe.Pointer(&t[0])))
	if v&0xff != 0 {
		v = 0 // not aligned as expected: prefetch near address 0, harmlessly
	}
	s.view.Store(v | uint64(bits.Len(uint(len(t)))-1))
}

// prefetch starts loading the cache line where the bucket for h would be,
// so that take finds it there. Called before other work (the clock read),
// it lets a lookup in a table far larger than the CPU caches cost about
// the miss or the other work, whichever is longer, instead of both.
func (m *memoryStore) prefetch(h uint64) { prefetch(m.homeAddr(h)) }

// homeAddr is the address of h's home line (home), from the shard's view:
// (h << 4) & lineMask is home(slotKey(h), mask) * slotSize, where
// lineMask = (len*16 - 1) &^ 63, as bit 0 of a slot key and the reference
// bit do not pick the line. Written this way it is small enough to be
// inlined where the key is derived (prefetch, which calls assembly, is
// not).
func (m *memoryStore) homeAddr(h uint64) uintptr {
	v := m.shards[h>>shardShift].view.Load()
	return uintptr(v&^0xff + h<<4&(uint64(slotSize)<<(v&0xff)-64))
}

// slotKey is a hash as stored in a slot (without the reference bit).
func slotKey(h uint64) uint64 { return h&keyMask | 1 }

// lineSlots is how many slots share a 64-byte cache line.
const lineSlots = 64 / slotSize

// home is where the search for key starts in a table of mask+1 slots: the
// first slot of a cache line (the table is aligned to one), so the probe
// reads a whole line of candidates before it needs the next one. At the
// table's load (3/8 to 3/4) a key is almost always in its home line, and a
// decision costs the one miss that prefetch started. (Bits 0 and 1 of a
// slot key do not pick the home: bit 0 is always set.)
func home(key uint64, mask int) int { return int(key) & mask &^ (lineSlots - 1) }

// find returns the index of key's slot, or -1.
//
// It first compares the four slots of the home line without a branch on
// which one holds the key: with a million clients the line arrives from
// memory just before, and a branch on the key's place in it (the first
// slot about half the time, the second or third otherwise) would be
// mispredicted after the miss, on the request's critical path. A match
// anywhere in the line is the key, as slot keys are unique and never 0.
// Only a key outside its home line, or missing, takes the loop.
func (s *shard) find(key uint64) int {
	h := home(key, len(s.slots)-1)
	t := s.slots[h : h+lineSlots : h+lineSlots]
	j := -1
	if t[3].key&keyMask == key {
		j = h + 3
	}
	if t[2].key&keyMask == key {
		j = h + 2
	}
	if t[1].key&keyMask == key {
		j = h + 1
	}
	if t[0].key&keyMask == key {
		j = h
	}
	if j < 0 {
		j = s.probe(h, key)
	}
	return j
}

// probe is find's search from h onwards, slot by slot, up to an empty one.
func (s *shard) probe(h int, key uint64) int {
	mask := len(s.slots) - 1
	for i := h; ; i = (i + 1) & mask {
		k := s.slots[i].key
		if k&keyMask == key {
			return i
		}
		if k == 0 {
			return -1
		}
	}
}

// take decides for one bucket at now.
func (m *memoryStore) take(h uint64, now int64, p policyParams) Result {
	tat, ok := m.takeTAT(h, now, p, nil, nil)
	return gcraResult(ok, tat, now, p)
}

// takeTAT is take's decision, and the bucket's TAT after it, from which
// gcraResult works out the rest when it is needed. It counts the decision
// in allowed or refused (nil: not counted) while it holds the shard's
// lock, which guards the counters' cells for this shard too: a plain
// increment of a line the lock has just brought in, where counting after
// the unlock costs a locked add (as much as the unlock itself).
func (m *memoryStore) takeTAT(h uint64, now int64, p policyParams, allowed, refused *stripedCounter) (newTat int64, ok bool) {
	sh := h >> shardShift
	s, mu := &m.shards[sh], &m.locks[sh]
	key := slotKey(h)
	mu.Lock()
	i := s.find(key)
	var tat int64
	if i >= 0 {
		tat = s.slots[i].tat
	}
	newTat, ok = gcraTake(tat, now, p)
	if i >= 0 {
		s.slots[i] = slot{key: key | refBit, tat: newTat}
	} else if ok {
		// A missing bucket is a full one, so it can only allow; a refusal
		// never creates a slot.
		if s.insert(key, newTat, now, m.off) {
			m.evicted.Add(1)
		}
	}
	c := refused
	if ok {
		c = allowed
	}
	if c != nil {
		c.cells[sh].locked++
	}
	mu.Unlock()
	return newTat, ok
}

// refund gives back a token that take granted (a later bucket of the same
// request refused).
func (m *memoryStore) refund(h uint64, p policyParams) {
	s, mu := &m.shards[h>>shardShift], &m.locks[h>>shardShift]
	mu.Lock()
	if i := s.find(slotKey(h)); i >= 0 {
		s.slots[i].tat -= p.interval
	}
	mu.Unlock()
}

// insert adds a bucket for a key that is not in the shard, evicting one
// when the shard is full; it reports whether a live bucket was evicted.
func (s *shard) insert(key uint64, tat, now int64, off *offHeap) (evictedLive bool) {
	// Sweep: drop the slot under the hand if it is idle.
	if h := s.hand & (len(s.slots) - 1); s.slots[h].key != 0 && s.slots[h].tat <= now {
		s.deleteAt(h)
	} else {
		s.hand = h + 1
	}
	if s.n >= s.max {
		evictedLive = s.evict(now)
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow(off)
	}
	mask := len(s.slots) - 1
	i := home(key, mask)
	for s.slots[i].key != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = slot{key: key, tat: tat}
	s.n++
	return evictedLive
}

// evict frees one slot by CLOCK: an idle bucket at once, else the first
// one not referenced since the hand last passed, looking at no more than
// 32 slots so a shard full of busy clients still costs O(1).
func (s *shard) evict(now int64) (live bool) {
	mask := len(s.slots) - 1
	victim := -1
	for range 32 {
		h := s.hand & mask
		s.hand = h + 1
		sl := &s.slots[h]
		if sl.key == 0 {
			continue
		}
		if sl.tat <= now {
			victim = h
			break
		}
		if sl.key&refBit == 0 {
			victim, live = h, true
			break
		}
		if victim < 0 {
			victim = h // the fallback if every slot looked at is busy
		}
		sl.key &^= refBit
	}
	if victim < 0 {
		// 32 empty slots in a row in a full shard cannot happen at 3/4
		// load for long; take the first bucket found.
		for victim = s.hand & mask; s.slots[victim].key == 0; victim = (victim + 1) & mask {
		}
	}
	if s.slots[victim].tat > now {
		live = true
	}
	s.deleteAt(victim)
	return live
}

// deleteAt empties slot i and shifts later slots of the same probe run
// back (backward-shift deletion), so lookups never need tombstones.
func (s *shard) deleteAt(i int) {
	mask := len(s.slots) - 1
	j := i
	for {
		j = (j + 1) & mask
		k := s.slots[j].key
		if k == 0 {
			break
		}
		h := home(k&keyMask, mask)
		// The slot at j may move to i unless its home lies cyclically in
		// (i, j].
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = slot{}
	s.n--
}

// grow doubles the table.
func (s *shard) grow(off *offHeap) {
	old := s.slots
	s.setSlots(off.alloc(2 * len(old)))
	mask := len(s.slots) - 1
	for _, sl := range old {
		if sl.key == 0 {
			continue
		}
		i := home(sl.key&keyMask, mask)
		for s.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
	s.hand = 0
	off.free(old)
}
