//go:build !linux

package ratelimit

func threadCPU() (int64, bool) { return 0, false }
