package main

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGCDefaultsTo200UnlessGOGCIsSet(t *testing.T) {
	old, had := os.LookupEnv("GOGC")
	t.Cleanup(func() {
		if had {
			os.Setenv("GOGC", old)
		}
		debug.SetGCPercent(100)
	})

	os.Unsetenv("GOGC")
	debug.SetGCPercent(100)
	tuneGC()
	if got := debug.SetGCPercent(100); got != 200 {
		t.Errorf("without GOGC: GC percent %d, want 200", got)
	}

	os.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // what the runtime read from GOGC at start
	tuneGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("with GOGC=50: GC percent %d, want it left at 50", got)
	}
}
