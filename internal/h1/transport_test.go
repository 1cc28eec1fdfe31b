package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is an httptest server that counts the connections it accepted.
type backend struct {
	*httptest.Server
	conns  atomic.Int32
	closed atomic.Int32
}

func newBackend(t *testing.T, h http.Handler) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed:
			b.closed.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func tcpTransport(addr string) *Transport {
	return &Transport{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}

func newTransport(t *testing.T, addr string) *Transport {
	tr := tcpTransport(addr)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func get(t *testing.T, tr http.RoundTripper, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, tr, req)
}

func do(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestKeepAliveReuse(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("i"))
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	for i := range 20 {
		resp, body := get(t, tr, fmt.Sprintf("%s/?i=%d", b.URL, i))
		if got, want := body, fmt.Sprintf("hello %d", i); got != want || resp.StatusCode != 200 {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, got, want)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend accepted %d connections, want 1", got)
	}
	if got := tr.idleCount(); got != 1 {
		t.Errorf("idle = %d, want 1", got)
	}
}

func TestChunked(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("backend reading body: %v", err)
		}
		if got := r.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
			t.Errorf("request Transfer-Encoding = %q, want chunked", got)
		}
		if got, want := r.Trailer.Get("X-Sum"), "abc"; got != want {
			t.Errorf("request trailer X-Sum = %q, want %q", got, want)
		}
		w.Header().Set("Trailer", "X-Count")
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "%d:%s;", i, body)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Count", "3")
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	for range 3 {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("ab"))
			pw.Write([]byte("cd"))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", b.URL, pr)
		req.ContentLength = -1
		req.Trailer = http.Header{"X-Sum": {"abc"}}
		resp, body := do(t, tr, req)
		if got, want := body, "0:abcd;1:abcd;2:abcd;"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if got := resp.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
			t.Errorf("response Transfer-Encoding = %q, want chunked", got)
		}
		if got, want := resp.Trailer.Get("X-Count"), "3"; got != want {
			t.Errorf("response trailer X-Count = %q, want %q", got, want)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend accepted %d connections, want 1 (trailers must not break reuse)", got)
	}
}

func TestBodyLengths(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s cl=%d te=%v body=%q", r.Method, r.ContentLength, r.TransferEncoding, body)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	tests := []struct {
		name   string
		method string
		body   io.Reader
		length int64
		want   string
	}{
		{"get nil", "GET", nil, 0, `GET cl=0 te=[] body=""`},
		{"post nil", "POST", nil, 0, `POST cl=0 te=[] body=""`},
		{"post sized", "POST", strings.NewReader("hello"), 5, `POST cl=5 te=[] body="hello"`},
		{"post unknown", "POST", strings.NewReader("hello"), -1, `POST cl=-1 te=[chunked] body="hello"`},
		{"zero but has bytes", "PUT", io.MultiReader(strings.NewReader("xyz")), 0, `PUT cl=-1 te=[chunked] body="xyz"`},
		{"zero and empty", "PUT", io.MultiReader(), 0, `PUT cl=0 te=[] body=""`},
		{"large", "POST", strings.NewReader(strings.Repeat("x", 100000)), 100000, `POST cl=100000 te=[] body="` + strings.Repeat("x", 100000) + `"`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, b.URL, tt.body)
		req.ContentLength = tt.length
		_, got := do(t, tr, req)
		if got != tt.want {
			t.Errorf("%s: got %.80q, want %.80q", tt.name, got, tt.want)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend accepted %d connections, want 1", got)
	}

	// A lying ContentLength is refused before the connection desyncs.
	req, _ := http.NewRequest("POST", b.URL, strings.NewReader("hello"))
	req.ContentLength = 3
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("body longer than ContentLength: err = %v", err)
	}
	req, _ = http.NewRequest("POST", b.URL, strings.NewReader("hello"))
	req.ContentLength = 8
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("body shorter than ContentLength: err = %v", err)
	}
	_, got := get(t, tr, b.URL)
	if want := `GET cl=0 te=[] body=""`; got != want {
		t.Errorf("after bad bodies: got %q, want %q", got, want)
	}
}

