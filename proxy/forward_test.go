package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/h1"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// startRawServer runs a loopback server that answers every request head
// it reads with respond's bytes, verbatim; net/http would tidy up the
// hop-by-hop fields the tests want the front to see.
func startRawServer(t *testing.T, respond func(head string) string) *httptest.Server {
	t.Helper()
	ln := listenRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			if _, err := io.WriteString(c, respond(head.String())); err != nil {
				return
			}
		}
	})
	return &httptest.Server{URL: "http://" + ln.Addr().String()}
}

// listenRaw accepts loopback connections until the test ends and hands
// each to serve on its own goroutine, closing it after.
func listenRaw(t *testing.T, serve func(c net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln
}

func TestHopByHopHeadersStripped(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 1)
	backend := startRawServer(t, func(head string) string {
		heads <- head
		return "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" +
			"Connection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Authenticate: Basic\r\nUpgrade: nothing\r\nX-App: kept\r\n\r\nok\n"
	})
	url, _ := startFront(t, backend, testConfig(nil))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /hop HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"+
		"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"+
		"Te: trailers, deflate\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
	head := strings.ToLower(<-heads)
	for _, gone := range []string{"\r\nconnection:", "x-secret", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade", "deflate"} {
		if strings.Contains(head, gone) {
			t.Errorf("app received %q:\n%s", gone, head)
		}
	}
	for _, kept := range []string{"\r\nte: trailers\r\n", "\r\nx-keep: yes\r\n", "\r\nx-forwarded-for: 127.0.0.1\r\n"} {
		if !strings.Contains(head, kept) {
			t.Errorf("app did not receive %q:\n%s", kept, head)
		}
	}
	for _, gone := range []string{"X-Internal", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := res.Header.Get(gone); v != "" {
			t.Errorf("client received %s: %s", gone, v)
		}
	}
	if res.Header.Get("X-App") != "kept" || res.Header.Get("X-Request-Id") == "" {
		t.Errorf("end-to-end fields lost: %v", res.Header)
	}
	if strings.Contains(strings.ToLower(res.Header.Get("Connection")), "x-internal") {
		t.Errorf("client received the app's Connection: %v", res.Header)
	}
}

func TestUpgradeToAnotherProtocolIsRefused(t *testing.T) {
	t.Parallel()
	backend := startRawServer(t, func(string) string {
		return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: something-else\r\n\r\n"
	})
	url, _ := startFront(t, backend, testConfig(nil))
	req, _ := http.NewRequest("GET", url+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502 for a 101 to a protocol the client did not ask for", res.StatusCode)
	}
}

func TestUpgradeWithBytesRightAfterTheHead(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo: " + line)
			_ = brw.Flush()
		}
	}))
	t.Cleanup(backend.Close)
	url, _ := startFront(t, backend, testConfig(nil))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// The client speaks first, in the same packet as the request: those
	// bytes sit in the server's buffer when the connection is taken over.
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	if res.Header.Get("X-Request-Id") == "" || !strings.EqualFold(res.Header.Get("Upgrade"), "echo") {
		t.Errorf("101 head: %v", res.Header)
	}
	for _, want := range []string{"echo: first\n"} {
		got, err := br.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("tunnel: got %q, %v; want %q", got, err, want)
		}
	}
	fmt.Fprint(c, "second\n")
	if got, err := br.ReadString('\n'); err != nil || got != "echo: second\n" {
		t.Fatalf("tunnel: got %q, %v", got, err)
	}
}

func TestStreamFlushedAsTheAppWrites(t *testing.T) {
	t.Parallel()
	// Not an event stream: any response the app sends in pieces is passed
	// on piece by piece, whatever its type.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(backend.Close)
	url, _ := startFront(t, backend, testConfig(nil))
	start := time.Now()
	res, err := http.Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first piece %q, %v", line, err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("first piece arrived after %v, want it before the second is written", d)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestTrailersPassThrough(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body\n")
		w.Header().Set("X-Checksum", "abc123")
	}))
	t.Cleanup(backend.Close)
	url, _ := startFront(t, backend, testConfig(nil))
	req, _ := http.NewRequest("GET", url+"/t", nil)
	req.Header.Set("TE", "trailers")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "body\n" {
		t.Errorf("body %q", body)
	}
	if got := res.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("trailer X-Checksum = %q, want abc123 (trailers %v, header %v)", got, res.Trailer, res.Header)
	}
}

