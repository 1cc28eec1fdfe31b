package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 800},
		{1 * mib, 800},   // would be 3100: capped
		{4 * mib, 700},   // 4 + 28 = 32
		{8 * mib, 300},   // 8 + 24 = 32
		{16 * mib, 100},  // 100 already reaches 32
		{100 * mib, 100}, // never below 100
		{15 * mib, 113},  // (32-15)/15
		{31*mib + 1, 100},
	} {
		if got := Percent(c.live, 32*mib, 800); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

// The collector really runs less often with Run than without, for the
// same allocation, and GOGC is 100 again after Run returns.
func TestRunCollectsLessOften(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	cycles := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumGC
	}
	churn := func() uint32 {
		runtime.GC()
		before := cycles()
		var keep [][]byte
		for i := range 20000 {
			b := make([]byte, 4096) // 80 MB in all, 4 MB kept
			if i%20 == 0 {
				keep = append(keep, b)
			}
		}
		runtime.KeepAlive(keep)
		return cycles() - before
	}
	plain := churn()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{MinGoal: 64 << 20, Every: 5 * time.Millisecond}); close(done) }()
	time.Sleep(50 * time.Millisecond) // a first adjustment
	tuned := churn()
	cancel()
	<-done
	t.Logf("%d cycles with Run, %d without", tuned, plain)
	if tuned*2 > plain {
		t.Errorf("%d cycles with Run, %d without: want at most half", tuned, plain)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after Run = %d, want 100", p)
	}
}

func TestRunLeavesAnOperatorsGOGC(t *testing.T) {
	t.Setenv("GOGC", "50")
	done := make(chan struct{})
	go func() { Run(context.Background(), Options{}); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run kept running with GOGC set")
	}
}