func TestNoBodyResponses(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	for _, tc := range []struct{ method, path string }{
		{"HEAD", "/"}, {"GET", "/204"}, {"GET", "/304"}, {"HEAD", "/"}, {"GET", "/"},
	} {
		req, _ := http.NewRequest(tc.method, b.URL+tc.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		// Released at once: the connection is idle before Close.
		if tc.method == "HEAD" || tc.path != "/" {
			if got := tr.idleCount(); got != 1 {
				t.Errorf("%s %s: idle = %d before Close, want 1", tc.method, tc.path, got)
			}
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := ""
		if tc.method == "GET" && tc.path == "/" {
			want = "hello world"
		}
		if string(body) != want {
			t.Errorf("%s %s: body %q, want %q", tc.method, tc.path, body, want)
		}
		if tc.method == "HEAD" && resp.ContentLength != 11 {
			t.Errorf("HEAD: ContentLength = %d, want 11", resp.ContentLength)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend accepted %d connections, want 1", got)
	}
}

// rawServer accepts connections on loopback and hands each to serve.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(n int, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	var mu sync.Mutex
	var open []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			n := int(s.conns.Add(1))
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

func TestStaleConnectionRetry(t *testing.T) {
	t.Parallel()
	// Every connection answers one request, then reads the next one and
	// hangs up without answering: the race of a keep-alive timeout with
	// a request already on its way.
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", n%10)
		readRequest(br)
	})
	tr := newTransport(t, s.ln.Addr().String())
	for i := range 3 {
		_, body := get(t, tr, s.url())
		if want := fmt.Sprint(i + 1); body != want {
			t.Errorf("GET %d: body %q, want %q", i, body, want)
		}
	}
	if got := s.conns.Load(); got != 3 {
		t.Errorf("server accepted %d connections, want 3", got)
	}

	// A POST is not idempotent: sent once, failed, not retried.
	req, _ := http.NewRequest("POST", s.url(), strings.NewReader("x"))
	_, err := tr.RoundTrip(req)
	var e *Error
	if !errors.As(err, &e) || !e.Sent || !Sent(err) || e.Op != "read" {
		t.Fatalf("POST on stale conn: err = %#v, want *Error{Op: read, Sent: true}", err)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("POST on stale conn: err = %v, want io.EOF inside", err)
	}
	if got := s.conns.Load(); got != 3 {
		t.Errorf("server accepted %d connections, want 3 (no retry)", got)
	}

	// A PUT with GetBody is replayed on a new connection.
	get(t, tr, s.url()) // conn 4, left idle and stale
	req, _ = http.NewRequest("PUT", s.url(), strings.NewReader("payload"))
	_, body := do(t, tr, req)
	if body != "5" {
		t.Errorf("PUT retried: body %q, want 5", body)
	}
}

func TestServerClosedIdle(t *testing.T) {
	t.Parallel()
	// The server closes each connection 20ms after answering, without
	// saying so; the peek before reuse notices, so even a POST works.
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond)
	})
	tr := newTransport(t, s.ln.Addr().String())
	for i := range 3 {
		req, _ := http.NewRequest("POST", s.url(), strings.NewReader("x"))
		_, body := do(t, tr, req)
		if body != "ok" {
			t.Errorf("POST %d: body %q", i, body)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if got := s.conns.Load(); got != 3 {
		t.Errorf("server accepted %d connections, want 3", got)
	}
}

func TestServerClosesMidResponse(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := readRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/cut" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
				return
			}
			if req.URL.Path == "/cuthead" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newTransport(t, s.ln.Addr().String())
	get(t, tr, s.url())
	resp, err := tr.RoundTrip(mustRequest(t, "GET", s.url()+"/cut"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "0123456789" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body: got %q, %v; want 10 bytes and ErrUnexpectedEOF", b, err)
	}
	if got := tr.idleCount(); got != 0 {
		t.Errorf("idle = %d after a cut body, want 0", got)
	}
	get(t, tr, s.url())
	// Cut in the head: a response byte came, so no retry even for GET.
	_, err = tr.RoundTrip(mustRequest(t, "GET", s.url()+"/cuthead"))
	if err == nil || !Sent(err) {
		t.Errorf("cut head: err = %v, want a sent error", err)
	}
	if got := s.conns.Load(); got != 2 {
		t.Errorf("server accepted %d connections, want 2", got)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestResponseWithoutLength(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
	})
	tr := newTransport(t, s.ln.Addr().String())
	for range 2 {
		_, body := get(t, tr, s.url())
		if body != "until the end" {
			t.Errorf("body %q", body)
		}
		if got := tr.idleCount(); got != 0 {
			t.Errorf("idle = %d, want 0", got)
		}
	}
	if got := s.conns.Load(); got != 2 {
		t.Errorf("server accepted %d connections, want 2", got)
	}
}

func TestConnectionClose(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	get(t, tr, b.URL+"/close")
	get(t, tr, b.URL+"/close")
	get(t, tr, b.URL)
	req := mustRequest(t, "GET", b.URL)
	req.Close = true
	do(t, tr, req)
	get(t, tr, b.URL)
	if got := b.conns.Load(); got != 4 {
		t.Errorf("backend accepted %d connections, want 4", got)
	}
}

func TestInformational(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
				"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newTransport(t, s.ln.Addr().String())
	var got []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, fmt.Sprintf("%d %s", code, h["Link"]))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url(), nil)
	resp, body := do(t, tr, req)
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if want := "[100 [] 103 [</a.css>; rel=preload]]"; fmt.Sprint(got) != want {
		t.Errorf("1xx seen %v, want %s", got, want)
	}
	_, body = get(t, tr, s.url()) // without a trace, skipped
	if body != "ok" {
		t.Errorf("got %q", body)
	}
	var hook informationalFunc = func(code int, h http.Header) error {
		got = append(got, fmt.Sprintf("%d %s", code, h["Link"]))
		return nil
	}
	got = nil
	req, _ = http.NewRequestWithContext(context.WithValue(context.Background(), InformationalKey{}, hook), "GET", s.url(), nil)
	if _, body = do(t, tr, req); body != "ok" {
		t.Errorf("got %q", body)
	}
	if want := "[100 [] 103 [</a.css>; rel=preload]]"; fmt.Sprint(got) != want {
		t.Errorf("1xx seen by the context hook %v, want %s", got, want)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
}

