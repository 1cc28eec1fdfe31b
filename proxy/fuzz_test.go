package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// FuzzGuard feeds arbitrary bytes through a guarded connection in random
// read sizes. Whatever comes out must be either the input unchanged up to
// some point, or end in the guard's stand-in request; a valid head never
// comes out changed.
func FuzzGuard(f *testing.F) {
	files, _ := filepath.Glob("testdata/badrequests/*.http")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b, uint8(7))
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		g := newGuard(4096, 1024)
		a, b := net.Pipe()
		c := &guardConn{Conn: b, g: g}
		go func() {
			n := int(step%64) + 1
			for i := 0; i < len(in); i += n {
				_, _ = a.Write(in[i:min(i+n, len(in))])
			}
			a.Close()
		}()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var out bytes.Buffer
		buf := make([]byte, int(step%200)+1)
		for {
			n, err := c.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got := out.Bytes()
		if i := bytes.Index(got, []byte("\r\n"+rejectHeader+": ")); i >= 0 {
			// Poisoned: what came before the stand-in must be a prefix
			// of the input.
			start := bytes.LastIndex(got[:i], []byte("GET / HTTP/1.1\r\nHost: gatehouse.invalid"))
			if start < 0 || !bytes.HasPrefix(in, bytes.TrimLeft(got[:start], "\r\n")) && start != 0 {
				t.Fatalf("poisoned output does not start with an input prefix:\n%q", got)
			}
			return
		}
		// Valid bytes pass unchanged and in order; the guard only drops
		// empty lines between requests (RFC 9112 2.2), and holds back an
		// incomplete tail.
		if !isSubsequence(got, in) {
			t.Fatalf("output is not the input with empty lines dropped:\nin  %q\nout %q", in, got)
		}
	})
}

// isSubsequence reports whether sub is a prefix of s with only CR and LF
// bytes of s left out.
func isSubsequence(sub, s []byte) bool {
	i := 0
	for _, c := range s {
		if i == len(sub) {
			return true
		}
		switch {
		case sub[i] == c:
			i++
		case c != '\r' && c != '\n':
			return false
		}
	}
	return i == len(sub)
}