func TestSmallResponseKeepsItsLength(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	url, _ := startFront(t, backend, testConfig(nil))
	res, err := http.Get(url + "/frame")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// Not flushed early: the client gets a Content-Length, not chunks.
	if res.ContentLength != int64(len(body)) || len(res.TransferEncoding) != 0 {
		t.Errorf("length %d, transfer-encoding %v for a %d-byte body", res.ContentLength, res.TransferEncoding, len(body))
	}
}

func TestExchangeIsTheRequestContext(t *testing.T) {
	t.Parallel()
	type other struct{}
	parent := context.WithValue(context.Background(), other{}, "kept")
	x := &exchange{Context: parent}
	if got := reqinfo.From(x); got != &x.info {
		t.Fatalf("reqinfo.From(exchange) = %p, want its own record %p", got, &x.info)
	}
	if x.Value(other{}) != "kept" {
		t.Errorf("the server's context values are lost")
	}
	if _, ok := x.Value(h1.InformationalKey{}).(h1.Informational); !ok {
		t.Errorf("no 1xx hook for h1")
	}
}

func TestEarlyHintsPassThrough(t *testing.T) {
	t.Parallel()
	backend := startRawServer(t, func(string) string {
		return "HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-App: final\r\n\r\nok\n"
	})
	// The h1 transport, which the upstream pool uses, tells the front of
	// 1xx responses through the request's context.
	s := serveOptions(t, Options{
		Config: testConfig(nil),
		Pool:   benchPool(t, strings.TrimPrefix(backend.URL, "http://")),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	hint, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hint.StatusCode != 103 || hint.Header.Get("Link") != "</app.css>; rel=preload" {
		t.Fatalf("first response %d %v, want 103 with the Link", hint.StatusCode, hint.Header)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "ok\n" || res.Header.Get("X-App") != "final" {
		t.Fatalf("final response %d %q %v", res.StatusCode, body, res.Header)
	}
	if res.Header.Get("Link") != "" {
		t.Errorf("the hint's Link stayed on the final response")
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("the final response lost the front's X-Request-Id")
	}
}

func TestTunnelEndsWhenTheAppCloses(t *testing.T) {
	t.Parallel()
	// An app that says one line after the 101 and hangs up; the client,
	// which never closes its side, must see the end at once.
	ln := listenRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nbye\n")
	})
	for _, pool := range []struct {
		name string
		p    Pool
	}{
		{"h1", benchPool(t, ln.Addr().String())},
		{"net/http", &addrPool{tr: &http.Transport{}, addr: ln.Addr().String()}},
	} {
		t.Run(pool.name, func(t *testing.T) {
			s := serveOptions(t, Options{Config: testConfig(nil), Pool: pool.p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			c, err := net.Dial("tcp", s.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != 101 {
				t.Fatalf("upgrade: %v %v", res, err)
			}
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatalf("after the app hung up: %v (want EOF at once)", err)
			}
			if string(rest) != "bye\n" {
				t.Errorf("tunnel carried %q", rest)
			}
		})
	}
}

func TestForwardedReplacedForTrustedPeer(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 1)
	backend := startRawServer(t, func(head string) string {
		heads <- head
		return "HTTP/1.1 204 No Content\r\n\r\n"
	})
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
	}))
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("Forwarded", "for=203.0.113.7;proto=https")
	req.Header.Set("X-Forwarded-For", "203.0.113.7, 198.51.100.2")
	req.Header.Add("X-Forwarded-For", "192.0.2.9")
	req.Header.Set("X-Forwarded-Host", "public.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	head := <-heads
	if strings.Contains(strings.ToLower(head), "\r\nforwarded:") {
		t.Errorf("app received the trusted proxy's Forwarded:\n%s", head)
	}
	for _, want := range []string{
		"\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2, 192.0.2.9, 127.0.0.1\r\n",
		"\r\nX-Forwarded-Host: public.example\r\n",
		"\r\nX-Real-Ip: 192.0.2.9\r\n",
	} {
		if !strings.Contains(head, want) {
			t.Errorf("app did not receive %q:\n%s", strings.TrimSpace(want), head)
		}
	}
}
