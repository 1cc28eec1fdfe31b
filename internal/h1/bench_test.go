package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRoundTrip compares this Transport with net/http's against the
// same loopback backend, one request at a time (serial) and from
// GOMAXPROCS goroutines (parallel). The backend runs in the same process,
// so the numbers include its cost; compare the ratios.
func BenchmarkRoundTrip(b *testing.B) {
	payload := strings.Repeat("x", 128)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, payload)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	transports := []struct {
		name string
		rt   func() (http.RoundTripper, func())
	}{
		{"h1", func() (http.RoundTripper, func()) {
			t := &Transport{Dial: func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			}}
			return t, t.CloseIdleConnections
		}},
		{"net-http", func() (http.RoundTripper, func()) {
			t := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			return t, t.CloseIdleConnections
		}},
	}
	one := func(b *testing.B, rt http.RoundTripper, req *http.Request, buf []byte) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(resp.Body, buf)
		resp.Body.Read(buf[n:]) // reach EOF, as a proxy's copy loop does
		resp.Body.Close()
		if n != len(payload) {
			b.Fatalf("read %d bytes", n)
		}
	}
	for _, tt := range transports {
		b.Run(tt.name+"/serial", func(b *testing.B) {
			rt, done := tt.rt()
			defer done()
			req, _ := http.NewRequest("GET", srv.URL+"/path?q=1", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			buf := make([]byte, 1024)
			b.ReportAllocs()
			for b.Loop() {
				one(b, rt, req, buf[:len(payload)+1])
			}
		})
		b.Run(tt.name+"/parallel", func(b *testing.B) {
			rt, done := tt.rt()
			defer done()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", srv.URL+"/path?q=1", nil)
				req.Header.Set("User-Agent", "bench")
				req.Header.Set("Accept", "*/*")
				buf := make([]byte, 1024)
				for pb.Next() {
					one(b, rt, req, buf[:len(payload)+1])
				}
			})
		})
	}
}
