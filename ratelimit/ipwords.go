package ratelimit

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// Every request derives its bucket key from the client address: mask it to
// its prefix, hash it. Through netip's API that means As16 (the address
// stored as two big-endian words, reloaded as one 16-byte value, which
// the CPU cannot forward from the two stores and so stalls on) and
// AddrFrom16, about 45 ns together on the development VM; on the words
// themselves it is a few instructions. addrWords mirrors netip.Addr's
// layout (the 128-bit address as hi and lo, then the zone handle, whose
// sentinels for IPv4 and zoneless IPv6 are read off known addresses), and
// checkWords verifies the mirror at start-up against the API: if a Go
// release changes the layout, wordsOK is false and the portable code runs.
type addrWords struct {
	hi, lo uint64
	z      unsafe.Pointer
}

var (
	wordsZ4 = wordsOf(netip.IPv4Unspecified()).z
	wordsZ6 = wordsOf(netip.IPv6Unspecified()).z
	wordsOK = checkWords()
)

func wordsOf(a netip.Addr) addrWords { return *(*addrWords)(unsafe.Pointer(&a)) }

// portableWords is what wordsOf must return for a valid address, and what
// the hash uses when it cannot.
func portableWords(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func checkWords() bool {
	if unsafe.Sizeof(netip.Addr{}) != unsafe.Sizeof(addrWords{}) {
		return false
	}
	if wordsOf(netip.Addr{}).z != nil || wordsZ4 == nil || wordsZ6 == nil || wordsZ4 == wordsZ6 {
		return false
	}
	for _, s := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1:2:3:4", "fe80::1%eth0", "255.255.255.255"} {
		a := netip.MustParseAddr(s)
		w := wordsOf(a)
		hi, lo := portableWords(a)
		if w.hi != hi || w.lo != lo {
			return false
		}
		wantZ := w.z == wordsZ6
		switch {
		case a.Is4():
			wantZ = w.z == wordsZ4
		case a.Zone() != "":
			wantZ = w.z != wordsZ4 && w.z != wordsZ6 && w.z != nil
		}
		if !wantZ {
			return false
		}
		// Writing the words back must give the address netip builds.
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], w.hi)
		binary.BigEndian.PutUint64(b[8:], w.lo)
		back := a
		(*addrWords)(unsafe.Pointer(&back)).z = wordsZ6
		if back != netip.AddrFrom16(b) {
			return false
		}
		if a.Is4() {
			back = netip.AddrFrom16(b)
			(*addrWords)(unsafe.Pointer(&back)).z = wordsZ4
			if back != a {
				return false
			}
		}
	}
	return true
}

// ipMasks are the configured prefixes as masks of netip.Addr's words.
type ipMasks struct {
	v4       uint64 // the low word of an IPv4 address (::ffff:a.b.c.d)
	hi6, lo6 uint64
}

func makeIPMasks(v4Prefix, v6Prefix int) ipMasks {
	m := ipMasks{v4: ^uint64(0)}
	if v4Prefix < 32 {
		m.v4 &^= 1<<(32-v4Prefix) - 1
	}
	m.hi6, m.lo6 = mask128(^uint64(0), ^uint64(0), v6Prefix)
	return m
}

// maskIP groups an address by the configured prefix: IPv4 (and IPv4-mapped
// IPv6, which it unmaps) by ipv4_prefix, IPv6 by ipv6_prefix, dropping any
// zone. The invalid address (no client address known) is ::.
//
// IPv4 or IPv6 is chosen without a branch (conditional moves): a crowd of
// clients mixes both at random, and a branch on it would be mispredicted
// for many requests, before the bucket's prefetch can start.
func (st *state) maskIP(a netip.Addr) netip.Addr {
	if !wordsOK {
		return st.maskIPPortable(a)
	}
	w := (*addrWords)(unsafe.Pointer(&a))
	if w.z == nil {
		return netip.IPv6Unspecified()
	}
	is4 := bit(w.z == wordsZ4) | bit(w.hi == 0)&bit(w.lo>>32 == 0xffff)
	m4 := -is4 // all ones for IPv4
	z := wordsZ6
	if is4 != 0 {
		z = wordsZ4
	}
	w.z = z
	w.hi &= st.masks.hi6 | m4 // an IPv4 address's hi word is 0
	w.lo &= st.masks.lo6&^m4 | st.masks.v4&m4
	return a
}

// bit is 1 for true, 0 for false (a SETcc, no branch).
func bit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// mask128 keeps the first bits of a 128-bit address.
func mask128(hi, lo uint64, bits int) (uint64, uint64) {
	if bits <= 64 {
		return hi &^ (1<<(64-bits) - 1), 0
	}
	if bits < 128 {
		lo &^= 1<<(128-bits) - 1
	}
	return hi, lo
}

func (st *state) maskIPPortable(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return netip.IPv6Unspecified()
	}
	a = a.Unmap()
	if a.Is4() {
		if st.cfg.IPv4Prefix >= 32 {
			return a
		}
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:]) &^ (1<<(32-st.cfg.IPv4Prefix) - 1)
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	hi, lo := portableWords(a)
	hi, lo = mask128(hi, lo, st.cfg.IPv6Prefix)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// hashIP is the keyed hash of a masked client address that its buckets'
// hashes derive from (ipBucket): wyhash's mixing step (a 64x64->128-bit
// multiply, halves xored) on the address as two words, each xored with a
// secret. With secret keys an attacker cannot aim addresses at one probe
// run. It is one multiply, and ipBucket one more: the bucket's line is
// known, and its prefetch issued, two multiplies after the address.
func (l *Limiter) hashIP(ip netip.Addr) uint64 {
	var hi, lo uint64
	if wordsOK {
		w := (*addrWords)(unsafe.Pointer(&ip))
		hi, lo = w.hi, w.lo
	} else {
		hi, lo = portableWords(ip)
	}
	return wymix(hi^l.ipKey[0], lo^l.ipKey[1])
}

// ipBucket is the hash of policy pid's bucket for the address whose hashIP
// is ipHash: the same client in two policies lands in unrelated buckets.
func (l *Limiter) ipBucket(ipHash, pid uint64) uint64 {
	return wymix(ipHash^pid, l.ipKey[2])
}
