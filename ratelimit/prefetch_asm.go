//go:build amd64 || arm64

package ratelimit

// prefetch asks the CPU to start loading the cache line at addr and returns
// at once. A prefetch never faults and, unlike a load, does not hold up the
// instructions after it (locked instructions and the clock read included),
// so a bucket's cache miss overlaps the work done before the bucket is read.
//
//go:noescape
func prefetch(addr uintptr)
