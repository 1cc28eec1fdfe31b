package workers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
