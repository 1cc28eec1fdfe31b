package static

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/compress"
	"github.com/gatehouse/gatehouse/internal/conf"
)

// css is a compressible file large enough to matter and small enough to
// live in memory.
var css = []byte(strings.Repeat(".button { color: #333; background: linear-gradient(#fff, #eee); }\n", 300))

// big is larger than Cache.MaxFile in the tests, so it goes through sendfile.
var big = func() []byte {
	b := make([]byte, 300<<10)
	for i := range b {
		b[i] = byte(i*31 + i/1000)
	}
	return b
}()

type fixture struct {
	dir     string // parent of the roots
	static  string
	media   string
	private string
	srv     *Server
	front   *httptest.Server
}

// writeFile writes name under dir, creating folders.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := writeFileErr(dir, name, data); err != nil {
		t.Fatal(err)
	}
}

func writeFileErr(dir, name string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// newFixture lays out a static root, a media root, an internal root and a
// secret outside them all, and serves them behind a small front that does
// what the proxy does: Match for public mounts, and X-Accel-Redirect from
// a fake app at /app/.
func newFixture(t testing.TB, opts Options, tweak func(*fixture, []Config) []Config) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.static = filepath.Join(f.dir, "staticfiles")
	f.media = filepath.Join(f.dir, "media")
	f.private = filepath.Join(f.dir, "private")
	writeFile(t, f.dir, "secret.txt", []byte("TOP-SECRET"))
	writeFile(t, f.static, "css/site.css", css)
	writeFile(t, f.static, "css/pre.css", css)
	writeFile(t, f.static, "css/app.3f2a1b9c0d4e.css", css)
	writeFile(t, f.static, "js/app.v2.js", []byte("console.log('manifest');\n"))
	writeFile(t, f.static, "staticfiles.json", []byte(`{"paths": {"js/app.js": "js/app.v2.js"}, "version": "1.1"}`))
	writeFile(t, f.static, "img/logo.png", bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 500))
	writeFile(t, f.static, "big.bin", big)
	writeFile(t, f.static, "big.txt", bytes.Repeat([]byte("big text file line\n"), 20000))
	writeFile(t, f.static, ".env", []byte("TOP-SECRET"))
	writeFile(t, f.static, ".git/config", []byte("TOP-SECRET"))
	writeFile(t, f.static, "sub/page.txt", []byte("in sub"))
	writeFile(t, f.static, "tiny.css", []byte("a{}"))
	writeFile(t, f.media, "upload.html", []byte("<script>alert(1)</script>"))
	writeFile(t, f.media, "pic.3f2a1b9c0d4e.svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"))
	writeFile(t, f.media, "video.mp4", big)
	writeFile(t, f.private, "report.pdf", []byte("%PDF-1.7 private report"))
	writeFile(t, f.private, "docs/index.html", []byte("<h1>docs</h1>"))
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(f.dir, filepath.Join(f.static, "escape")))                             // folder link out
	must(os.Symlink(filepath.Join(f.dir, "secret.txt"), filepath.Join(f.static, "s.txt"))) // file link out
	must(os.Symlink("/etc", filepath.Join(f.static, "etc")))                               // absolute link out
	must(os.Symlink("css/site.css", filepath.Join(f.static, "inside.css")))                // link inside: fine
	if _, err := CompressTree(t.Context(), filepath.Join(f.static, "css"), TreeOptions{}); err != nil {
		t.Fatal(err)
	}
	// site.css keeps no siblings: it is compressed on the fly; pre.css and
	// the fingerprinted one keep theirs.
	for _, ext := range []string{".br", ".zst", ".gz"} {
		must(os.Remove(filepath.Join(f.static, "css/site.css"+ext)))
	}
	mounts := []Config{
		{URL: "/static/", Root: f.static},
		{URL: "/media/", Root: f.media},
		{URL: "/protected/", Root: f.private, Internal: true, Index: "index.html"},
	}
	if tweak != nil {
		mounts = tweak(f, mounts)
	}
	if opts.Cache.MaxFile == 0 {
		opts.Cache.MaxFile = 64 << 10
	}
	srv, err := New(mounts, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	t.Cleanup(func() { srv.Close() })
	f.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := srv.Match(r.URL.Path); ok {
			h.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/app/") {
			// The app answers with a header naming the file; the front
			// serves it.
			if target := r.URL.Query().Get("accel"); target != "" {
				w.Header().Set("Content-Disposition", `inline; filename="r.pdf"`)
				if cc := r.URL.Query().Get("cc"); cc != "" {
					w.Header().Set("Cache-Control", cc)
				}
				if !srv.ServeInternal(w, r, target) {
					http.Error(w, "bad X-Accel-Redirect", http.StatusBadGateway)
				}
				return
			}
			if target := r.URL.Query().Get("sendfile"); target != "" {
				if !srv.ServeSendfile(w, r, target) {
					http.Error(w, "bad X-Sendfile", http.StatusBadGateway)
				}
				return
			}
		}
		http.Error(w, "app", http.StatusTeapot)
	}))
	t.Cleanup(f.front.Close)
	return f
}

