package ratelimit

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// discardWriter is a ResponseWriter that keeps one header map, as a real
// server's does per request.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// addrs returns n distinct addresses: IPv4 from 10.0.0.0 up.
func addrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return out
}

// benchLimiter's IP limit never refuses in a benchmark (a burst of 5x10^7)
// and keeps every bucket live for a minute at least (one token a minute), so "1,000,000
// keys" means a million buckets in the store, none of them idle.
func benchLimiter(b *testing.B, extra string) *Limiter {
	b.Helper()
	cfg, err := parseConfig(b, "ratelimit:\n  ip: {rate: 1/m, burst: 50000000}\n  max_keys: 2000000\n"+extra, nil)
	if err != nil {
		b.Fatal(err)
	}
	l, err := New(cfg, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// clientAddrs returns n client addresses in random order, as a crowd of
// clients arrives: every other one an IPv4 address from 10.0.0.0 up, the
// rest IPv6 addresses, each in its own /64 with a random interface id
// (iid picks the ids, so two calls with different iid give the same
// clients on rotated addresses).
func clientAddrs(n int, iid uint64) []netip.Addr {
	rng := rand.New(rand.NewPCG(uint64(n), iid))
	out := make([]netip.Addr, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 17), byte(i >> 9), byte(i >> 1)})
			continue
		}
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], 0x20010db8<<32|uint64(i))
		binary.BigEndian.PutUint64(b[8:], rng.Uint64())
		out[i] = netip.AddrFrom16(b)
	}
	perm := rand.New(rand.NewPCG(uint64(n), 7)).Perm(n)
	shuffled := make([]netip.Addr, n)
	for i, j := range perm {
		shuffled[i] = out[j]
	}
	return shuffled
}

// crowd hands out the clients of clientAddrs(n, 2) in turn, round and
// round: an IPv6 client sends from another address of its /64 than the
// one (iid 1) that created its bucket.
type crowd struct {
	ips []netip.Addr
	i   int
}

func newCrowd(n int) crowd { return crowd{ips: clientAddrs(n, 2)} }

func (c *crowd) next() netip.Addr {
	ip := c.ips[c.i]
	if c.i++; c.i == len(c.ips) {
		c.i = 0
	}
	return ip
}

// warmBuckets sends one request per client of clientAddrs(n, 1) through h,
// so that every bucket exists before the timed loop.
func warmBuckets(h http.Handler, w http.ResponseWriter, r *http.Request, info *reqinfo.Info, n int) {
	for _, ip := range clientAddrs(n, 1) {
		info.ClientIP = ip
		h.ServeHTTP(w, r)
	}
}

// BenchmarkAllowed is the cost the limiter adds to an allowed request:
// Wrap's handler with a no-op next, the client address and the arrival
// time from reqinfo as the front sets them, with 1 and 1,000,000 live
// buckets, with and without the RateLimit headers. Each request is the
// next client of a shuffled crowd, half of them IPv6 clients on a
// different address of their /64 than the one that created their bucket,
// so every request pays the key derivation (masking, hashing) and a lookup
// somewhere in the whole table. The arrival time moves on by a microsecond
// a request; the front's own clock read is the front's cost, not the
// limiter's (BenchmarkAllowedOwnClock is a handler outside the front,
// which reads the clock itself).
func BenchmarkAllowed(b *testing.B) {
	for _, keys := range []int{1, 1_000_000} {
		for _, headers := range []string{"never", "always"} {
			b.Run(fmt.Sprintf("keys=%d/headers=%s", keys, headers), func(b *testing.B) {
				benchAllowed(b, keys, headers, true)
			})
		}
	}
}

// BenchmarkAllowedOwnClock is BenchmarkAllowed/headers=never without
// reqinfo's Start: the limiter reads the monotonic clock per request.
func BenchmarkAllowedOwnClock(b *testing.B) {
	for _, keys := range []int{1, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			benchAllowed(b, keys, "never", false)
		})
	}
}

func benchAllowed(b *testing.B, keys int, headers string, start bool) {
	l := benchLimiter(b, "  headers: "+headers+"\n")
	h := l.Wrap(noop)
	info := &reqinfo.Info{}
	r := httptest.NewRequest("GET", "/api/items", nil)
	r = r.WithContext(reqinfo.With(context.Background(), info))
	w := &discardWriter{h: http.Header{}}
	if start {
		info.Start = time.Now()
	}
	warmBuckets(h, w, r, info, keys) // every bucket exists
	clients := newCrowd(keys)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		info.ClientIP = clients.next()
		if start {
			info.Start = info.Start.Add(time.Microsecond)
		}
		h.ServeHTTP(w, r)
	}
	cpu.report(b)
	mem := l.state.Load().mem
	if n := mem.Len(); n != keys {
		b.Fatalf("store holds %d buckets, want %d (a rotated IPv6 address got its own)", n, keys)
	}
	// One line per lookup: the share of buckets in their home line.
	b.ReportMetric(100*homeLineShare(mem), "homeline-%")
	// A lookup misses the cache but must not miss the TLB too: the
	// tables of 2 MiB and more should sit on huge pages.
	if share, ok := hugeShare(mem); ok {
		b.ReportMetric(100*share, "hugepage-%")
	}
}

