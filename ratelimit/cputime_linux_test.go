package ratelimit

import (
	"syscall"
	"unsafe"
)

// threadCPU is the CPU time the calling thread has used (the caller locks
// its goroutine to the thread). On a machine shared with other work, time
// spent waiting for a CPU inflates ns/op; this does not count it.
func threadCPU() (ns int64, ok bool) {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
