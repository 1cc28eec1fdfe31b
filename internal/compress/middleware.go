package compress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/conf"
)

// Config is the compression of app responses (server.compression).
type Config struct {
	// Disabled turns compression of app responses off. Default false: on.
	Disabled bool `yaml:"disabled"`
	// MinSize is the smallest body worth compressing; smaller ones go out
	// as they are. Default 1KiB (below it the framing eats the gain).
	MinSize conf.Size `yaml:"min_size"`
	// Encodings lists the codings offered, any of br, zstd, gzip. Default
	// all three. Which one a client gets follows its Accept-Encoding
	// q-values, ties going br, then zstd, then gzip.
	Encodings []string `yaml:"encodings"`
	// Levels are per-coding levels; zero fields take the defaults
	// (gzip 5, brotli 4, zstd 2), chosen for speed on the fly.
	Levels Levels `yaml:"levels"`
	// Types adds media types (e.g. application/x-custom) to the built-in
	// list of compressible ones (text/*, JSON, XML, JavaScript, SVG, WASM,
	// fonts other than woff/woff2). Default none.
	Types []string `yaml:"types"`

	offered Set
	types   map[string]bool
}

// Defaults fills zero fields with the documented defaults.
func (c *Config) Defaults() {
	if c.MinSize == 0 {
		c.MinSize = 1024
	}
	if c.Encodings == nil {
		c.Encodings = []string{"br", "zstd", "gzip"}
	}
	c.Levels.Defaults()
}

// Validate checks the section; paths are relative to it.
func (c *Config) Validate() error {
	var errs conf.Errors
	if c.MinSize < 0 {
		errs.Add("min_size", "must not be negative")
	}
	for i, s := range c.Encodings {
		if e, ok := ParseEncoding(s); !ok || e == Identity {
			errs.Add("encodings["+strconv.Itoa(i)+"]", "%q is not a coding gatehouse produces; use br, zstd or gzip", s)
		}
	}
	if l := c.Levels.Gzip; l < 0 || l > 9 {
		errs.Add("levels.gzip", "must be 1 to 9")
	}
	if l := c.Levels.Brotli; l < 0 || l > 11 {
		errs.Add("levels.brotli", "must be 1 to 11")
	}
	if l := c.Levels.Zstd; l < 0 || l > 4 {
		errs.Add("levels.zstd", "must be 1 to 4")
	}
	for i, t := range c.Types {
		if !strings.Contains(t, "/") {
			errs.Add("types["+strconv.Itoa(i)+"]", "%q is not a media type such as application/x-custom", t)
		}
	}
	return errs.Err()
}

func (c *Config) compile() {
	c.offered = 0
	for _, s := range c.Encodings {
		if e, ok := ParseEncoding(s); ok && e != Identity {
			c.offered = c.offered.With(e)
		}
	}
	c.types = map[string]bool{}
	for _, t := range c.Types {
		c.types[strings.ToLower(strings.TrimSpace(t))] = true
	}
}

func (c *Config) compressible(ct string) bool {
	if Compressible(ct) {
		return true
	}
	if len(c.types) == 0 {
		return false
	}
	mt, _ := cut(ct, ';')
	return c.types[strings.ToLower(trim(mt))]
}