// BenchmarkHarness is BenchmarkAllowed's loop without the limiter: the
// next client of the crowd, the arrival time moved on, a no-op handler
// called. BenchmarkAllowed's figures include it; the limiter's own cost
// is the difference.
func BenchmarkHarness(b *testing.B) {
	for _, keys := range []int{1, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			info := &reqinfo.Info{Start: time.Now()}
			r := httptest.NewRequest("GET", "/api/items", nil)
			r = r.WithContext(reqinfo.With(context.Background(), info))
			w := &discardWriter{h: http.Header{}}
			var h http.Handler = noop
			clients := newCrowd(keys)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				info.ClientIP = clients.next()
				info.Start = info.Start.Add(time.Microsecond)
				h.ServeHTTP(w, r)
			}
			cpu.report(b)
		})
	}
}

// frontWork stands for what gatehouse's front does to a request between
// resolving its client address (where it calls Limiter.Prefetch) and
// handing it to the limiter: among other checks, it deletes the headers a
// client may not set (proxy/front.go's spoofable list) from a request that
// has none of them, as most have not.
var frontWork = []string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Ssl", "Forwarded", "X-Real-Ip", "X-Client-Ip",
	"True-Client-Ip", "X-Request-Id", "X-Request-Start",
}

// BenchmarkFrontPrefetch models the front as it runs with the limiter
// (proxy/front.go): per request, the client address is known, the front
// calls Limiter.Prefetch with it, does its own work (frontWork: the
// header deletes alone, a part of what it does), then calls the limiter's
// handler. prefetch=off leaves out the Prefetch call, limiter=off the
// Prefetch and the limiter (the harness and the front's work alone). The
// limiter's cost in the front is prefetch=on minus limiter=off. Each
// request is the current one, prefetched when the front would: nothing
// is started for a later request.
func BenchmarkFrontPrefetch(b *testing.B) {
	for _, keys := range []int{1, 1_000_000} {
		for _, mode := range []string{"limiter=off", "prefetch=off", "prefetch=on"} {
			b.Run(fmt.Sprintf("keys=%d/%s", keys, mode), func(b *testing.B) {
				l := benchLimiter(b, "  headers: never\n")
				var h http.Handler = noop
				if mode != "limiter=off" {
					h = l.Wrap(noop)
				}
				info := &reqinfo.Info{Start: time.Now()}
				r := httptest.NewRequest("GET", "/api/items", nil)
				r.Header.Set("User-Agent", "wrk")
				r.Header.Set("Accept", "*/*")
				r = r.WithContext(reqinfo.With(context.Background(), info))
				w := &discardWriter{h: http.Header{}}
				if mode != "limiter=off" {
					warmBuckets(h, w, r, info, keys) // every bucket exists
				}
				clients := newCrowd(keys)
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					info.ClientIP = clients.next()
					info.Start = info.Start.Add(time.Microsecond)
					if mode == "prefetch=on" {
						l.Prefetch(info.ClientIP)
					}
					for _, k := range frontWork {
						delete(r.Header, k)
					}
					h.ServeHTTP(w, r)
				}
				cpu.report(b)
			})
		}
	}
}

// BenchmarkTableMiss is the floor under BenchmarkAllowed with a million
// keys: one dependent load after another from random lines of a table
// mapped as the store maps its tables (32 MiB, huge pages), so each load
// is the one miss a lookup pays, with nothing to overlap it.
func BenchmarkTableMiss(b *testing.B) {
	const size = 32 << 20
	off := &offHeap{}
	t := off.alloc(size / slotSize)
	b.Cleanup(off.freeAll)
	lines := len(t) / lineSlots
	perm := rand.New(rand.NewPCG(1, 2)).Perm(lines)
	for i, l := range perm { // one cycle through every line
		t[l*lineSlots].tat = int64(perm[(i+1)%lines] * lineSlots)
	}
	j := int64(perm[0] * lineSlots)
	for b.Loop() {
		j = t[j].tat
	}
	if j < 0 {
		b.Fatal("unreachable")
	}
}

// cpuMeter reports the loop's CPU time per op ("cpu-ns/op") next to the
// wall time: on the shared development VM other jobs' load makes ns/op
// vary by 2x between runs, while the thread's own CPU time moves far less.
type cpuMeter struct {
	start int64
	ok    bool
}

func startCPU() cpuMeter {
	runtime.LockOSThread()
	ns, ok := threadCPU()
	return cpuMeter{ns, ok}
}

