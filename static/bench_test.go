package static

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	small := []byte(strings.Repeat("a { color: red }\n", 120)) // ~2 KB
	writeFileB(b, dir, "app.css", small)
	writeFileB(b, dir, "app.3f2a1b9c0d4e.css", small)
	srv, err := New([]Config{{URL: "/static/", Root: dir}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	for _, c := range []struct{ name, path, ae string }{
		{"identity", "/static/app.css", ""},
		{"br", "/static/app.css", "gzip, deflate, br, zstd"},
		{"immutable-br", "/static/app.3f2a1b9c0d4e.css", "gzip, deflate, br, zstd"},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, _ := srv.Match(c.path)
			r := httptest.NewRequest("GET", c.path, nil)
			if c.ae != "" {
				r.Header.Set("Accept-Encoding", c.ae)
			}
			// The header map is reused, so allocs/op are the handler's own
			// (net/http allocates a fresh map per request regardless).
			w := &discardWriter{h: make(http.Header, 16)}
			b.ReportAllocs()
			b.SetBytes(int64(len(small)))
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

func writeFileB(b *testing.B, dir, name string, data []byte) {
	b.Helper()
	if err := writeFileErr(dir, name, data); err != nil {
		b.Fatal(err)
	}
}
