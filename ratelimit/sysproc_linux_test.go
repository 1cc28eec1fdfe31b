package ratelimit

import "syscall"

// childAttr puts a test's child process in its own process group and has
// the kernel kill it if the test binary dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
