package watchdog

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestDeadlineAborts(t *testing.T) {
	var d Dog
	var aborted atomic.Int32
	e := &Entry{Abort: func() { aborted.Add(1) }}
	begin := time.Now()
	d.Watch(e, context.Background(), time.Now().Add(30*time.Millisecond))
	waitFor(t, "the abort", func() bool { return aborted.Load() == 1 })
	if took := time.Since(begin); took < 30*time.Millisecond {
		t.Errorf("aborted after %v, before the deadline", took)
	}
	if got := d.Release(e); got != Expired {
		t.Errorf("Release = %v, want Expired", got)
	}
	time.Sleep(3 * Tick)
	if n := aborted.Load(); n != 1 {
		t.Errorf("Abort called %d times, want once", n)
	}
}

func TestCancelAborts(t *testing.T) {
	var d Dog
	var aborted atomic.Bool
	e := &Entry{Abort: func() { aborted.Store(true) }}
	ctx, cancel := context.WithCancel(context.Background())
	d.Watch(e, ctx, time.Time{})
	time.Sleep(3 * Tick)
	if aborted.Load() {
		t.Fatal("aborted while the context was live")
	}
	cancel()
	waitFor(t, "the abort", aborted.Load)
	if got := d.Release(e); got != Canceled {
		t.Errorf("Release = %v, want Canceled", got)
	}
}

// A released entry, and one whose deadline was cleared, are left alone;
// the entry can be watched again.
func TestReleaseAndClearDeadline(t *testing.T) {
	var d Dog
	var aborted atomic.Int32
	e := &Entry{Abort: func() { aborted.Add(1) }}
	d.Watch(e, context.Background(), time.Now().Add(20*time.Millisecond))
	if got := d.Release(e); got != None {
		t.Fatalf("Release = %v, want None", got)
	}
	d.Watch(e, context.Background(), time.Now().Add(20*time.Millisecond))
	e.ClearDeadline()
	time.Sleep(6 * Tick)
	if got := d.Release(e); got != None || aborted.Load() != 0 {
		t.Fatalf("Release = %v, aborts %d; want None, 0", got, aborted.Load())
	}
	if d.Watching() != 0 {
		t.Errorf("still watching %d", d.Watching())
	}
}

// The goroutine ends when nothing is watched for a while and a new Watch
// starts it again.
func TestGoroutineStopsAndRestarts(t *testing.T) {
	var d Dog
	e := &Entry{Abort: func() {}}
	d.Watch(e, context.Background(), time.Time{})
	d.Release(e)
	waitFor(t, "the goroutine to end", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.running
	})
	var aborted atomic.Bool
	e2 := &Entry{Abort: func() { aborted.Store(true) }}
	d.Watch(e2, context.Background(), time.Now())
	waitFor(t, "the abort after a restart", aborted.Load)
	d.Release(e2)
}

func BenchmarkWatchRelease(b *testing.B) {
	var d Dog
	e := &Entry{Abort: func() {}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deadline := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		d.Watch(e, ctx, deadline)
		d.Release(e)
	}
}
