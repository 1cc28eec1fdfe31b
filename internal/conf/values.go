package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count. In YAML it is a plain integer (bytes) or a number
// with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB, TiB (powers
// of 1024), e.g. "32KiB" or "100MiB". Units are case-sensitive in the
// binary prefixes and case-insensitive otherwise, as most people write "kb".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
	fold   bool
}{
	{"TiB", 1 << 40, false}, {"GiB", 1 << 30, false}, {"MiB", 1 << 20, false}, {"KiB", 1 << 10, false},
	{"TB", 1e12, true}, {"GB", 1e9, true}, {"MB", 1e6, true}, {"KB", 1e3, true},
	{"B", 1, true},
}

// ParseSize parses a size such as "512", "32KiB" or "1.5GB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty value, want a number with a unit such as 32KiB or 100MiB")
	}
	mult := int64(1)
	num := t
	for _, u := range sizeUnits {
		if len(t) > len(u.suffix) && (strings.HasSuffix(t, u.suffix) || u.fold && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix)) {
			mult, num = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a size, want a number with a unit such as 32KiB or 100MiB", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	v := f * float64(mult)
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String formats the size with the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range sizeUnits[:4] {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Duration is a time.Duration written in Go syntax ("30s", "1h30m"), with
// "d" accepted for days ("365d") because HSTS and cache lifetimes are
// naturally counted in days.
type Duration time.Duration

// ParseDuration parses Go duration syntax plus a whole-days form "Nd".
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(t, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err == nil && days >= 0 && days < 100*365 {
			return Duration(time.Duration(days) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration, want Go syntax such as 30s, 5m or 1h30m (or 365d)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return Duration(d), nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// Rate is a number of events per period, written "N/s", "N/m", "N/h" or
// "N/d" (e.g. "20/s", "100/h"). The zero Rate means "no events allowed"
// only where the using package says so; most treat it as "not set".
type Rate struct {
	N   float64
	Per time.Duration
}

var ratePeriods = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate parses "N/unit" where unit is s, m, h or d.
func ParseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	per, known := ratePeriods[strings.TrimSpace(unit)]
	if !ok || !known {
		return Rate{}, fmt.Errorf("%q is not a rate, want N/s, N/m, N/h or N/d such as 20/s or 100/h", s)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return Rate{}, fmt.Errorf("%q does not start with a non-negative number", s)
	}
	return Rate{N: f, Per: per}, nil
}

// PerSecond returns the rate in events per second (0 for the zero Rate).
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return r.N / r.Per.Seconds()
}

// IsZero reports whether the rate was not set.
func (r Rate) IsZero() bool { return r.Per == 0 }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r Rate) String() string {
	unit := "s"
	for _, u := range []string{"s", "m", "h", "d"} {
		if ratePeriods[u] == r.Per {
			unit = u
		}
	}
	return strconv.FormatFloat(r.N, 'f', -1, 64) + "/" + unit
}
