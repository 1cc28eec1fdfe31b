//go:build unix && !linux

package workers

import "syscall"

// workerProcAttr puts a worker in a process group of its own. Only Linux
// can have a worker killed when gatehouse dies without stopping it
// (Pdeathsig); elsewhere (macOS, for development) a gatehouse killed with
// SIGKILL leaves its workers running.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
