//go:build linux

package workers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// subreaper plays PID 1: as a child subreaper it adopts orphans the way
// PID 1 does. It makes an orphan that turns into a zombie, and prints
// whether ReapOrphans reaped it.
func subreaper() {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		fmt.Println("SKIP prctl:", e)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ReapOrphans(ctx, nil)
	// A worker-like child that leaves a background job behind and exits:
	// the job is adopted by us and dies 200ms later.
	if err := exec.Command("sh", "-c", "sleep 0.2 & exit 0").Run(); err != nil {
		fmt.Println("FAIL", err)
		return
	}
	// A child that we wait for ourselves (as the supervisor does, with a
	// goroutine blocked in Wait) must not be stolen.
	own := exec.Command("sleep", "1.5")
	own.Start()
	ownErr := make(chan error, 1)
	go func() { ownErr <- own.Wait() }()
	var sawZombie bool
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		z := zombieChildren(os.Getpid())
		if len(z) > 0 {
			sawZombie = true
		} else if sawZombie {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-ownErr; err != nil {
		fmt.Println("FAIL own child's status was taken:", err)
		return
	}
	if z := zombieChildren(os.Getpid()); !sawZombie || len(z) > 0 {
		fmt.Println("FAIL zombies:", sawZombie, z)
		return
	}
	fmt.Println("OK")
}

func TestReapOrphans(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "GATEHOUSE_SUBREAPER=1")
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	switch {
	case strings.HasPrefix(s, "SKIP"):
		t.Skip(s)
	case err != nil || s != "OK":
		t.Fatalf("%s %v", s, err)
	}
}
