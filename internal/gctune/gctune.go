package gctune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options configures Run.
type Options struct {
	// MinGoal is the heap size below which no cycle starts (the live heap
	// plus room to allocate). Zero means 32 MiB.
	MinGoal uint64
	// MaxPercent caps GOGC. Zero means 800.
	MaxPercent int
	// Every is how often the live heap is read. Zero means 500ms.
	Every time.Duration
	// Logger, nil for slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MinGoal == 0 {
		o.MinGoal = 32 << 20
	}
	if o.MaxPercent == 0 {
		o.MaxPercent = 800
	}
	if o.Every == 0 {
		o.Every = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Percent is the GOGC that lets a heap with live bytes alive grow to
// minGoal: at least 100, at most max.
func Percent(live, minGoal uint64, max int) int {
	if live == 0 {
		return max
	}
	if live*2 >= minGoal {
		return 100
	}
	p := (minGoal - live) * 100 / live
	return int(min(p, uint64(max)))
}

// Run adjusts GOGC every Options.Every until ctx is done, then puts back
// 100. It returns at once when the environment sets GOGC or GOMEMLIMIT.
func Run(ctx context.Context, o Options) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	o.defaults()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	cur := 100
	set := func(p int) {
		if p != cur {
			debug.SetGCPercent(p)
			o.Logger.Debug("garbage collector target changed", "component", "gctune", "gogc", p, "previous", cur)
			cur = p
		}
	}
	defer set(100)
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			p := Percent(sample[0].Value.Uint64(), o.MinGoal, o.MaxPercent)
			// Small moves are not worth a call: SetGCPercent stops the
			// world briefly.
			if p == 100 || p == o.MaxPercent || p > cur+cur/8 || p < cur-cur/8 {
				set(p)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
