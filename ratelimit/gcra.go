package ratelimit

import (
	"math"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// The buckets are token buckets kept as one number, the theoretical arrival
// time (TAT) of GCRA (ITU-T I.371): a bucket with burst b and one token per
// interval T is full when tat <= now, and a request fits when, after adding
// T to max(tat, now), tat-now is still at most b*T. This is exactly
// golang.org/x/time/rate's bucket (b tokens, refilled at 1/T, starting
// full), in 8 bytes instead of a mutex, two floats and two times, and it is
// what the Redis script computes too.

// interval returns the time one token takes to refill.
func interval(r conf.Rate) time.Duration {
	if r.N <= 0 || r.Per <= 0 {
		return 0
	}
	iv := float64(r.Per) / r.N
	if iv >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return time.Duration(iv)
}

// policyParams is what a store needs to decide for one bucket.
type policyParams struct {
	interval int64 // ns per token
	burst    int64
}

// Result is one bucket's decision.
type Result struct {
	// Allowed is whether the bucket had a token for the request.
	Allowed bool
	// Remaining is how many more requests the bucket would allow now.
	Remaining int64
	// RetryAfter is how long until a request would fit; 0 when allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again.
	Reset time.Duration
}

// gcra decides for one bucket at now. It returns the new TAT (the old one
// when the request is refused) and the result.
func gcra(tat, now int64, p policyParams) (int64, Result) {
	tat, ok := gcraTake(tat, now, p)
	return tat, gcraResult(ok, tat, now, p)
}

// gcraTake is gcra's decision alone: whether the request fits, and the
// TAT after it (when refused, the old one, at least now).
func gcraTake(tat, now int64, p policyParams) (int64, bool) {
	if tat < now {
		tat = now
	}
	next := tat + p.interval
	if next-now > p.burst*p.interval {
		return tat, false
	}
	return next, true
}

// gcraResult is the Result of a decision gcraTake returned: the numbers a
// client sees in headers and refusals. It is worked out only when a
// response needs it, as it costs a division.
func gcraResult(ok bool, tat, now int64, p policyParams) Result {
	if !ok {
		return Result{
			Allowed:    false,
			Remaining:  0,
			RetryAfter: time.Duration(tat + p.interval - now - p.burst*p.interval),
			Reset:      time.Duration(tat - now),
		}
	}
	return Result{
		Allowed:   true,
		Remaining: (now + p.burst*p.interval - tat) / p.interval,
		Reset:     time.Duration(tat - now),
	}
}
