package ratelimit

// homeLineShare is the share of the store's buckets that sit in the cache
// line their search starts at (home): a lookup for any other costs a
// second line, most often the next one, which the prefetch did not start.
func homeLineShare(m *memoryStore) float64 {
	in, all := 0, 0
	for i := range m.shards {
		s := &m.shards[i]
		m.locks[i].Lock()
		mask := len(s.slots) - 1
		for j, sl := range s.slots {
			if sl.key == 0 {
				continue
			}
			all++
			if j/lineSlots == home(sl.key&keyMask, mask)/lineSlots {
				in++
			}
		}
		m.locks[i].Unlock()
	}
	if all == 0 {
		return 1
	}
	return float64(in) / float64(all)
}
