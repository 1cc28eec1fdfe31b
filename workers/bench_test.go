package workers

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// BenchmarkUpstreamRoundTrip measures the pool's own cost per request
// (admission, keep-alive connection, metrics) against a local backend.
func BenchmarkUpstreamRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p, err := New(Config{Upstreams: []string{addr(srv)}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := reqinfo.With(context.Background(), &reqinfo.Info{ID: "b", Start: time.Now()})
	req := httptest.NewRequest("GET", "http://example.com/x", nil).WithContext(ctx)
	req.RequestURI = ""
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkEnviron measures encoding a typical browser request for the shim.
func BenchmarkEnviron(b *testing.B) {
	r := httptest.NewRequest("GET", "http://example.com/api/notes?page=2", nil)
	for k, v := range map[string]string{
		"Accept": "text/html,application/xhtml+xml", "Accept-Encoding": "gzip, br", "Accept-Language": "en",
		"Cookie": "sessionid=abc; csrftoken=def", "User-Agent": "Mozilla/5.0", "X-Request-Id": "0123456789",
		"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
	} {
		r.Header.Set(k, v)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		_, buf = encodeEnviron(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkParseHead measures decoding a typical response head from the shim.
func BenchmarkParseHead(b *testing.B) {
	h := head(":status", "200 OK", "Content-Type", "application/json", "Content-Length", "59",
		"X-Content-Type-Options", "nosniff", "Referrer-Policy", "same-origin", "Vary", "Cookie")[5:]
	b.ReportAllocs()
	b.SetBytes(int64(len(h)))
	for b.Loop() {
		if _, err := parseHead(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWSGIRoundTrip measures gatehouse's side of app.wsgi per request
// (admission, environ, framing, head parsing, reading the body whole,
// keep-alive) against an in-process stand-in for the shim that answers
// every request with a canned small JSON response, as Django's would be.
func BenchmarkWSGIRoundTrip(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "shim.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	hd := head(":status", "200 OK", "Content-Type", "application/json", "X-Frame-Options", "DENY",
		"Content-Length", "41", "X-Content-Type-Options", "nosniff", "Referrer-Policy", "same-origin")
	answer := append(append(hd, frame(frameData, []byte(`{"hello": "world", "items": [0, 1, 2, 3]}`))...), frame(frameFinish, nil)...)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			// A request without a body: its Q frame, then E.
			for _, want := range []byte{frameRequestQ, frameBodyEnd} {
				typ, _, err := readFrame(br)
				if err != nil || typ != want {
					return
				}
			}
			if _, err := c.Write(answer); err != nil {
				return
			}
		}
	}()
	p, err := New(Config{Upstreams: []string{"127.0.0.1:1"}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	tr := newWSGITransport(sock, 1)
	defer tr.CloseIdleConnections()
	p.mu.Lock()
	p.members[0].rt, p.members[0].host = tr, "localhost"
	p.mu.Unlock()
	ctx := reqinfo.With(context.Background(), &reqinfo.Info{ID: "b", Start: time.Now(), ClientIP: netip.MustParseAddr("203.0.113.9")})
	req := httptest.NewRequest("GET", "http://example.com/json", nil).WithContext(ctx)
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.RequestURI = ""
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
