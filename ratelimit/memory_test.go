package ratelimit

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

// TestMemoryStoreMatchesModel runs random traffic through the store and a
// plain map of TATs: every decision must agree, though the store sweeps
// idle buckets and moves slots around as it deletes.
func TestMemoryStoreMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := newMemoryStore(1<<20, nil)
	model := map[uint64]int64{}
	p := policyParams{interval: int64(10 * time.Millisecond), burst: 3}
	// Few shards' worth of keys that collide in their low bits, so probe
	// runs are long and deletions shift slots.
	keys := make([]uint64, 3000)
	for i := range keys {
		keys[i] = uint64(rng.IntN(4))<<shardShift | uint64(rng.IntN(64))<<20 | uint64(i)<<32
	}
	now := int64(0)
	for i := range 100_000 {
		now += int64(rng.IntN(int(50 * time.Microsecond)))
		k := keys[rng.IntN(len(keys))]
		want := model[k]
		want, wres := gcra(want, now, p)
		model[k] = want
		got := m.take(k, now, p)
		if got != wres {
			t.Fatalf("op %d key %x at %d: store %+v, model %+v", i, k, now, got, wres)
		}
		if i%1000 == 0 {
			for kk, tat := range model {
				if tat <= now {
					delete(model, kk)
				}
			}
		}
	}
	// Idle buckets are swept only as new keys arrive; all that is sure is
	// that the count is consistent.
	held := 0
	for i := range m.shards {
		for _, sl := range m.shards[i].slots {
			if sl.key != 0 {
				held++
			}
		}
	}
	if n := m.Len(); n != held || n > len(keys) {
		t.Errorf("Len %d, slots in use %d, keys %d", n, held, len(keys))
	}
}

// TestMemoryStoreCapAndClock floods a small store: it never holds more
// than its cap, and a client that keeps coming back keeps its bucket.
func TestMemoryStoreCapAndClock(t *testing.T) {
	const maxKeys = 64 * 100
	m := newMemoryStore(maxKeys, nil)
	p := policyParams{interval: int64(time.Hour), burst: 5}
	rng := rand.New(rand.NewPCG(5, 6))
	regular := rng.Uint64()
	m.take(regular, 0, p) // 4 left
	for i := range 200_000 {
		m.take(rng.Uint64(), int64(i), p)
		if i%50 == 0 {
			m.take(regular, int64(i), p) // comes back, but does not exhaust
			m.refund(regular, p)
		}
		if i%10_000 == 0 {
			if n := m.Len(); n > maxKeys {
				t.Fatalf("after %d keys: %d buckets, cap %d", i, n, maxKeys)
			}
		}
	}
	if got := m.take(regular, 200_000, p); got.Remaining != 3 {
		t.Fatalf("regular client: remaining %d, want 3 (its bucket survived the flood)", got.Remaining)
	}
	if m.evicted.Load() == 0 {
		t.Fatal("no evictions counted")
	}
}

// TestMemoryStoreMappedTable fills one shard past 2 MiB of table: its
// table moves out of the heap (tables.go) at 256 KiB and onto huge pages
// at 2 MiB; every bucket survives the moves, and the mapped bytes are
// counted.
func TestMemoryStoreMappedTable(t *testing.T) {
	m := newMemoryStore(numShards*200_000, nil)
	p := policyParams{interval: int64(time.Second), burst: 1 << 20}
	rng := rand.New(rand.NewPCG(7, 8))
	// Shard 0 only: the top bits are zero.
	keys := make([]uint64, 110_000)
	for i := range keys {
		keys[i] = rng.Uint64() >> 4
		m.take(keys[i], 1, p)
	}
	if got, want := m.tableBytes(), 262144*slotSize; got != want {
		t.Fatalf("mapped %d bytes, want %d (one table of 262144 slots)", got, want)
	}
	if v := m.shards[0].view.Load(); v&^0xff != uint64(uintptr(unsafe.Pointer(&m.shards[0].slots[0]))) || 1<<(v&0xff) != len(m.shards[0].slots) {
		t.Fatalf("view %x does not describe the table", v)
	}
	for _, k := range keys[:1000] {
		s := &m.shards[0]
		if got, want := m.homeAddr(k), uintptr(unsafe.Pointer(&s.slots[home(slotKey(k), len(s.slots)-1)])); got != want {
			t.Fatalf("homeAddr(%x) = %x, want %x (its home line)", k, got, want)
		}
	}
	for i, k := range keys {
		if got := m.take(k, 1, p); got.Remaining != 1<<20-2 {
			t.Fatalf("key %d: remaining %d, want %d (its first token gone)", i, got.Remaining, 1<<20-2)
		}
	}
	if n := m.Len(); n != len(keys) {
		t.Fatalf("Len %d, want %d", n, len(keys))
	}
	m.off.freeAll()
	if m.tableBytes() != 0 {
		t.Fatal("freeAll left mapped bytes")
	}
}

// Prefetch must be safe for any address and any configuration.
func TestPrefetch(t *testing.T) {
	for _, c := range []string{"ratelimit:\n  ip: {rate: 1/s, burst: 1}\n", "ratelimit:\n  rules: [{path: /, rate: 1/s, burst: 1}]\n"} {
		cfg, err := parseConfig(t, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := New(cfg, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{{}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%eth0")} {
			l.Prefetch(a)
		}
		l.Close()
	}
}
