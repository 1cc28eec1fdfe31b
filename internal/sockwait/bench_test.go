//go:build unix

package sockwait

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time (user + system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExchange is one request and its answer over loopback TCP, as a
// keep-alive proxy does them: the peer answers each 64-byte request with
// 64 bytes. "conn" writes and reads with the net.Conn; "sockwait" sends
// with WriteWait (skipping the read that finds nothing) and reads with
// Read (raw system calls): one system call fewer per exchange. Both ends
// run in this process, on one Go scheduler, so this shows the cost of the
// calls more than a server's (measured 2026-11-22: 12.8 against 13.4
// cpu-µs, within the noise). cpu-ns/op is the process's CPU
// time (both ends) per exchange: a ping-pong's wall time is mostly the
// wakeups' latency, its CPU time is what a busy server pays. Compare with
//
//	go test -run '^$' -bench Exchange -count 10 ./internal/sockwait | benchstat -col /io -
func BenchmarkExchange(b *testing.B) {
	for _, mode := range []string{"conn", "sockwait"} {
		b.Run("io="+mode, func(b *testing.B) {
			a, peer := pair(b)
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(peer, buf); err != nil {
						return
					}
					if _, err := peer.Write(buf); err != nil {
						return
					}
				}
			}()
			s := New(a)
			req, resp := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if mode == "conn" {
					if _, err := a.Write(req); err != nil {
						b.Fatal(err)
					}
				} else if n, werr, rerr := s.WriteWait(req); n != len(req) || werr != nil || rerr != nil {
					b.Fatal(n, werr, rerr)
				}
				for got := 0; got < len(resp); {
					var n int
					var err error
					if mode == "conn" {
						n, err = a.Read(resp[got:])
					} else {
						n, err = s.Read(resp[got:])
					}
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
