package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/h1"
	"github.com/prometheus/client_golang/prometheus"
)

// benchResponse is what the raw backend answers: the bench's small page.
const benchResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n"

// startRawBackend serves benchResponse to every request head on loopback
// without net/http, so that a benchmark's allocations are the proxy's.
func startRawBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	resp := []byte(benchResponse)
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 { // end of a head; GETs have no body
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// benchPool is an h1.Transport aimed at one address: the upstream pool
// without its queue (workers is not importable from here).
func benchPool(tb testing.TB, addr string) Pool {
	t := &h1.Transport{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	tb.Cleanup(t.CloseIdleConnections)
	return t
}

// BenchmarkForward measures one small GET through the whole front (the
// HTTP server, the request flow, the forwarder, the h1 transport) to a
// raw loopback backend, from a raw keep-alive client, one at a time. The
// client and the backend allocate nothing per request, so allocs/op are
// gatehouse's.
func BenchmarkForward(b *testing.B) {
	for _, access := range []bool{false, true} {
		b.Run("access="+strconv.FormatBool(access), func(b *testing.B) {
			opts := Options{
				Config: testConfig(nil),
				Pool:   benchPool(b, startRawBackend(b)),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			if access {
				opts.AccessLog = slog.New(slog.NewJSONHandler(io.Discard, nil))
			}
			s, err := New(opts, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Listen(); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = s.Serve(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			c, err := net.Dial("tcp", s.Addrs()[0].String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /bench?q=1 HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
			br := bufio.NewReaderSize(c, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readRawResponse(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readRawResponse reads one response framed by Content-Length, without
// allocating.
func readRawResponse(br *bufio.Reader) error {
	length := -1
	status := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return &benchErr{string(line)}
			}
			status = false
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = 0
			for _, ch := range bytes.TrimSpace(v) {
				length = length*10 + int(ch-'0')
			}
		}
	}
	if length < 0 {
		return &benchErr{"no Content-Length"}
	}
	_, err := br.Discard(length)
	return err
}

type benchErr struct{ s string }

func (e *benchErr) Error() string { return "bad response: " + e.s }

// nopWriter is a ResponseWriter that keeps nothing, for calling the
// front's handler directly.
type nopWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(status int)      { w.status = status }
func (w *nopWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *nopWriter) Flush()                      {}

// SetWriteDeadline is there because the recorder sets one, as on a real
// connection; without it each call would make an error.
func (w *nopWriter) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkFrontHandler calls the front's ServeHTTP directly (no HTTP
// server), so what it counts is what happens after the handler is called:
// the request flow, the forwarder, metrics, the h1 transport and its
// loopback exchange.
func BenchmarkFrontHandler(b *testing.B) {
	s, err := New(Options{
		Config: testConfig(nil),
		Pool:   benchPool(b, startRawBackend(b)),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	f := s.cur.Load()
	u, _ := url.ParseRequestURI("/bench?q=1")
	ua, accept := []string{"wrk"}, []string{"*/*"}
	r := &http.Request{
		Method: "GET", URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Host: "bench.example", RemoteAddr: "127.0.0.1:40000", RequestURI: "/bench?q=1",
		Header: http.Header{}, Body: http.NoBody,
	}
	r = r.WithContext(context.Background())
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(r.Header)
		r.Header["User-Agent"], r.Header["Accept"] = ua, accept
		clear(w.h)
		w.status, w.n = 0, 0
		f.ServeHTTP(w, r)
		if w.status != 200 || w.n != 13 {
			b.Fatalf("got %d, %d bytes", w.status, w.n)
		}
	}
}
