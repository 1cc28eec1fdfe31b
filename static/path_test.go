package static

import (
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		clean string
		dir   bool
		ok    bool
	}{
		{"/static/app.css", "/static/app.css", false, true},
		{"/static/", "/static/", true, true},
		{"/static/a%20b.css", "/static/a b.css", false, true},
		{"/st%61tic/x.js", "/static/x.js", false, true},
		{"/static//css///a.css", "/static/css/a.css", false, true},
		{"/static/./a.css", "/static/a.css", false, true},
		{"/static/%2e/a.css", "/static/a.css", false, true},
		{"/static/css/", "/static/css/", true, true},
		{"/static/caf%C3%A9.txt", "/static/café.txt", false, true},
		{"/static/a.css?v=1", "/static/a.css", false, true},
		{"/static/a..b.css", "/static/a..b.css", false, true},
		{"/static/../x", "", false, false},
		{"/static/%2e%2e/x", "", false, false},
		{"/static/a%2fb", "", false, false},
		{"/static/a%5cb", "", false, false},
		{"/static/a\\b", "", false, false},
		{"/static/a%00", "", false, false},
		{"/static/a%0a", "", false, false},
		{"/static/%c0%ae%c0%ae/x", "", false, false},
		{"/static/%c0%af", "", false, false},
		{"/static/.env", "", false, false},
		{"/static/.well-known/x", "", false, false},
		{"/static/%", "", false, false},
		{"/static/%g0", "", false, false},
		{"static/a", "", false, false},
		{"", "", false, false},
	}
	for _, tt := range tests {
		clean, dir, ok := cleanPath(tt.in)
		if clean != tt.clean || dir != tt.dir || ok != tt.ok {
			t.Errorf("cleanPath(%q) = %q, %v, %v; want %q, %v, %v", tt.in, clean, dir, ok, tt.clean, tt.dir, tt.ok)
		}
	}
}

func TestFingerprinted(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"app.3f2a1b9c0d4e.css":            true,
		"admin/js/core.0123456789ab.js":   true,
		"a.b.3f2a1b9c0d4e.min.js":         true,
		"app.css":                         false,
		"app.3f2a1b9c0d4.css":             false, // 11 digits
		"app.3F2A1B9C0D4E.css":            false, // Django writes lower case
		"3f2a1b9c0d4e.css":                false, // the hash is not the name
		"app.3f2a1b9c0d4e":                false, // nothing after it
		"dir.3f2a1b9c0d4e/app.css":        false,
		"logo.3f2a1b9c0d4e.png":           true,
		"x.0000000000000000000000000.css": false,
	} {
		if got := fingerprinted(name); got != want {
			t.Errorf("fingerprinted(%q) = %v", name, got)
		}
	}
}

// FuzzCleanPath: whatever the input, an accepted path is canonical, every
// segment is safe to open, and cleaning is idempotent.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/static/a.css", "/static/../x", "/static/%2e%2e%2fx", "/s/%c0%ae", "/s//a/./b/", "/s/a%00b", "/s/\\..\\x", "/s/%252e", "/s/.git/x", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		clean, dir, ok := cleanPath(in)
		if !ok {
			return
		}
		if !strings.HasPrefix(clean, "/") {
			t.Fatalf("%q -> %q: not absolute", in, clean)
		}
		if !utf8.ValidString(clean) || strings.ContainsAny(clean, "\\\x00?") {
			t.Fatalf("%q -> %q: unsafe bytes", in, clean)
		}
		if dir != strings.HasSuffix(clean, "/") {
			t.Fatalf("%q -> %q: dir=%v", in, clean, dir)
		}
		for _, seg := range strings.Split(strings.Trim(clean, "/"), "/") {
			if clean == "/" {
				break
			}
			if seg == "" || strings.HasPrefix(seg, ".") {
				t.Fatalf("%q -> %q: segment %q", in, clean, seg)
			}
			for _, c := range []byte(seg) {
				if c < 0x20 || c == 0x7f {
					t.Fatalf("%q -> %q: control byte", in, clean)
				}
			}
		}
		if p := path.Clean(clean); p != strings.TrimSuffix(clean, "/") && p != clean {
			t.Fatalf("%q -> %q: path.Clean gives %q", in, clean, p)
		}
		// Idempotent when re-escaped: what we open is what a second pass
		// would open.
		if c2, _, ok2 := cleanPath(escapeSegments(clean)); !ok2 || c2 != clean {
			t.Fatalf("%q -> %q -> %q, %v", in, clean, c2, ok2)
		}
	})
}

// FuzzServe sends arbitrary paths to a mount and to ServeInternal: no
// panic, and never a byte of the file that lies outside every root.
func FuzzServe(f *testing.F) {
	for _, s := range []string{"/static/css/site.css", "/static/../secret.txt", "/protected", "/protected/%2e%2e/secret.txt", "/static/escape/secret.txt", "/static"} {
		f.Add(s)
	}
	fx := newFixture(f, Options{}, nil)
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.Parse(p)
		if err != nil || u.Path == "" {
			return
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = u
		w := httptest.NewRecorder()
		if h, ok := fx.srv.Match(u.Path); ok {
			h.ServeHTTP(w, r)
		}
		w2 := httptest.NewRecorder()
		fx.srv.ServeInternal(w2, r, p)
		for _, b := range [][]byte{w.Body.Bytes(), w2.Body.Bytes()} {
			if strings.Contains(string(b), "TOP-SECRET") {
				t.Fatalf("%q leaked the secret", p)
			}
		}
	})
}
