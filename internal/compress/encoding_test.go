package compress

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"empty": nil,
		"text":  []byte(strings.Repeat("body { color: red; }\n", 500)),
		"bytes": func() []byte {
			b := make([]byte, 70000)
			for i := range b {
				b[i] = byte(i * 7 % 251)
			}
			return b
		}(),
	}
	for _, e := range []Encoding{Gzip, Brotli, Zstd} {
		for name, in := range inputs {
			for _, level := range []int{1, Max.Level(e)} {
				out := Encode(e, level, in)
				got, err := Decode(e, out)
				if err != nil {
					t.Fatalf("%v/%s/%d: decode: %v", e, name, level, err)
				}
				if !bytes.Equal(got, in) {
					t.Fatalf("%v/%s/%d: round trip differs", e, name, level)
				}
			}
		}
	}
}

func TestWorth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		orig, enc int
		want      bool
	}{{100, 95, true}, {100, 96, false}, {1000, 10, true}, {0, 0, true}, {10, 20, false}} {
		if got := Worth(c.orig, c.enc); got != c.want {
			t.Errorf("Worth(%d, %d) = %v", c.orig, c.enc, got)
		}
	}
}

func TestCompressible(t *testing.T) {
	t.Parallel()
	yes := []string{"text/html; charset=utf-8", "text/css", "text/javascript", "application/json", "image/svg+xml", "application/wasm", "font/ttf", "font/otf", "image/x-icon", "application/vnd.api+json", "application/manifest+json"}
	no := []string{"image/png", "image/webp", "video/mp4", "application/zip", "font/woff2", "font/woff", "application/octet-stream", "", "text/event-stream", "application/gzip"}
	for _, ct := range yes {
		if !Compressible(ct) {
			t.Errorf("Compressible(%q) = false", ct)
		}
	}
	for _, ct := range no {
		if Compressible(ct) {
			t.Errorf("Compressible(%q) = true", ct)
		}
	}
}

func BenchmarkEncodePooled(b *testing.B) {
	in := []byte(strings.Repeat("<p>hello world, this is a page</p>\n", 200))
	for _, e := range []Encoding{Gzip, Brotli, Zstd} {
		b.Run(e.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				Encode(e, 0, in)
			}
		})
	}
}
