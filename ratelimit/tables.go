package ratelimit

import (
	"sync"
	"unsafe"
)

// Slot tables of 256 KiB and more live outside the Go heap, in memory
// mapped for them, and from 2 MiB (a shard's table once the store holds
// about half a million buckets) advised to the kernel as huge pages where
// the platform has them: a lookup at a random place in a table far larger
// than the CPU caches then misses the cache but not the TLB, which saves
// the page walk (on the development VM, a pointer chase over 32 MiB took
// 115-125 ns a step with huge pages and 130-155 without). Mapping the
// middle sizes too means a table that grows is returned to the kernel at
// once rather than left for the collector, so the store's peak stays near
// its size. Smaller tables stay on the heap. The mapped bytes count in
// offHeap.bytes, which the memory benchmarks add to the heap; a store's
// tables are unmapped when it is garbage collected.

const (
	slotSize    = int(unsafe.Sizeof(slot{}))
	mappedTable = 256 << 10
	hugeTable   = 2 << 20
)

// offHeap is a store's mapped tables.
type offHeap struct {
	mu    sync.Mutex
	maps  map[*slot][]byte // a table's first slot -> its mapping
	bytes int
}

// alloc returns a zeroed table of n slots.
func (o *offHeap) alloc(n int) []slot {
	if n*slotSize >= mappedTable {
		if m, t := mapTable(n); t != nil {
			o.mu.Lock()
			if o.maps == nil {
				o.maps = map[*slot][]byte{}
			}
			o.maps[&t[0]] = m
			o.bytes += n * slotSize
			o.mu.Unlock()
			return t
		}
	}
	return make([]slot, n)
}

// free releases a table that alloc returned, once nothing reads it. (The
// shards' prefetch may still compute an address in it, but never loads
// from it.)
func (o *offHeap) free(t []slot) {
	o.mu.Lock()
	m, ok := o.maps[&t[0]]
	if ok {
		delete(o.maps, &t[0])
		o.bytes -= len(t) * slotSize
	}
	o.mu.Unlock()
	if ok {
		unmapTable(m)
	}
}

// freeAll releases every mapped table; it runs when the store is
// unreachable.
func (o *offHeap) freeAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, m := range o.maps {
		unmapTable(m)
		delete(o.maps, k)
	}
	o.bytes = 0
}

// mappedBytes is how much memory the mapped tables take: their slots, not
// the alignment slack, which is address space that is never touched.
func (o *offHeap) mappedBytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}
