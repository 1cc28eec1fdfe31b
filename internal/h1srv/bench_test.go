package h1srv

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The benchmarks drive one keep-alive connection over loopback with a
// tiny handler, through this server and through net/http, so the figures
// are the servers' own per-request cost (client included, the same for
// both). Compare with benchstat; -benchmem shows allocations per request.

var helloHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello, world\n")
})

const benchReq = "GET /hello?x=1 HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"

func benchServe(b *testing.B, serve func(net.Listener), pipeline int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	batch := strings.Repeat(benchReq, pipeline)
	// The response length is fixed: read it by size, not by parsing, so
	// the client costs little.
	io.WriteString(c, benchReq)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if n%pipeline == 0 {
			if _, err := io.WriteString(c, batch); err != nil {
				b.Fatal(err)
			}
		}
		n++
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := br.Discard(len("hello, world\n")); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Read away what is left of the last batch.
	for n%pipeline != 0 {
		n++
		for {
			line, _ := br.ReadSlice('\n')
			if len(line) == 2 {
				break
			}
		}
		br.Discard(len("hello, world\n"))
	}
	ln.Close()
}

func BenchmarkH1srv(b *testing.B) {
	s := &Server{Handler: helloHandler}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 1)
}

func BenchmarkNetHTTP(b *testing.B) {
	s := &http.Server{Handler: helloHandler}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 1)
}

func BenchmarkH1srvPipelined16(b *testing.B) {
	s := &Server{Handler: helloHandler}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 16)
}

func BenchmarkNetHTTPPipelined16(b *testing.B) {
	s := &http.Server{Handler: helloHandler}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 16)
}

// BenchmarkH1srvWatchEvery watches every request for the client leaving,
// as net/http does (CloseCheckDelay of 1ns instead of 10ms): the cost of
// the background read.
func BenchmarkH1srvWatchEvery(b *testing.B) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spin(50 * time.Microsecond) // long enough for the watch to start
		helloHandler(w, r)
	}), CloseCheckDelay: time.Nanosecond}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 1)
}

// BenchmarkH1srvWatchNever is the same handler without the watch.
func BenchmarkH1srvWatchNever(b *testing.B) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spin(50 * time.Microsecond)
		helloHandler(w, r)
	}), CloseCheckDelay: -1}
	b.Cleanup(func() { s.Close() })
	benchServe(b, func(ln net.Listener) { s.Serve(ln) }, 1)
}

// spin busies the handler for d (a sleep would measure timer slack).
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}
