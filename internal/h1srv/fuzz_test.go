package h1srv

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /p?q=1 HTTP/1.0\r\n\r\n",
	"\r\nGET / HTTP/1.1\nHost: a\n\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
	"GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
	"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\nGET / HTTP/1.1\r\n",
}

// FuzzParseHead checks the head parser alone: no panic, and a head it
// accepts has token names and values free of line breaks.
func FuzzParseHead(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[skipEmptyLines(b):]
		end, _ := findHeadEnd(b, 0)
		if end < 0 {
			return
		}
		var h head
		if parseHead(b[:end], &h) != nil {
			return
		}
		if !ascii.IsToken(b[h.method[0]:h.method[1]]) {
			t.Fatalf("method %q", b[h.method[0]:h.method[1]])
		}
		for _, fl := range h.fields {
			if !ascii.IsToken(b[fl.ns:fl.ne]) {
				t.Fatalf("name %q", b[fl.ns:fl.ne])
			}
			if v := b[fl.vs:fl.ve]; bytes.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("value %q", v)
			}
		}
	})
}

// FuzzConn runs whole connections: whatever the client sends, the server
// must neither panic nor hang, and must answer with well-formed responses.
func FuzzConn(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var logs bytes.Buffer
		s := &Server{
			ReadHeaderTimeout: time.Second,
			MaxHeaderBytes:    4096,
			ErrorLog:          slog.New(slog.NewTextHandler(&logs, nil)),
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				w.Write(b)
			}),
		}
		c := &memConn{in: bytes.NewReader(in), closed: make(chan struct{})}
		s.ServeConn(context.Background(), c)
		select {
		case <-c.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed after the input ended")
		}
		out := c.out.Bytes()
		if strings.Contains(logs.String(), "panic") {
			t.Fatalf("server panicked: %s", logs.String())
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("output %q", out)
		}
	})
}

// memConn is a connection whose client sent in and then closed its side.
type memConn struct {
	in     *bytes.Reader
	mu     sync.Mutex
	out    bytes.Buffer
	once   sync.Once
	closed chan struct{}
}

func (c *memConn) Read(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }
