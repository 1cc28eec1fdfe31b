package workers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
)

func frame(typ byte, payload []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

func head(pairs ...string) []byte {
	var p []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		p = appendNul(p, pairs[i], pairs[i+1])
	}
	return frame(frameHead, p)
}

// FuzzShimResponse feeds arbitrary bytes to gatehouse's side of the
// protocol as if a (compromised or buggy) shim wrote them: the head parser
// and the body reader must never panic, never accept an unsafe header,
// never return more body than was framed, and never allocate more than a
// frame's cap.
func FuzzShimResponse(f *testing.F) {
	ok := append(head(":status", "200 OK", "Content-Type", "text/plain", "Content-Length", "5"),
		append(frame(frameData, []byte("hello")), frame(frameFinish, nil)...)...)
	f.Add(ok)
	f.Add(append(head(":status", "500 Internal Server Error"), frame(frameAbort, []byte("boom"))...))
	f.Add(head(":status", "200 OK", "Bad Name", "x"))
	f.Add(head(":status", "200 OK", "X", "a\r\nInjected: 1"))
	f.Add(head(":status", "99"))
	f.Add(head("X", "1"))
	f.Add(frame(frameData, []byte("no head")))
	f.Add([]byte{frameHead, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(head(":status", "204 No Content"), 'D', 0, 0))
	f.Add(head(":status", "200 OK", "Content-Length", "5", "content-length", "6"))
	f.Add(head(":status", "200 OK", "Set-Cookie", "a=1", "Set-Cookie", "b=2", "Vary", "Cookie"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		typ, payload, err := readFrame(br)
		if err != nil || typ != frameHead {
			return
		}
		resp, err := parseHead(payload)
		if err != nil {
			return
		}
		for k, vs := range resp.Header {
			if !validHeaderName(k) {
				t.Fatalf("accepted header name %q", k)
			}
			for _, v := range vs {
				if bytes.ContainsAny([]byte(v), "\r\n\x00") {
					t.Fatalf("accepted header value %q", v)
				}
			}
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// The body reader over the rest.
		rest, _ := io.ReadAll(br)
		c1, c2 := net.Pipe()
		go func() { c2.Write(rest); c2.Close() }()
		wc := &wsgiConn{c: c1, br: bufio.NewReader(c1), bw: bufio.NewWriter(c1)}
		done := make(chan error, 1)
		done <- nil
		b := &wsgiBody{t: &wsgiTransport{maxIdle: 1}, wc: wc, ctx: context.Background(), bodyDone: done}
		got, _ := io.ReadAll(b)
		b.Close()
		if len(got) > len(rest) {
			t.Fatalf("read %d body bytes from %d framed", len(got), len(rest))
		}
	})
}

// FuzzEnviron checks that any request the front can hand over encodes to
// pairs that decode back to the same keys and values.
func FuzzEnviron(f *testing.F) {
	f.Add("GET", "/caf%C3%A9?x=1", "example.com:8080", "X-Thing", "v")
	f.Add("POST", "/%00%ff", "[::1]:443", "Cookie", "a=1")
	f.Add("GET", "/a%00b", "x", "X", "")
	f.Fuzz(func(t *testing.T, method, target, host, hk, hv string) {
		if !validHeaderName(method) || len(target) == 0 || target[0] != '/' {
			return
		}
		r, err := http.NewRequest(method, "http://x"+target, nil)
		if err != nil {
			return
		}
		r.Host = host
		if validHeaderName(hk) && validHeaderValue(hv) {
			r.Header.Set(hk, hv)
		}
		typ, env := encodeEnviron(nil, r)
		got := map[string]string{}
		switch typ {
		case frameRequest:
			if err := decodePairs(env, func(k, v []byte) error { got[string(k)] = string(v); return nil }); err != nil {
				t.Fatalf("decoding our own environ: %v", err)
			}
		case frameRequestQ:
			parts := bytes.Split(env, []byte{0})
			if len(parts)%2 != 0 {
				t.Fatalf("odd NUL-separated environ %q", env)
			}
			for i := 0; i < len(parts); i += 2 {
				got[string(parts[i])] = string(parts[i+1])
			}
		}
		if got["PATH_INFO"] != r.URL.Path {
			t.Fatalf("PATH_INFO %q, want %q", got["PATH_INFO"], r.URL.Path)
		}
		if got["REQUEST_METHOD"] != method {
			t.Fatalf("REQUEST_METHOD %q, want %q", got["REQUEST_METHOD"], method)
		}
	})
}
