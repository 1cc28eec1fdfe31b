package proxy

import (
	"bytes"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzClientIP checks the X-Forwarded-For walk on arbitrary input: it never
// panics, always returns a valid address, and never names an address the
// peer or the header did not contain.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "6.6.6.6, 203.0.113.7", "nonsense, 10.1.2.3",
		"[2001:db8::1]:443", "1.2.3.4:5", ", ,", "::ffff:1.2.3.4", "fe80::1%eth0", ""} {
		f.Add(s, "10.0.0.1")
	}
	trust, _ := parseTrusted([]string{"10.0.0.0/8", "127.0.0.1"})
	f.Fuzz(func(t *testing.T, xff, peer string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			p = netip.MustParseAddr("10.0.0.1")
		}
		got := trust.clientIP(p, []string{xff})
		if !got.IsValid() {
			t.Fatalf("clientIP(%q, %q) = invalid", p, xff)
		}
		named := map[netip.Addr]bool{p: true}
		for _, hop := range strings.Split(xff, ",") {
			if a, ok := parseForwardedAddr(strings.TrimSpace(hop)); ok {
				named[a] = true
			}
		}
		if !named[got] {
			t.Fatalf("clientIP(%q, %q) = %v, which is in neither", p, xff, got)
		}
		if !trust.trusts(p) && got != p {
			t.Fatalf("untrusted peer %v: header believed, got %v", p, got)
		}
	})
}

// FuzzCheckTarget checks the promise checkTarget makes to every part
// behind the front: a target it accepts has a path that, decoded, has no
// dot segment, no NUL, no backslash, so the app, the rate limiter and the
// static mounts cannot disagree about where it points.
func FuzzCheckTarget(f *testing.F) {
	for _, t := range []string{"/", "/a/b?c=d", "/a/../b", "/%2e%2E/x", "/a\\b", "*", "http://x/y",
		"/a%00b", "/a#f", "/%zz", "/.well-known/acme", "/a/.../b", "/a/%2ex"} {
		f.Add("GET", t)
	}
	files, _ := filepath.Glob("testdata/badrequests/*.http")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		if _, rest, ok := bytes.Cut(b, []byte(" ")); ok {
			if target, _, ok := bytes.Cut(rest, []byte(" ")); ok {
				f.Add("GET", string(target))
			}
		}
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		if checkTarget(method, target) != "" || target == "*" {
			return
		}
		path, _, _ := strings.Cut(target, "?")
		dec, err := url.PathUnescape(path)
		if err != nil {
			t.Fatalf("accepted %q, whose path does not decode: %v", target, err)
		}
		if strings.ContainsAny(dec, "\x00\\") {
			t.Fatalf("accepted %q, which decodes to %q", target, dec)
		}
		for seg := range strings.SplitSeq(dec, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted %q, which decodes to a dot segment: %q", target, dec)
			}
		}
	})
}
