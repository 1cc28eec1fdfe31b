//go:build unix && !linux

package harness

import "syscall"

// procAttr: a process group of its own (Pdeathsig is Linux only).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
