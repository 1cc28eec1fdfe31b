//go:build linux && (amd64 || arm64)

package ratelimit

import (
	"syscall"
	"unsafe"
)

// mapTable maps n slots. A table of hugeTable bytes or more is aligned to
// a huge page (mapping one huge page more than needed: address space, not
// memory, as the slack is never touched) and advised to use huge pages. It
// returns nil if the kernel refuses the mapping; the caller then takes
// heap memory.
func mapTable(n int) (mapping []byte, t []slot) {
	size := n * slotSize
	slack := 0
	if size >= hugeTable {
		slack = hugeTable
	}
	m, err := syscall.Mmap(-1, 0, size+slack, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	b := m[:size]
	if slack > 0 {
		off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (hugeTable - 1))
		b = m[off : off+size]
		// Advice only: without transparent huge pages the table works
		// the same on small pages.
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
	return m, unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func unmapTable(m []byte) { _ = syscall.Munmap(m) }
