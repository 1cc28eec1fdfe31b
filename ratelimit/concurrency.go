package ratelimit

import (
	"net/netip"
	"sync"
)

// concurrency counts requests in flight per client address. An entry
// exists only while its address has a request in flight, so the maps are
// as large as the peak number of concurrent clients and no larger.
type concurrency struct {
	shards [16]struct {
		mu sync.Mutex
		n  map[netip.Addr]int32
	}
}

func newConcurrency() *concurrency {
	c := &concurrency{}
	for i := range c.shards {
		c.shards[i].n = make(map[netip.Addr]int32)
	}
	return c
}

func (c *concurrency) shard(a netip.Addr) int {
	b := a.As16()
	return int(b[15]^b[7]^b[3]) & 15
}

// acquire counts one more request for a, unless a already has max.
func (c *concurrency) acquire(a netip.Addr, max int) bool {
	s := &c.shards[c.shard(a)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(s.n[a]) >= max {
		return false
	}
	s.n[a]++
	return true
}

func (c *concurrency) release(a netip.Addr) {
	s := &c.shards[c.shard(a)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[a] <= 1 {
		delete(s.n, a)
	} else {
		s.n[a]--
	}
}