// do sends a request as written (raw path kept), without transparent gzip.
func (f *fixture) do(t *testing.T, method, rawPath string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.front.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = rawPath // sent byte for byte
	for k, v := range hdr {
		req.Header[k] = v
	}
	return roundTrip(t, req)
}

// roundTrip sends req on a fresh connection without transparent gzip and
// reads the whole body.
func roundTrip(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

var encs = []compress.Encoding{compress.Identity, compress.Gzip, compress.Brotli, compress.Zstd}

// TestGolden is the table over {identity, gzip, br, zstd} x {plain, Range,
// If-Range, HEAD, If-None-Match}: status, Content-Encoding,
// Content-Length, ETag and Vary, for a file compressed on the fly and one
// with precompressed siblings (the bugs of caddy#7040 and #7250).
func TestGolden(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	for _, file := range []string{"/static/css/site.css", "/static/css/pre.css"} {
		// The plain GET per coding gives each representation's ETag.
		etags := map[compress.Encoding]string{}
		for _, enc := range encs {
			h := http.Header{}
			if enc != compress.Identity {
				h.Set("Accept-Encoding", enc.String())
			}
			resp, body := f.do(t, "GET", file, h)
			if resp.StatusCode != 200 {
				t.Fatalf("%s %v: status %d", file, enc, resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Encoding"); got != map[bool]string{true: "", false: enc.String()}[enc == compress.Identity] {
				t.Fatalf("%s %v: Content-Encoding %q", file, enc, got)
			}
			dec, err := compress.Decode(enc, body)
			if err != nil || !bytes.Equal(dec, css) {
				t.Fatalf("%s %v: body does not decode to the file (err %v)", file, enc, err)
			}
			etags[enc] = resp.Header.Get("Etag")
		}
		seen := map[string]bool{}
		for enc, tag := range etags {
			if strings.HasPrefix(tag, "W/") || !strings.HasPrefix(tag, `"`) || seen[tag] {
				t.Fatalf("%s: ETag %q for %v is weak, malformed or shared: %v", file, tag, enc, etags)
			}
			seen[tag] = true
		}
		otherTag := func(enc compress.Encoding) string {
			if enc == compress.Identity {
				return etags[compress.Gzip]
			}
			return etags[compress.Identity]
		}
		full := func(enc compress.Encoding) int {
			_, body := f.do(t, "GET", file, hdr("Accept-Encoding", enc.String()))
			return len(body)
		}
		type want struct {
			status  int
			ce      string // "" identity
			length  int    // -1: no Content-Length header
			etag    string
			body    []byte // nil: not checked
			noBody  bool
			ctRange bool // multipart or Content-Range present
		}
		for _, enc := range encs {
			ae := enc.String()
			ce := ae
			if enc == compress.Identity {
				ce = ""
			}
			tag := etags[enc]
			id := etags[compress.Identity]
			cases := []struct {
				name string
				h    http.Header
				want want
			}{
				{"plain", hdr("Accept-Encoding", ae), want{status: 200, ce: ce, length: full(enc), etag: tag}},
				{"HEAD", hdr("Accept-Encoding", ae), want{status: 200, ce: ce, length: full(enc), etag: tag, noBody: true}},
				{"Range", hdr("Accept-Encoding", ae, "Range", "bytes=10-109"), want{status: 206, length: 100, etag: id, body: css[10:110], ctRange: true}},
				{"Range suffix", hdr("Accept-Encoding", ae, "Range", "bytes=-5"), want{status: 206, length: 5, etag: id, body: css[len(css)-5:], ctRange: true}},
				{"If-Range match", hdr("Accept-Encoding", ae, "Range", "bytes=0-9", "If-Range", id), want{status: 206, length: 10, etag: id, body: css[:10], ctRange: true}},
				{"If-Range other coding", hdr("Accept-Encoding", ae, "Range", "bytes=0-9", "If-Range", etags[compress.Brotli]), want{status: 200, length: len(css), etag: id, body: css}},
				{"If-Range weak", hdr("Accept-Encoding", ae, "Range", "bytes=0-9", "If-Range", "W/"+id), want{status: 200, length: len(css), etag: id, body: css}},
				{"INM list", hdr("Accept-Encoding", ae, "If-None-Match", `"nope", `+tag+`, "x"`), want{status: 304, length: -1, etag: tag, noBody: true}},
				{"INM weak", hdr("Accept-Encoding", ae, "If-None-Match", "W/"+tag), want{status: 304, length: -1, etag: tag, noBody: true}},
				{"INM star", hdr("Accept-Encoding", ae, "If-None-Match", "*"), want{status: 304, length: -1, etag: tag, noBody: true}},
				{"INM other coding", hdr("Accept-Encoding", ae, "If-None-Match", otherTag(enc)), want{status: 200, ce: ce, length: full(enc), etag: tag}},
				{"INM beats IMS", hdr("Accept-Encoding", ae, "If-None-Match", `"nope"`, "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)), want{status: 200, ce: ce, length: full(enc), etag: tag}},
				{"IMS", hdr("Accept-Encoding", ae, "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)), want{status: 304, length: -1, etag: tag, noBody: true}},
				{"If-Match fails", hdr("Accept-Encoding", ae, "If-Match", `"nope"`), want{status: 412, length: -2, etag: tag}},
				// http.ServeContent drops the validators from its error answers.
				{"416", hdr("Accept-Encoding", ae, "Range", "bytes=999999-"), want{status: 416, length: -2, etag: "", ctRange: true}},
			}
			for _, c := range cases {
				method := "GET"
				if c.name == "HEAD" {
					method = "HEAD"
				}
				resp, body := f.do(t, method, file, c.h)
				name := file + " " + ae + " " + c.name
				w := c.want
				if resp.StatusCode != w.status {
					t.Errorf("%s: status %d, want %d", name, resp.StatusCode, w.status)
					continue
				}
				if got := resp.Header.Get("Content-Encoding"); got != w.ce {
					t.Errorf("%s: Content-Encoding %q, want %q", name, got, w.ce)
				}
				gotLen := resp.Header.Get("Content-Length")
				switch {
				case w.length == -1 && gotLen != "":
					t.Errorf("%s: Content-Length %q on a %d", name, gotLen, w.status)
				case w.length >= 0 && gotLen != itoa(w.length):
					t.Errorf("%s: Content-Length %q, want %d", name, gotLen, w.length)
				}
				if w.length >= 0 && !w.noBody && len(body) != w.length {
					t.Errorf("%s: %d body bytes for Content-Length %d", name, len(body), w.length)
				}
				if w.noBody && len(body) != 0 {
					t.Errorf("%s: body on a %s", name, c.name)
				}
				if got := resp.Header.Get("Etag"); got != w.etag {
					t.Errorf("%s: ETag %q, want %q", name, got, w.etag)
				}
				if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
					t.Errorf("%s: Vary %q", name, got)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: no nosniff", name)
				}
				if w.body != nil && !bytes.Equal(body, w.body) {
					t.Errorf("%s: body differs", name)
				}
				if (resp.Header.Get("Content-Range") != "") != w.ctRange {
					t.Errorf("%s: Content-Range %q", name, resp.Header.Get("Content-Range"))
				}
				if w.status == 416 && resp.Header.Get("Content-Range") != "bytes */"+itoa(len(css)) {
					t.Errorf("%s: 416 Content-Range %q", name, resp.Header.Get("Content-Range"))
				}
			}
		}
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + formatInt(n)) }

func formatInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestAcceptQValues: negotiation honours q-values and falls back when the
// preferred coding has no variant (tiny files are never compressed).
func TestAcceptQValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	for _, c := range []struct{ path, ae, want string }{
		{"/static/css/pre.css", "gzip;q=1, br;q=0.5", "gzip"},
		{"/static/css/pre.css", "br;q=0, zstd;q=0.1, gzip;q=0.05", "zstd"},
		{"/static/css/pre.css", "identity;q=1, gzip;q=0.5", ""},
		{"/static/css/pre.css", "*", "br"},
		{"/static/css/site.css", "gzip, deflate, br, zstd", "br"},
		{"/static/tiny.css", "br, gzip", ""},
		{"/static/img/logo.png", "br, gzip", ""},
	} {
		resp, _ := f.do(t, "GET", c.path, hdr("Accept-Encoding", c.ae))
		if got := resp.Header.Get("Content-Encoding"); got != c.want {
			t.Errorf("%s with %q: Content-Encoding %q, want %q", c.path, c.ae, got, c.want)
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s: no Vary", c.path)
		}
	}
}

func TestCachingHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	const immutable = "public, max-age=31536000, immutable"
	for _, c := range []struct{ path, cc, ct string }{
		{"/static/css/app.3f2a1b9c0d4e.css", immutable, "text/css; charset=utf-8"},
		{"/static/js/app.v2.js", immutable, "text/javascript; charset=utf-8"}, // in staticfiles.json
		{"/static/css/site.css", "public, max-age=3600", "text/css; charset=utf-8"},
		{"/static/img/logo.png", "public, max-age=3600", "image/png"},
		{"/media/pic.3f2a1b9c0d4e.svg", "public, max-age=3600", "image/svg+xml"}, // media: never immutable
	} {
		resp, _ := f.do(t, "GET", c.path, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", c.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Cache-Control"); got != c.cc {
			t.Errorf("%s: Cache-Control %q, want %q", c.path, got, c.cc)
		}
		if got := resp.Header.Get("Content-Type"); got != c.ct {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ct)
		}
		if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Etag") == "" {
			t.Errorf("%s: no validators", c.path)
		}
		if resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("%s: no Accept-Ranges", c.path)
		}
	}
}