type informationalFunc func(code int, h http.Header) error

func (f informationalFunc) Informational(code int, h http.Header) error { return f(code, h) }

func TestHeaderTooLarge(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 20000)+"\r\nContent-Length: 0\r\n\r\n")
	})
	tr := newTransport(t, s.ln.Addr().String())
	tr.MaxResponseHeaderBytes = 8 << 10
	_, err := tr.RoundTrip(mustRequest(t, "GET", s.url()))
	if !errors.Is(err, errHeaderTooLarge) {
		t.Errorf("err = %v, want errHeaderTooLarge", err)
	}
}

func TestInvalidRequest(t *testing.T) {
	t.Parallel()
	refuseInvalid(t, false, map[string]func(*http.Request){
		"header value": func(r *http.Request) { r.Header.Set("X", "a\r\nInjected: 1") },
		"header name":  func(r *http.Request) { r.Header["X Y"] = []string{"1"} },
		"host":         func(r *http.Request) { r.Host = "a\nb" },
		"method":       func(r *http.Request) { r.Method = "GET /x" },
		"https":        func(r *http.Request) { r.URL.Scheme = "https" },
		"target":       func(r *http.Request) { r.URL.Opaque = "/a b" },
	})
}

// refuseInvalid sends requests changed by each mod to a live backend and
// checks that each fails as invalid and unsent, with the request marked
// CheckedKey when checked.
func refuseInvalid(t *testing.T, checked bool, mods map[string]func(*http.Request)) {
	var reqs atomic.Int32
	b := newBackend(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reqs.Add(1) }))
	tr := newTransport(t, b.Listener.Addr().String())
	for name, mod := range mods {
		req := mustRequest(t, "GET", b.URL+"/")
		if checked {
			req = req.WithContext(context.WithValue(req.Context(), CheckedKey{}, true))
		}
		mod(req)
		_, err := tr.RoundTrip(req)
		var he *Error
		if err == nil || Sent(err) || !errors.As(err, &he) || he.Op != "write" {
			t.Errorf("%s: err = %v, want an unsent write error", name, err)
		}
	}
	if n := reqs.Load(); n != 0 {
		t.Errorf("the backend saw %d requests, want none", n)
	}
}

