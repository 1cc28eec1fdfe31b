package ratelimit

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
	"golang.org/x/time/rate"
)

// t0 is an arbitrary instant; the step tables count from it.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestGCRASteps(t *testing.T) {
	// 2 tokens a second, burst 3: three at once, then one each 500ms.
	p := paramsOf(Limit{Rate: conf.Rate{N: 2, Per: time.Second}, Burst: 3})
	steps := []struct {
		at        time.Duration
		allowed   bool
		remaining int64
		retry     time.Duration
	}{
		{0, true, 2, 0},
		{0, true, 1, 0},
		{0, true, 0, 0},
		{0, false, 0, 500 * time.Millisecond},
		{499 * time.Millisecond, false, 0, time.Millisecond},
		{500 * time.Millisecond, true, 0, 0},
		{500 * time.Millisecond, false, 0, 500 * time.Millisecond},
		{1000 * time.Millisecond, true, 0, 0},
		{3 * time.Second, true, 2, 0}, // quiet long enough: full again
		{3 * time.Second, true, 1, 0},
	}
	var tat int64
	for i, s := range steps {
		now := t0.Add(s.at).UnixNano()
		var res Result
		tat, res = gcra(tat, now, p)
		if res.Allowed != s.allowed || res.Remaining != s.remaining || res.RetryAfter != s.retry {
			t.Errorf("step %d at +%v: got allowed=%v remaining=%d retry=%v, want %v %d %v",
				i, s.at, res.Allowed, res.Remaining, res.RetryAfter, s.allowed, s.remaining, s.retry)
		}
	}
}

// TestGCRAMatchesXTimeRate checks the promise in the docs: the same
// decisions as golang.org/x/time/rate for the same rate and burst, over an
// irregular sequence of instants.
func TestGCRAMatchesXTimeRate(t *testing.T) {
	for _, tc := range []struct {
		rate  conf.Rate
		burst int
	}{
		{conf.Rate{N: 5, Per: time.Second}, 1},
		{conf.Rate{N: 5, Per: time.Second}, 10},
		{conf.Rate{N: 100, Per: time.Hour}, 20},
		{conf.Rate{N: 7, Per: time.Minute}, 3},
	} {
		lim := rate.NewLimiter(rate.Limit(tc.rate.PerSecond()), tc.burst)
		p := paramsOf(Limit{Rate: tc.rate, Burst: tc.burst})
		var tat int64
		now := t0
		lim.AllowN(now, 0) // start the limiter's clock at t0
		step := float64(time.Second) / tc.rate.PerSecond()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 2000 {
			// Bursts of arrivals separated by gaps of varying length;
			// random offsets keep clear of the exact token boundaries
			// where x/time/rate's float arithmetic rounds either way.
			if i%7 == 0 {
				now = now.Add(time.Duration(rng.Float64() * step * 4))
			} else if i%2 == 0 {
				now = now.Add(time.Duration(rng.Float64() * step / 2))
			}
			want := lim.AllowN(now, 1)
			var res Result
			tat, res = gcra(tat, now.UnixNano(), p)
			if res.Allowed != want {
				t.Fatalf("%v burst %d, arrival %d at +%v: gcra says %v, x/time/rate %v",
					tc.rate, tc.burst, i, now.Sub(t0), res.Allowed, want)
			}
		}
	}
}