// Middleware returns a wrapper that compresses app responses. cfg gets
// Defaults applied; call Validate first. A response is compressed when the
// client accepts a coding, its type is compressible, it is not already
// encoded, it carries no Cache-Control: no-transform, it is not a 206, and
// its body reaches MinSize. Responses to HEAD, 1xx (WebSocket's 101), 204
// and 304 are never touched beyond Vary and the ETag.
//
// The wrapper keeps http.Flusher and http.Hijacker working and unwraps for
// http.ResponseController. A Flush before MinSize bytes commits to
// compression (a streaming body is worth it); it then flushes the encoder
// so every flushed byte reaches the client.
//
// A strong ETag from the app gets a coding suffix ("abc" becomes "abc-br")
// because the encoded body is a different representation (RFC 9110
// 8.8.3.3); the suffix is stripped from If-None-Match before the app sees
// it, and put back on a 304, so conditional requests keep working.
func Middleware(cfg Config) func(http.Handler) http.Handler {
	cfg.Defaults()
	cfg.compile()
	return func(next http.Handler) http.Handler {
		if cfg.Disabled || cfg.offered == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead || r.Header.Get("Upgrade") != "" {
				next.ServeHTTP(w, r)
				return
			}
			enc := Negotiate(r.Header["Accept-Encoding"], cfg.offered)
			cw := &responseWriter{rw: w, cfg: &cfg, enc: enc}
			if enc != Identity {
				cw.stripped = stripETagSuffix(r.Header, enc)
			}
			defer cw.finish()
			next.ServeHTTP(cw, r)
		})
	}
}

// etagSuffix is what a strong ETag gets per coding.
func etagSuffix(e Encoding) string { return "-" + e.String() }

// stripETagSuffix removes enc's suffix from the strong tags of
// If-None-Match (and If-Match) so the app compares its own tags. It reports
// whether it removed any.
func stripETagSuffix(h http.Header, enc Encoding) bool {
	suffix := etagSuffix(enc) + `"`
	stripped := false
	for _, key := range [...]string{"If-None-Match", "If-Match"} {
		vals := h[key]
		for i, v := range vals {
			if !strings.Contains(v, suffix) {
				continue
			}
			var b strings.Builder
			for j, tag := range strings.Split(v, ",") {
				if j > 0 {
					b.WriteString(", ")
				}
				t := strings.TrimSpace(tag)
				if !strings.HasPrefix(t, "W/") && strings.HasSuffix(t, suffix) && len(t) > len(suffix) {
					t = t[:len(t)-len(suffix)] + `"`
					stripped = true
				}
				b.WriteString(t)
			}
			vals[i] = b.String()
		}
	}
	return stripped
}

type state uint8

const (
	undecided state = iota // headers not sent yet
	buffering              // compressible, waiting for MinSize bytes
	encoding               // writing through the encoder
	passing                // writing straight through
)

// responseWriter decides at WriteHeader whether a response is compressed.
type responseWriter struct {
	rw       http.ResponseWriter
	cfg      *Config
	enc      Encoding
	stripped bool

	state  state
	code   int
	buf    []byte
	w      Writer
	hijack bool
}

func (cw *responseWriter) Header() http.Header { return cw.rw.Header() }

// Unwrap lets http.ResponseController reach the connection's writer.
func (cw *responseWriter) Unwrap() http.ResponseWriter { return cw.rw }

func (cw *responseWriter) WriteHeader(code int) {
	if cw.state != undecided {
		return
	}
	if code < 200 {
		// 1xx are interim (103 Early Hints) or a protocol switch (101):
		// forward untouched, the final answer is still to come.
		cw.rw.WriteHeader(code)
		return
	}
	cw.code = code
	h := cw.rw.Header()
	switch {
	case code == http.StatusNotModified:
		if cw.enc != Identity && cw.stripped {
			suffixETag(h, cw.enc)
		}
		addVary(h)
		cw.pass()
		return
	case code == http.StatusNoContent, code == http.StatusPartialContent,
		h.Get("Content-Range") != "",
		h.Get("Content-Encoding") != "" && !strings.EqualFold(h.Get("Content-Encoding"), "identity"),
		hasToken(h.Values("Cache-Control"), "no-transform"),
		!cw.cfg.compressible(h.Get("Content-Type")):
		cw.pass()
		return
	}
	addVary(h)
	if cw.enc == Identity {
		cw.pass()
		return
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n < int64(cw.cfg.MinSize) {
			cw.pass()
			return
		}
	}
	cw.state = buffering
}

func (cw *responseWriter) pass() {
	cw.state = passing
	cw.rw.WriteHeader(cw.code)
}

