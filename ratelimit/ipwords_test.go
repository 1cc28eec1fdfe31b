package ratelimit

import (
	"net/netip"
	"testing"
)

// TestWordsMirror guards the fast path: if a Go release changes
// netip.Addr's layout, the limiter still works (on the portable code) but
// loses the speed the benchmarks promise, and this test says so.
func TestWordsMirror(t *testing.T) {
	if !wordsOK {
		t.Fatal("netip.Addr layout changed: maskIP and hashIP run the portable code")
	}
}

// maskState is a state with the prefixes v4 and v6, as compile makes it.
func maskState(v4, v6 int) *state {
	return &state{cfg: Config{IPv4Prefix: v4, IPv6Prefix: v6}, masks: makeIPMasks(v4, v6)}
}

// fastAndPortable masks and hashes a with both code paths.
func fastAndPortable(t *testing.T, st *state, l *Limiter, a netip.Addr) {
	t.Helper()
	fast, slow := st.maskIP(a), st.maskIPPortable(a)
	if fast != slow {
		t.Fatalf("maskIP(%v) /%d /%d: fast %v, portable %v", a, st.cfg.IPv4Prefix, st.cfg.IPv6Prefix, fast, slow)
	}
	hi, lo := portableWords(slow)
	want := wymix(hi^l.ipKey[0], lo^l.ipKey[1])
	if got := l.hashIP(fast); got != want {
		t.Fatalf("hashIP(%v): %x, portable %x", fast, got, want)
	}
}

func TestMaskIP(t *testing.T) {
	l := &Limiter{ipKey: [3]uint64{11, 22, 33}}
	for _, tc := range []struct {
		v4, v6   int
		in, want string
	}{
		{32, 64, "192.0.2.77", "192.0.2.77"},
		{24, 64, "192.0.2.77", "192.0.2.0"},
		{0, 64, "192.0.2.77", "0.0.0.0"},
		{32, 64, "::ffff:192.0.2.77", "192.0.2.77"},
		{32, 64, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{32, 48, "2001:db8:1:2:3:4:5:6", "2001:db8:1::"},
		{32, 56, "2001:db8:1:2ff:3:4:5:6", "2001:db8:1:200::"},
		{32, 96, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4::"},
		{32, 128, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
		{32, 64, "fe80::1:2:3:4%eth0", "fe80::"},
		{32, 128, "fe80::1%eth0", "fe80::1"},
		{32, 0, "2001:db8::1", "::"},
	} {
		st := maskState(tc.v4, tc.v6)
		a := netip.MustParseAddr(tc.in)
		if got := st.maskIP(a); got != netip.MustParseAddr(tc.want) {
			t.Errorf("maskIP(%s) with /%d /%d = %v, want %s", tc.in, tc.v4, tc.v6, got, tc.want)
		}
		fastAndPortable(t, st, l, a)
	}
	st := maskState(32, 64)
	if got := st.maskIP(netip.Addr{}); got != netip.IPv6Unspecified() {
		t.Errorf("maskIP(invalid) = %v, want ::", got)
	}
}

// FuzzIPKey checks the fast key derivation against netip's API on any
// address and prefix lengths.
func FuzzIPKey(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, "", uint8(32), uint8(64))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}, "", uint8(24), uint8(64))
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, "", uint8(32), uint8(57))
	f.Add([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "eth0", uint8(32), uint8(128))
	l := &Limiter{ipKey: [3]uint64{5, 6, 7}}
	f.Fuzz(func(t *testing.T, b []byte, zone string, v4, v6 uint8) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		if a.Is6() && zone != "" {
			a = a.WithZone(zone)
		}
		st := maskState(int(v4%33), int(v6%129))
		fastAndPortable(t, st, l, a)
	})
}
