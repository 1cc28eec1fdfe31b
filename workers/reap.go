package workers

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// ReapOrphans reaps zombie children that nobody waits for, until ctx ends.
// Run it when gatehouse is PID 1 in a container (os.Getpid() == 1), where
// every orphaned process in the container is re-parented to gatehouse and
// would otherwise stay a zombie forever (a worker's stray grandchild, a
// shell's background job). It never takes a child that an exec.Cmd is about
// to wait for: a zombie is reaped only after it has stayed a zombie for a
// second, and Cmd.Wait (blocked in wait4 for its own pid) reaps at once.
//
//	if os.Getpid() == 1 {
//		go workers.ReapOrphans(ctx, log)
//	}
func ReapOrphans(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	first := map[int]time.Time{} // zombie pid -> when first seen
	self := os.Getpid()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-tick.C:
		}
		now := time.Now()
		seen := map[int]time.Time{}
		for _, pid := range zombieChildren(self) {
			t, ok := first[pid]
			if !ok {
				seen[pid] = now
				continue
			}
			if now.Sub(t) < time.Second {
				seen[pid] = t
				continue
			}
			var ws syscall.WaitStatus
			if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
				log.Debug("reaped an orphaned process", "component", "workers", "pid", pid, "status", ws.ExitStatus())
			}
		}
		first = seen
	}
}

// zombieChildren lists the zombies whose parent is ppid, from /proc.
func zombieChildren(ppid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so parse after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 2 || string(f[0]) != "Z" {
			continue
		}
		if p, _ := strconv.Atoi(string(f[1])); p == ppid {
			out = append(out, pid)
		}
	}
	return out
}
