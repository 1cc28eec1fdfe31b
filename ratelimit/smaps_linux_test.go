package ratelimit

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// hugeShare is the share of the store's huge-page-sized tables (2 MiB and
// more) that the kernel backs with transparent huge pages, read from
// /proc/self/smaps: the AnonHugePages of every mapping that holds such a
// table, over the tables' bytes. ok is false when there is no such table
// or smaps cannot be read.
func hugeShare(m *memoryStore) (share float64, ok bool) {
	var starts []uintptr
	want := 0
	m.off.mu.Lock()
	for first := range m.off.maps {
		for i := range m.shards {
			// Only the tables in use (a freed one is unmapped already).
			if s := &m.shards[i]; len(s.slots) > 0 && &s.slots[0] == first && len(s.slots)*slotSize >= hugeTable {
				starts = append(starts, uintptr(unsafe.Pointer(first)))
				want += len(s.slots) * slotSize
			}
		}
	}
	m.off.mu.Unlock()
	if want == 0 {
		return 0, false
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lo, hi uintptr
	holds := false
	huge := 0
	for sc.Scan() {
		line := sc.Text()
		if dash := strings.IndexByte(line, '-'); dash > 0 && !strings.Contains(line[:dash], ":") {
			sp := strings.IndexByte(line, ' ')
			a, err1 := strconv.ParseUint(line[:dash], 16, 64)
			b, err2 := strconv.ParseUint(line[dash+1:sp], 16, 64)
			if err1 == nil && err2 == nil {
				lo, hi = uintptr(a), uintptr(b)
				holds = false
				for _, s := range starts {
					if lo <= s && s < hi {
						holds = true
					}
				}
				continue
			}
		}
		if holds && strings.HasPrefix(line, "AnonHugePages:") {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "AnonHugePages:")), " kB"))
			huge += kb << 10
		}
	}
	return min(float64(huge)/float64(want), 1), true
}