func (cw *responseWriter) startEncoding() {
	h := cw.rw.Header()
	h.Del("Content-Length")
	// Ranges of a body encoded on the fly cannot be served: its bytes are
	// not stable from one response to the next.
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", cw.enc.String())
	suffixETag(h, cw.enc)
	cw.state = encoding
	cw.rw.WriteHeader(cw.code)
	cw.w = NewWriter(cw.enc, cw.cfg.Levels.Level(cw.enc), cw.rw)
	if len(cw.buf) > 0 {
		cw.w.Write(cw.buf)
		cw.buf = cw.buf[:0]
	}
}

func (cw *responseWriter) Write(p []byte) (int, error) {
	if cw.state == undecided {
		if cw.rw.Header().Get("Content-Type") == "" {
			// What net/http would sniff, so the type decision sees it.
			cw.rw.Header().Set("Content-Type", http.DetectContentType(p))
		}
		cw.WriteHeader(http.StatusOK)
	}
	switch cw.state {
	case buffering:
		if len(cw.buf)+len(p) < int(cw.cfg.MinSize) {
			cw.buf = append(cw.buf, p...)
			return len(p), nil
		}
		cw.startEncoding()
		fallthrough
	case encoding:
		return cw.w.Write(p)
	}
	return cw.rw.Write(p)
}

// ReadFrom keeps sendfile and splice working for bodies passed through
// unchanged (io.Copy from a file or an upstream connection).
func (cw *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if cw.state == undecided && cw.rw.Header().Get("Content-Type") != "" {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.state == passing {
		if rf, ok := cw.rw.(io.ReaderFrom); ok {
			return rf.ReadFrom(src)
		}
	}
	return io.Copy(writerOnly{cw}, src)
}

// writerOnly hides ReadFrom so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }

// Flush sends what the app wrote so far: a body still below MinSize is
// committed to compression, then the encoder and the connection are flushed.
func (cw *responseWriter) Flush() {
	if cw.state == undecided {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.state == buffering {
		cw.startEncoding()
	}
	if cw.state == encoding {
		cw.w.Flush()
	}
	http.NewResponseController(cw.rw).Flush()
}

// Hijack hands the connection over (WebSocket after a 101 the app writes
// itself); nothing of ours is written afterwards.
func (cw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(cw.rw).Hijack()
	if err == nil {
		cw.hijack = true
	}
	return c, rw, err
}

// finish ends the response after the handler returned.
func (cw *responseWriter) finish() {
	if cw.hijack {
		return
	}
	switch cw.state {
	case buffering:
		// The whole body stayed below MinSize: send it as it is, with an
		// exact length.
		h := cw.rw.Header()
		h.Set("Content-Length", strconv.Itoa(len(cw.buf)))
		cw.state = passing
		cw.rw.WriteHeader(cw.code)
		cw.rw.Write(cw.buf)
	case encoding:
		cw.w.Close()
		PutWriter(cw.enc, cw.cfg.Levels.Level(cw.enc), cw.w)
		cw.w = nil
	}
}

// suffixETag marks a strong ETag as belonging to the encoded representation.
func suffixETag(h http.Header, enc Encoding) {
	et := h.Get("Etag")
	if len(et) < 2 || strings.HasPrefix(et, "W/") || et[len(et)-1] != '"' {
		return
	}
	h.Set("Etag", et[:len(et)-1]+etagSuffix(enc)+`"`)
}

// addVary adds Accept-Encoding to Vary once: the body depends on it, and a
// cache that did not know would give a gzip body to a client without gzip.
func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		if hasToken([]string{v}, "Accept-Encoding") || strings.TrimSpace(v) == "*" {
			return
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

// hasToken reports whether a comma-separated header contains tok
// (case-insensitive, parameters ignored).
func hasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for v != "" {
			var t string
			t, v = cut(v, ',')
			t, _ = cut(t, '=')
			if ascii.EqualFold(trim(t), tok) {
				return true
			}
		}
	}
	return false
}