// TestCheckedRequest: a request marked CheckedKey skips the field check
// only; its request line and Host are still refused when they would
// inject bytes.
func TestCheckedRequest(t *testing.T) {
	t.Parallel()
	refuseInvalid(t, true, map[string]func(*http.Request){
		"host":   func(r *http.Request) { r.Host = "a\nb" },
		"method": func(r *http.Request) { r.Method = "GET /x" },
		"target": func(r *http.Request) { r.URL.Opaque = "/a b" },
	})
}

func TestDialError(t *testing.T) {
	t.Parallel()
	errRefused := errors.New("refused")
	tr := &Transport{Dial: func(context.Context) (net.Conn, error) { return nil, errRefused }}
	_, err := tr.RoundTrip(mustRequest(t, "GET", "http://x/"))
	var e *Error
	if !errors.As(err, &e) || e.Op != "dial" || Sent(err) || !errors.Is(err, errRefused) {
		t.Errorf("err = %v, want an unsent dial error wrapping errRefused", err)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slowhead":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slowbody":
			io.WriteString(w, "start")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	get(t, tr, b.URL)

	errStop := errors.New("stop")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 50*time.Millisecond, errStop)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL+"/slowhead", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errStop) {
		t.Errorf("slow head: err = %v, want DeadlineExceeded and its cause", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("slow head: took %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", b.URL+"/slowbody", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "start" {
		t.Fatalf("slow body start: %q, %v", buf, err)
	}
	time.AfterFunc(30*time.Millisecond, cancel)
	start = time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("slow body: err = %v, want Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("slow body: took %v", d)
	}

	// Neither aborted connection came back.
	if got := tr.idleCount(); got != 0 {
		t.Errorf("idle = %d, want 0", got)
	}
	get(t, tr, b.URL)
	if got := b.conns.Load(); got != 3 {
		t.Errorf("backend accepted %d connections, want 3", got)
	}

	// A context already done sends nothing.
	req, _ = http.NewRequestWithContext(ctx, "GET", b.URL, nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) || Sent(err) {
		t.Errorf("done context: err = %v, want an unsent Canceled", err)
	}
}

func TestEarlyClose(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 1000
		if r.URL.Path == "/big" {
			n = 1 << 20
		}
		w.Write(bytes.Repeat([]byte("x"), n))
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	for _, path := range []string{"/", "/big", "/"} {
		resp, err := tr.RoundTrip(mustRequest(t, "GET", b.URL+path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, errBodyClosed) {
			t.Errorf("read after close: %v", err)
		}
	}
	// The small rests were discarded, the 1 MiB one cost its connection.
	if got := b.conns.Load(); got != 2 {
		t.Errorf("backend accepted %d connections, want 2", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	closed := &b.closed
	tr := newTransport(t, b.Listener.Addr().String())
	tr.IdleTimeout = 200 * time.Millisecond
	get(t, tr, b.URL)
	if got := tr.idleCount(); got != 1 {
		t.Fatalf("idle = %d, want 1", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if tr.idleCount() != 0 || closed.Load() != 1 {
		t.Errorf("after IdleTimeout: idle = %d, closed = %d; want 0, 1", tr.idleCount(), closed.Load())
	}
	get(t, tr, b.URL) // the timer rearms
}

func TestMaxIdle(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr := newTransport(t, b.Listener.Addr().String())
	tr.MaxIdle = 2
	var resps []*http.Response
	for range 4 {
		resp, err := tr.RoundTrip(mustRequest(t, "GET", b.URL))
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	if got := tr.idleCount(); got != 4 {
		// Content-Length: 0 bodies are released at once.
		t.Logf("idle after 4 empty responses: %d", got)
	}
	for _, r := range resps {
		r.Body.Close()
	}
	if got := tr.idleCount(); got > 2 {
		t.Errorf("idle = %d, want at most 2", got)
	}
	tr.CloseIdleConnections()
	if got := tr.idleCount(); got != 0 {
		t.Errorf("idle after CloseIdleConnections = %d", got)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "unix %s %s", r.Host, r.URL)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := &Transport{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	for range 3 {
		_, body := get(t, tr, "http://app.example/p?q=1")
		if want := "unix app.example /p?q=1"; body != want {
			t.Errorf("body %q, want %q", body, want)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("accepted %d connections, want 1", got)
	}
}

func TestUpgradeThroughReverseProxy(t *testing.T) {
	t.Parallel()
	// The backend switches to an echo protocol.
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		// "early" travels with the 101, so the client's first read
		// drains it from the transport's buffer.
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly;")
		brw.Flush()
		io.Copy(c, brw)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	target, _ := url.Parse(b.URL)
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
	})
	t.Cleanup(front.Close)

	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, len("early;ping"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "early;ping" {
		t.Errorf("echo: %q, %v", buf, err)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		// Read all first: net/http's server echoing a chunked body
		// straight through stops at 512 bytes.
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	tr.MaxIdle = 4
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				want := strings.Repeat(fmt.Sprintf("%d-%d,", g, i), i*50)
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/%d/%d", b.URL, g, i), strings.NewReader(want))
				if i%3 == 0 {
					req.ContentLength = -1
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != want || resp.Header.Get("X-Path") != fmt.Sprintf("/%d/%d", g, i) {
					t.Errorf("%d/%d: got %d bytes, %v", g, i, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := tr.idleCount(); got > 4 {
		t.Errorf("idle = %d, want at most 4", got)
	}
	t.Logf("400 requests over %d connections", b.conns.Load())
}

func TestEarlyAnswer(t *testing.T) {
	t.Parallel()
	// The backend refuses a large upload without reading it, as an app
	// enforcing a body limit does; net/http's server then closes the
	// connection after a short linger.
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 1<<20 {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.Copy(io.Discard, r.Body)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	req, _ := http.NewRequest("POST", b.URL, bytes.NewReader(make([]byte, 64<<20)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Logf("early answer lost to the write error: %v", err)
		if Sent(err) != true {
			t.Errorf("Sent = false after writing")
		}
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), "too large") {
		t.Errorf("got %d %q, want 413", resp.StatusCode, body)
	}
	if got := tr.idleCount(); got != 0 {
		t.Errorf("idle = %d, want 0", got)
	}
}

func TestCloseIdleThenReuse(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr := newTransport(t, b.Listener.Addr().String())
	get(t, tr, b.URL)
	resp, err := tr.RoundTrip(mustRequest(t, "GET", b.URL))
	if err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	resp.Body.Close() // in use during CloseIdleConnections: not kept
	for range 3 {
		get(t, tr, b.URL)
	}
	if got := b.conns.Load(); got != 2 {
		t.Errorf("backend accepted %d connections, want 2", got)
	}
}

func TestCloseDuringRead(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	resp, err := tr.RoundTrip(mustRequest(t, "GET", b.URL))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	io.ReadFull(resp.Body, buf)
	time.AfterFunc(30*time.Millisecond, func() { resp.Body.Close() })
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, errBodyClosed) {
		t.Errorf("err = %v, want errBodyClosed", err)
	}
	if got := tr.idleCount(); got != 0 {
		t.Errorf("idle = %d, want 0", got)
	}
}

func TestParseHeadAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		head   string
		ok     bool
		length int64
	}{
		{"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello", true, 5},
		{"HTTP/1.1 404 Not Found\r\nx-a:  2 \r\nContent-Length: 0\r\n\r\n", true, 0},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true, -1},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n", false, 0},
		{"HTTP/1.1 204 No Content\r\n\r\n", false, 0},
		{"HTTP/1.1 200 OK\r\n\r\n", false, 0}, // to EOF
		{"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false, 0},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false, 0}, // not all buffered
	} {
		br := bufio.NewReader(strings.NewReader(tc.head))
		br.Peek(1)
		resp, length, ok := parseHead(br, mustRequest(t, "GET", "http://x/"))
		if ok != tc.ok || ok && length != tc.length {
			t.Errorf("%q: ok %v length %d, want %v %d", tc.head, ok, length, tc.ok, tc.length)
		}
		if ok && resp.Header.Get("X-A") != "" && resp.Header.Get("X-A") != "2" {
			t.Errorf("%q: X-A = %q", tc.head, resp.Header.Get("X-A"))
		}
	}
}

func TestRetryDials(t *testing.T) {
	t.Parallel()
	// Two idle connections, both of which fail the next request: the
	// retry must not take the second.
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", n%10)
		readRequest(br)
	})
	tr := newTransport(t, s.ln.Addr().String())
	r1, err := tr.RoundTrip(mustRequest(t, "GET", s.url()))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tr.RoundTrip(mustRequest(t, "GET", s.url()))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r1.Body)
	io.ReadAll(r2.Body)
	if got := tr.idleCount(); got != 2 {
		t.Fatalf("idle = %d, want 2", got)
	}
	_, body := get(t, tr, s.url())
	if body != "3" {
		t.Errorf("body %q, want 3 (from a new connection)", body)
	}
	if got := tr.idleCount(); got != 2 {
		t.Errorf("idle = %d, want 2 (one old, one new)", got)
	}
}

func TestReverseProxy(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Host", r.Host)
		for range 3 {
			w.Write(body)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", fmt.Sprint(3*len(body)))
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	target, _ := url.Parse(b.URL)
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
		Transport: tr,
	})
	t.Cleanup(front.Close)
	client := front.Client()
	for i := range 5 {
		req, _ := http.NewRequest("POST", front.URL+"/x", strings.NewReader(strings.Repeat("ab", i*1000)))
		req.Host = "app.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body) != 6*i*1000 {
			t.Fatalf("%d: %d bytes, %v", i, len(body), err)
		}
		if got, want := resp.Trailer.Get("X-Sum"), fmt.Sprint(6*i*1000); got != want {
			t.Errorf("%d: trailer X-Sum = %q, want %q", i, got, want)
		}
		if got := resp.Header.Get("X-Host"); got != "app.example" {
			t.Errorf("%d: backend saw Host %q", i, got)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend accepted %d connections, want 1", got)
	}
}

func TestRecentlyIdleGetRetriedWhenStale(t *testing.T) {
	t.Parallel()
	// As TestServerClosedIdle, but with GETs soon after: the peek is
	// skipped for a connection idle under trustIdle, and the stale
	// connection costs a retry on a new one, not an error.
	s := newRawServer(t, func(n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(10 * time.Millisecond)
	})
	tr := newTransport(t, s.ln.Addr().String())
	for i := range 3 {
		if _, body := get(t, tr, s.url()); body != "ok" {
			t.Errorf("GET %d: body %q", i, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.conns.Load(); got < 3 {
		t.Errorf("server accepted %d connections, want at least 3", got)
	}
}

func TestRequestTarget(t *testing.T) {
	t.Parallel()
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RequestURI)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	for _, target := range []string{"/", "/p?q=1&r", "/a%2Fb/c?x=%20", "/p?", "/caf%C3%A9"} {
		req, err := http.NewRequest("GET", b.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, body := do(t, tr, req); body != target {
			t.Errorf("sent %q, backend saw %q", target, body)
		}
	}
	req, _ := http.NewRequest("GET", b.URL+"/", nil)
	req.URL.RawQuery = "a b"
	if _, err := tr.RoundTrip(req); err == nil {
		t.Errorf("a space in the query was sent")
	}
}

func TestCrashAfterWriteIsNotADialError(t *testing.T) {
	t.Parallel()
	// The backend answers once, then takes the next request and dies:
	// its listener closes, so the retry's dial is refused. The error must
	// say the request was sent, and must not look like a refused dial (a
	// pool would try the request, perhaps the one that killed the
	// backend, on another).
	var s *rawServer
	ready := make(chan struct{})
	s = newRawServer(t, func(n int, c net.Conn) {
		<-ready
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if _, err := readRequest(br); err != nil {
			return
		}
		s.ln.Close()
	})
	close(ready)
	tr := newTransport(t, s.ln.Addr().String())
	get(t, tr, s.url())
	req, _ := http.NewRequest("GET", s.url()+"/crash", nil)
	_, err := tr.RoundTrip(req)
	var e *Error
	if !errors.As(err, &e) || !e.Sent || e.Op == "dial" {
		t.Fatalf("err = %#v, want *Error with Sent and the first attempt's Op", err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		t.Errorf("err %v wraps the retry's dial error", err)
	}
}

// TestRecycle: a recycled head is reused, and values taken from a response
// before its head was recycled stay as they were while later responses
// are parsed into the same block. A head whose body is still open is not
// recycled.
func TestRecycle(t *testing.T) {
	b := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Add("X-Twice", "a"+r.URL.Path)
		w.Header().Add("X-Twice", "b"+r.URL.Path)
		io.WriteString(w, r.URL.Path)
	}))
	tr := newTransport(t, b.Listener.Addr().String())
	type kept struct {
		path  string
		vals  []string
		twice []string
	}
	var all []kept
	reused := 0
	var last *http.Response
	for i := range 50 {
		path := fmt.Sprintf("/%d", i)
		req, _ := http.NewRequest("GET", b.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp == last {
			reused++
		}
		last = resp
		hd := HeadOf(resp)
		if hd.hd == nil {
			t.Fatalf("response %d was not parsed into a head", i)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != path {
			t.Fatalf("body %q, want %q", body, path)
		}
		if i == 0 {
			hd.Recycle() // body open: must be a no-op
			if resp.Header.Get("X-Path") != path {
				t.Fatal("Recycle with the body open cleared the response")
			}
		}
		all = append(all, kept{path, resp.Header["X-Path"], resp.Header["X-Twice"]})
		resp.Body.Close()
		hd.Recycle()
	}
	for _, k := range all {
		if len(k.vals) != 1 || k.vals[0] != k.path || len(k.twice) != 2 || k.twice[0] != "a"+k.path || k.twice[1] != "b"+k.path {
			t.Errorf("values kept from %s changed: %q %q", k.path, k.vals, k.twice)
		}
	}
	// sync.Pool may drop an item at any time (under -race it drops a
	// quarter of them on purpose), so only some reuse is certain.
	if reused == 0 {
		t.Error("no recycled head was reused in 49 responses")
	}
	t.Logf("the same block came back %d times in 49", reused)
}