func (c cpuMeter) report(b *testing.B) {
	b.StopTimer()
	ns, ok := threadCPU()
	runtime.UnlockOSThread()
	if c.ok && ok && b.N > 0 {
		b.ReportMetric(float64(ns-c.start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkAllowedParallel is BenchmarkAllowed/keys=1000000 from every
// CPU at once: the shards keep goroutines from queueing on one lock.
func BenchmarkAllowedParallel(b *testing.B) {
	l := benchLimiter(b, "  headers: never\n")
	h := l.Wrap(noop)
	ips := addrs(1 << 16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		info := &reqinfo.Info{Start: time.Now()}
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(reqinfo.With(context.Background(), info))
		w := &discardWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			info.ClientIP = ips[i&(1<<16-1)]
			i += 7
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkAPIKey is an allowed request naming its plan by API key.
func BenchmarkAPIKey(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "\"key-%d\": {plan: pro, subject: s%d}\n", i, i)
	}
	keys := writeFile(b, dir, "keys.yaml", sb.String())
	l := benchLimiter(b, "  headers: never\n  identify: {header: X-API-Key, keys_file: "+keys+"}\n  plans: {pro: {rate: 1/m, burst: 50000000}}\n")
	h := l.Wrap(noop)
	r := request("GET", "/", "192.0.2.1", "X-API-Key", "key-4242")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerKey reports the memory each bucket costs once
// 1,000,000 are live: heap and the tables mapped outside it.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1_000_000
	ips := addrs(n)
	p := policyParams{interval: 1000, burst: 1 << 20}
	var perKey float64
	for b.Loop() {
		before := heapInUse()
		m := newMemoryStore(n, nil)
		l := &Limiter{ipKey: [3]uint64{1, 2, 3}}
		for _, ip := range ips {
			m.take(l.ipBucket(l.hashIP(ip), 1), 1, p)
		}
		after := heapInUse() + uint64(m.tableBytes())
		perKey = float64(after-before) / float64(m.Len())
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perKey, "bytes/key")
}

// BenchmarkFlood sends 5,000,000 distinct addresses through a store
// capped at 1,000,000 keys and reports the heap it holds afterwards (and
// its peak, sampled every 100,000 requests), with the tables mapped
// outside the heap.
func BenchmarkFlood(b *testing.B) {
	const flood, maxKeys = 5_000_000, 1_000_000
	var peak, final, kept uint64
	for b.Loop() {
		base := heapInUse()
		cfg, _ := parseConfig(b, "ratelimit:\n  ip: {rate: 1/h, burst: 10}\n  headers: never\n  max_keys: "+strconv.Itoa(maxKeys)+"\n", nil)
		l, err := New(cfg, Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		h := l.Wrap(noop)
		info := &reqinfo.Info{}
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(reqinfo.With(context.Background(), info))
		w := &discardWriter{h: http.Header{}}
		peak = 0
		mem := l.state.Load().mem
		for i := range flood {
			info.ClientIP = netip.AddrFrom4([4]byte{byte(11 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
			h.ServeHTTP(w, r)
			if i%100_000 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc+uint64(mem.tableBytes())-base)
			}
		}
		final = heapInUse() + uint64(mem.tableBytes()) - base
		kept = uint64(l.state.Load().mem.Len())
		if kept > maxKeys {
			b.Fatalf("store holds %d keys, cap %d", kept, maxKeys)
		}
		l.Close()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	b.ReportMetric(float64(final)/(1<<20), "final-MiB")
	b.ReportMetric(float64(kept), "keys")
}

// BenchmarkDecision is the limiter's own work for an allowed request, on
// an explicit instant (as x/time/rate's AllowN takes one): identify,
// collect the buckets, decide, count. BenchmarkAllowed adds the clock
// read, reqinfo and the handler around it.
func BenchmarkDecision(b *testing.B) {
	for _, keys := range []int{1, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			l := benchLimiter(b, "")
			st := l.state.Load()
			r := httptest.NewRequest("GET", "/api/items", nil)
			now := t0.UnixNano()
			var buf [maxChecks]check
			for _, ip := range clientAddrs(keys, 1) {
				l.decide(r.Context(), st, st.collect(buf[:0], l, r, st.maskIP(ip), l.hashIP(st.maskIP(ip)), identity{plan: -1}), now, netip.Addr{}, "", -1, countAll)
			}
			clients := newCrowd(keys)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				ip := clients.next()
				now += int64(time.Microsecond)
				id, _ := st.identify(r)
				ip = st.maskIP(ip)
				cs := st.collect(buf[:0], l, r, ip, l.hashIP(ip), id)
				ok := l.decide(r.Context(), st, cs, now, ip, id.subject, id.plan, countAll)
				if !ok {
					b.Fatal("refused")
				}
			}
			cpu.report(b)
		})
	}
}
