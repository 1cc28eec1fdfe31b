package workers

import "syscall"

// workerProcAttr puts a worker in a process group of its own (so that a
// signal to the group reaches what the worker started) and has the kernel
// kill it if gatehouse dies without stopping it (kill -9, a crash): no
// orphaned workers holding the port.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