func TestMultiRange(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	for _, p := range []string{"/static/css/site.css", "/media/video.mp4"} {
		want := css
		if strings.HasSuffix(p, ".mp4") {
			want = big
		}
		resp, body := f.do(t, "GET", p, hdr("Range", "bytes=0-9, 100-199, -3", "Accept-Encoding", "br"))
		if resp.StatusCode != 206 {
			t.Fatalf("%s: status %d", p, resp.StatusCode)
		}
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("%s: Content-Type %q", p, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("Content-Length") != itoa(len(body)) {
			t.Errorf("%s: Content-Length %q for %d bytes", p, resp.Header.Get("Content-Length"), len(body))
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		wants := [][]byte{want[0:10], want[100:200], want[len(want)-3:]}
		for i, w := range wants {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatalf("%s: part %d: %v", p, i, err)
			}
			got, _ := io.ReadAll(part)
			if !bytes.Equal(got, w) {
				t.Errorf("%s: part %d = %q", p, i, got)
			}
		}
	}
}

// TestLargeFile: a file above Cache.MaxFile goes out from disk, whole and in
// ranges (the video-seeking case).
func TestLargeFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	resp, body := f.do(t, "GET", "/media/video.mp4", hdr("Accept-Encoding", "br"))
	if resp.StatusCode != 200 || !bytes.Equal(body, big) || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Length") != itoa(len(big)) {
		t.Fatalf("status %d, %d bytes, CE %q", resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"))
	}
	resp, body = f.do(t, "GET", "/media/video.mp4", hdr("Range", "bytes=200000-"))
	if resp.StatusCode != 206 || !bytes.Equal(body, big[200000:]) {
		t.Fatalf("range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	// A large compressible file with no sibling is sent identity.
	resp, _ = f.do(t, "GET", "/static/big.txt", hdr("Accept-Encoding", "br"))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("big.txt: status %d CE %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}

// TestTraversal sends each path byte for byte; none may reveal the secret
// or any file outside the roots.
func TestTraversal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	corpus := []string{
		"/static/../secret.txt",
		"/static/./../secret.txt",
		"/static/%2e%2e/secret.txt",
		"/static/%2E%2E/secret.txt",
		"/static/.%2e/secret.txt",
		"/static/%2e%2e%2fsecret.txt",
		"/static/..%2fsecret.txt",
		"/static/..%2Fsecret.txt",
		"/static/..%5csecret.txt",
		"/static/..\\secret.txt",
		"/static/css/..\\..\\..\\secret.txt",
		"/static/%252e%252e/secret.txt",
		"/static/%c0%ae%c0%ae/secret.txt",
		"/static/%c0%ae%c0%ae%c0%afsecret.txt",
		"/static/%e0%80%ae%e0%80%ae/secret.txt",
		"/static/%ef%bc%8e%ef%bc%8e/secret.txt",
		"/static/css/%00/../../secret.txt",
		"/static/site.css%00.png",
		"/static/%00",
		"/static/..;/secret.txt",
		"/static//../secret.txt",
		"/static/css/../../secret.txt",
		"/static/css/%2e%2e/%2e%2e/secret.txt",
		"/static/.env",
		"/static/%2eenv",
		"/static/.git/config",
		"/static/%2egit/config",
		"/static/escape/secret.txt",
		"/static/escape/staticfiles/css/site.css",
		"/static/s.txt",
		"/static/etc/passwd",
		"/static/etc/hostname",
		"/static/%2fetc/passwd",
		"/static//etc/passwd",
		"/static/%5cetc%5cpasswd",
		"/static/css/%2e",
		"/static/%",
		"/static/%zz",
		"/static/%e2%82",
		"/media/../staticfiles/.env",
		"/media/..%2fprivate/report.pdf",
		"/protected/report.pdf",
		"/static/../protected/report.pdf",
	}
	for _, p := range corpus {
		for _, m := range []string{"GET", "HEAD"} {
			resp, body := f.do(t, m, p, nil)
			if resp.StatusCode < 400 {
				t.Errorf("%s %s: status %d", m, p, resp.StatusCode)
			}
			if bytes.Contains(body, []byte("TOP-SECRET")) || bytes.Contains(body, []byte("root:")) || bytes.Contains(body, []byte("private report")) {
				t.Errorf("%s %s: leaked %q", m, p, body)
			}
		}
		// The same targets through X-Accel-Redirect.
		if !strings.HasPrefix(p, "/static/") {
			continue
		}
		resp, body := f.do(t, "GET", "/app/x?accel="+urlQuery(strings.Replace(p, "/static/", "/protected/", 1)), nil)
		if resp.StatusCode < 400 || bytes.Contains(body, []byte("TOP-SECRET")) {
			t.Errorf("accel %s: status %d body %q", p, resp.StatusCode, body)
		}
	}
	// Positive controls: a symlink inside the root, and a clean path.
	for _, p := range []string{"/static/inside.css", "/static/css/site.css", "/static/css//site.css", "/static/css/./site.css"} {
		resp, body := f.do(t, "GET", p, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, css) {
			t.Errorf("%s: status %d", p, resp.StatusCode)
		}
	}
}

func urlQuery(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return b.String()
}

func TestMethodsAndFolders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	resp, _ := f.do(t, "POST", "/static/css/site.css", nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	for _, p := range []string{"/static/", "/static/sub/", "/static/sub", "/static/css"} {
		if resp, body := f.do(t, "GET", p, nil); resp.StatusCode != 404 || bytes.Contains(body, []byte("page.txt")) {
			t.Errorf("%s: status %d (no listings, no index)", p, resp.StatusCode)
		}
	}
	if resp, _ := f.do(t, "GET", "/static", nil); resp.StatusCode != 301 || resp.Header.Get("Location") != "/static/" {
		t.Errorf("/static: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestXAccelRedirect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	// Inside an internal root: served, app's Content-Disposition kept,
	// private caching.
	resp, body := f.do(t, "GET", "/app/download?accel=/protected/report.pdf", nil)
	if resp.StatusCode != 200 || string(body) != "%PDF-1.7 private report" {
		t.Fatalf("accel: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/pdf" {
		t.Errorf("Content-Type %q", got)
	}
	if got := resp.Header.Get("Content-Disposition"); got != `inline; filename="r.pdf"` {
		t.Errorf("Content-Disposition %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); !strings.HasPrefix(got, "private") {
		t.Errorf("Cache-Control %q", got)
	}
	// The app's Cache-Control wins over the mount's.
	resp, _ = f.do(t, "GET", "/app/download?accel=/protected/report.pdf&cc=no-store", nil)
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("app Cache-Control replaced: %q", got)
	}
	// Conditionals and ranges apply to the internal file too.
	resp, body = f.do(t, "GET", "/app/download?accel=/protected/report.pdf", hdr("Range", "bytes=0-3"))
	if resp.StatusCode != 206 || string(body) != "%PDF" {
		t.Errorf("accel range: %d %q", resp.StatusCode, body)
	}
	tag := resp.Header.Get("Etag")
	resp, _ = f.do(t, "GET", "/app/download?accel=/protected/report.pdf", hdr("If-None-Match", tag))
	if resp.StatusCode != 304 {
		t.Errorf("accel INM: %d", resp.StatusCode)
	}
	// A POST to the app that answers with X-Accel-Redirect gets the file.
	if resp, body := f.do(t, "POST", "/app/download?accel=/protected/report.pdf", nil); resp.StatusCode != 200 || string(body) != "%PDF-1.7 private report" {
		t.Errorf("accel after POST: %d %q", resp.StatusCode, body)
	}
	// Index of a folder in an internal mount.
	if resp, body := f.do(t, "GET", "/app/x?accel=/protected/docs/", nil); resp.StatusCode != 200 || string(body) != "<h1>docs</h1>" {
		t.Errorf("accel index: %d %q", resp.StatusCode, body)
	}
	// Outside any internal root: the front gets false and answers 502.
	for _, target := range []string{"/static/css/site.css", "/media/upload.html", "/etc/passwd", "/protectedx/report.pdf", "relative"} {
		if resp, body := f.do(t, "GET", "/app/x?accel="+urlQuery(target), nil); resp.StatusCode != 502 {
			t.Errorf("accel %s: %d %q", target, resp.StatusCode, body)
		}
	}
	// The mount's own folder, with and without the slash: its index.
	for _, target := range []string{"/protected", "/protected/"} {
		if resp, _ := f.do(t, "GET", "/app/x?accel="+target, nil); resp.StatusCode != 404 {
			t.Errorf("accel %s: %d (no index.html at the top)", target, resp.StatusCode)
		}
	}
	// Missing file under an internal root: 404 from the mount.
	if resp, _ := f.do(t, "GET", "/app/x?accel=/protected/nope.pdf", nil); resp.StatusCode != 404 {
		t.Errorf("accel missing: %d", resp.StatusCode)
	}
	// The internal mount is not reachable directly.
	if resp, _ := f.do(t, "GET", "/protected/report.pdf", nil); resp.StatusCode != 418 {
		t.Errorf("direct internal: %d (want the app's 418: not routed to static)", resp.StatusCode)
	}
	// X-Sendfile names a filesystem path.
	if resp, body := f.do(t, "GET", "/app/x?sendfile="+urlQuery(filepath.Join(f.private, "report.pdf")), nil); resp.StatusCode != 200 || string(body) != "%PDF-1.7 private report" {
		t.Errorf("sendfile: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{filepath.Join(f.dir, "secret.txt"), filepath.Join(f.private, "..", "secret.txt"), filepath.Join(f.static, "css/site.css"), "/etc/passwd"} {
		if resp, body := f.do(t, "GET", "/app/x?sendfile="+urlQuery(p), nil); resp.StatusCode != 502 || bytes.Contains(body, []byte("TOP-SECRET")) {
			t.Errorf("sendfile %s: %d %q", p, resp.StatusCode, body)
		}
	}
}

func TestScriptTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, func(f *fixture, m []Config) []Config {
		return append(m, Config{URL: "/media-dl/", Root: f.media, Kind: KindMedia, ScriptTypes: ScriptAttachment})
	})
	resp, _ := f.do(t, "GET", "/media/upload.html", nil)
	if resp.Header.Get("Content-Security-Policy") != "sandbox" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("media html: CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	resp, _ = f.do(t, "GET", "/media/pic.3f2a1b9c0d4e.svg", nil)
	if resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("media svg: CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	resp, _ = f.do(t, "GET", "/media-dl/upload.html", nil)
	if resp.Header.Get("Content-Disposition") != "attachment" || resp.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("attachment: %q", resp.Header.Get("Content-Disposition"))
	}
	resp, _ = f.do(t, "GET", "/static/css/site.css", nil)
	if resp.Header.Get("Content-Security-Policy") != "" || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("static css got script-type headers")
	}
}

// TestChangedFile: the open-file cache notices a changed file after Recheck.
func TestChangedFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Cache: CacheConfig{Recheck: conf.Duration(10 * time.Millisecond)}}, nil)
	resp, _ := f.do(t, "GET", "/static/sub/page.txt", nil)
	tag := resp.Header.Get("Etag")
	writeFile(t, f.static, "sub/page.txt", []byte("changed content, longer"))
	time.Sleep(30 * time.Millisecond)
	resp, body := f.do(t, "GET", "/static/sub/page.txt", nil)
	if string(body) != "changed content, longer" || resp.Header.Get("Etag") == tag {
		t.Fatalf("stale: %q %q", body, resp.Header.Get("Etag"))
	}
	// A compressed variant follows the new content too.
	writeFile(t, f.static, "sub/grow.css", css)
	f.do(t, "GET", "/static/sub/grow.css", hdr("Accept-Encoding", "br"))
	next := append(bytes.Clone(css), "/* v2 */"...)
	writeFile(t, f.static, "sub/grow.css", next)
	time.Sleep(30 * time.Millisecond)
	_, body = f.do(t, "GET", "/static/sub/grow.css", hdr("Accept-Encoding", "br"))
	if dec, _ := compress.Decode(compress.Brotli, body); !bytes.Equal(dec, next) {
		t.Fatalf("stale compressed variant")
	}
	// Removed: 404.
	os.Remove(filepath.Join(f.static, "sub/page.txt"))
	time.Sleep(30 * time.Millisecond)
	if resp, _ := f.do(t, "GET", "/static/sub/page.txt", nil); resp.StatusCode != 404 {
		t.Fatalf("removed file: %d", resp.StatusCode)
	}
}

// TestMemoryBounded serves 10,000 distinct files through a small cache and
// checks the cache never passes its bounds.
func TestMemoryBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := []byte(strings.Repeat("p { margin: 0 }\n", 128)) // 2 KiB, compressible
	const n = 10000
	for i := range n {
		writeFile(t, dir, "f/"+formatInt(i/100)+"/"+formatInt(i)+".css", body)
	}
	const limit = 2 << 20
	srv, err := New([]Config{{URL: "/s/", Root: dir}}, Options{Cache: CacheConfig{Memory: limit, Entries: 1000}, Levels: compress.Levels{Gzip: 1, Brotli: 1, Zstd: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h, _ := srv.Match("/s/")
	for i := range n {
		r := httptest.NewRequest("GET", "/s/f/"+formatInt(i/100)+"/"+formatInt(i)+".css", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("file %d: %d", i, w.Code)
		}
		if entries, bytes := srv.cache.stats(); entries > 1000 || bytes > limit {
			t.Fatalf("after %d files: %d entries, %d bytes", i, entries, bytes)
		}
	}
}

func TestCompressTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "a.css", css)
	writeFile(t, dir, "b.png", bytes.Repeat([]byte{1}, 5000))
	writeFile(t, dir, "small.js", []byte("x"))
	writeFile(t, dir, ".hidden/c.css", css)
	random := make([]byte, 4000)
	for i := range random {
		random[i] = byte((i*7919 + i*i*31) >> 3)
	}
	writeFile(t, dir, "noise.txt", random)
	st, err := CompressTree(t.Context(), dir, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".br", ".zst", ".gz"} {
		b, err := os.ReadFile(filepath.Join(dir, "a.css"+ext))
		if err != nil {
			t.Fatalf("no a.css%s: %v", ext, err)
		}
		enc := map[string]compress.Encoding{".br": compress.Brotli, ".zst": compress.Zstd, ".gz": compress.Gzip}[ext]
		if dec, err := compress.Decode(enc, b); err != nil || !bytes.Equal(dec, css) {
			t.Errorf("a.css%s does not decode to a.css", ext)
		}
		for _, not := range []string{"b.png", "small.js", ".hidden/c.css"} {
			if _, err := os.Stat(filepath.Join(dir, not+ext)); err == nil {
				t.Errorf("%s%s written", not, ext)
			}
		}
	}
	if st.Written < 3 {
		t.Errorf("stats %+v", st)
	}
	// Second run: everything up to date.
	st2, err := CompressTree(t.Context(), dir, TreeOptions{})
	if err != nil || st2.Written != 0 || st2.UpToDate < 3 {
		t.Errorf("second run: %+v %v", st2, err)
	}
}

func TestNotWorthSiblings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	random := make([]byte, 4000)
	x := uint32(1)
	for i := range random {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		random[i] = byte(x)
	}
	writeFile(t, dir, "noise.txt", random)
	st, err := CompressTree(t.Context(), dir, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 0 || st.NotWorth != 3 {
		t.Errorf("random data: %+v", st)
	}
	srv, err := New([]Config{{URL: "/s/", Root: dir}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h, _ := srv.Match("/s/noise.txt")
	r := httptest.NewRequest("GET", "/s/noise.txt", nil)
	r.Header.Set("Accept-Encoding", "br, gzip, zstd")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), random) {
		t.Errorf("incompressible file sent as %q", w.Header().Get("Content-Encoding"))
	}
}

// TestCompressionSlotsBusy: when every compression slot is taken, a file
// goes out plain at once instead of waiting, and gets its variant later.
func TestCompressionSlotsBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}, nil)
	for range cap(f.srv.compressing) {
		f.srv.compressing <- struct{}{}
	}
	resp, body := f.do(t, "GET", "/static/css/site.css", hdr("Accept-Encoding", "br"))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, css) {
		t.Fatalf("busy: %d %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	// Precompressed siblings need no slot.
	if resp, _ := f.do(t, "GET", "/static/css/pre.css", hdr("Accept-Encoding", "br")); resp.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("sibling while busy: %q", resp.Header.Get("Content-Encoding"))
	}
	for range cap(f.srv.compressing) {
		<-f.srv.compressing
	}
	resp, _ = f.do(t, "GET", "/static/css/site.css", hdr("Accept-Encoding", "br"))
	if resp.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("after: %q", resp.Header.Get("Content-Encoding"))
	}
}
