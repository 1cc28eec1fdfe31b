//go:build !amd64 && !arm64

package ratelimit

// prefetch is a no-op where there is no assembly for it.
func prefetch(addr uintptr) {}
