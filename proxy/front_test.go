package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// addrPool is the smallest real Pool: a net/http.Transport aimed at one
// address. The proxy package cannot import workers (dependency direction);
// the full pool is exercised end to end in cmd/gatehouse.
type addrPool struct {
	tr   *http.Transport
	addr string
}

func (p *addrPool) RoundTrip(r *http.Request) (*http.Response, error) {
	r.URL.Host = p.addr
	return p.tr.RoundTrip(r)
}

// seen records what a backend received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (s *seen) add(r *http.Request, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	s.body = append(s.body, body)
}

func (s *seen) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.reqs {
		out = append(out, r.Method+" "+r.URL.RequestURI())
	}
	return out
}

func (s *seen) last() (*http.Request, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil, nil
	}
	return s.reqs[len(s.reqs)-1], s.body[len(s.body)-1]
}

// startBackend runs a real HTTP server on loopback that records every
// request and answers like examples/hello.
func startBackend(t *testing.T) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.add(r.Clone(context.Background()), body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(body)
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, "slow\n")
		case "/frame":
			w.Header().Set("X-Frame-Options", "DENY")
			_, _ = io.WriteString(w, "own frame options\n")
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(300 * time.Millisecond)
			}
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{
				"real_ip": r.Header.Get("X-Real-Ip"),
				"xff":     r.Header.Get("X-Forwarded-For"),
				"proto":   r.Header.Get("X-Forwarded-Proto"),
				"host":    r.Host,
				"id":      r.Header.Get("X-Request-Id"),
			})
		}
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func testConfig(mut func(*Config)) Config {
	var c Config
	c.Listen = Addrs{"127.0.0.1:0"}
	if mut != nil {
		mut(&c)
	}
	c.Defaults()
	return c
}

// startFront runs a Server on loopback in front of backend and returns its
// base URL. The server is drained and stopped when the test ends.
func startFront(t *testing.T, backend *httptest.Server, cfg Config) (string, *Server) {
	t.Helper()
	s := serveOptions(t, withBackend(t, backend, Options{Config: cfg}))
	return "http://" + s.Addrs()[0].String(), s
}

// withBackend fills in a quiet logger and a pool aimed at backend (none
// when backend is nil).
func withBackend(t *testing.T, backend *httptest.Server, opts Options) Options {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if backend != nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		t.Cleanup(tr.CloseIdleConnections)
		opts.Pool = &addrPool{tr: tr, addr: strings.TrimPrefix(backend.URL, "http://")}
	}
	return opts
}

// serveOptions builds, listens and serves a Server until the test ends.
func serveOptions(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func getJSON(t *testing.T, req *http.Request) (map[string]string, *http.Response) {
	t.Helper()
	return getJSONWith(t, http.DefaultClient, req)
}

func TestSpoofedForwardingFromUntrustedPeer(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	url, _ := startFront(t, backend, testConfig(nil)) // trusts nobody

	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Request-ID", "forged-id")
	got, res := getJSON(t, req)
	if got["real_ip"] != "127.0.0.1" || got["xff"] != "127.0.0.1" {
		t.Errorf("client ip: got X-Real-IP %q X-Forwarded-For %q, want the peer 127.0.0.1 only", got["real_ip"], got["xff"])
	}
	if got["proto"] != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http (the client's claim of https is not believed)", got["proto"])
	}
	if got["id"] == "forged-id" || len(got["id"]) != 32 {
		t.Errorf("request id = %q, want a generated one", got["id"])
	}
	if res.Header.Get("X-Request-Id") != got["id"] {
		t.Errorf("response X-Request-Id %q differs from the one the app saw %q", res.Header.Get("X-Request-Id"), got["id"])
	}
}

func TestForwardingFromTrustedPeer(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "10.0.0.0/8"}
	}))
	tests := []struct {
		name, xff, wantIP string
	}{
		{"one hop", "203.0.113.7", "203.0.113.7"},
		{"spoofed left of a real client", "6.6.6.6, 203.0.113.7", "203.0.113.7"},
		{"through a trusted internal hop", "203.0.113.7, 10.1.2.3", "203.0.113.7"},
		{"garbage stops the walk", "nonsense, 10.1.2.3", "10.1.2.3"},
		{"with port", "203.0.113.7:5555", "203.0.113.7"},
		{"ipv6", "[2001:db8::1]:443", "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", url+"/", nil)
			req.Header.Set("X-Forwarded-For", tt.xff)
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Request-ID", "upstream-id-1")
			got, _ := getJSON(t, req)
			if got["real_ip"] != tt.wantIP {
				t.Errorf("X-Real-IP = %q, want %q", got["real_ip"], tt.wantIP)
			}
			if want := tt.xff + ", 127.0.0.1"; got["xff"] != want {
				t.Errorf("X-Forwarded-For = %q, want %q", got["xff"], want)
			}
			if got["proto"] != "https" {
				t.Errorf("X-Forwarded-Proto = %q, want https from the trusted proxy", got["proto"])
			}
			if got["id"] != "upstream-id-1" {
				t.Errorf("request id = %q, want the trusted proxy's", got["id"])
			}
		})
	}
}

func TestHostAllowlist(t *testing.T) {
	t.Parallel()
	backend, s := startBackend(t)
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.Hosts = []string{"example.com", ".example.org", "*.example.net"}
	}))
	tests := []struct {
		host string
		want int
	}{
		{"example.com", 200},
		{"EXAMPLE.com.", 200},
		{"example.com:8080", 200},
		{"example.org", 200},
		{"a.b.example.org", 200},
		{"api.example.net", 200},
		{"example.net", 421},
		{"evil.com", 421},
		{"example.com.evil.com", 421},
		{"127.0.0.1", 421},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", url+"/host-check", nil)
		req.Host = tt.host
		_, res := getJSON(t, req)
		if res.StatusCode != tt.want {
			t.Errorf("Host %q: status %d, want %d", tt.host, res.StatusCode, tt.want)
		}
	}
	for _, p := range s.paths() {
		req, _ := s.last()
		if h := canonicalHost(req.Host); !strings.Contains(h, "example") || h == "example.net" || strings.Contains(h, "evil") {
			t.Errorf("backend saw %s for a disallowed host %q", p, req.Host)
		}
	}
	if n := len(s.paths()); n != 6 {
		t.Errorf("backend saw %d requests, want 6 (only the allowed hosts)", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.Headers = map[string]string{"Strict-Transport-Security": "max-age=60", "Referrer-Policy": "no-referrer", "Server": ""}
	}))
	res, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for k, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "SAMEORIGIN",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=60",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	res, err = http.Get(url + "/frame")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Values("X-Frame-Options"); len(got) != 1 || got[0] != "DENY" {
		t.Errorf("app's own X-Frame-Options: got %q, want just DENY", got)
	}
}

// TestInvalidRequestCorpus sends every raw request in testdata/badrequests
// on its own connection and checks that the answer is 4xx (501 for a
// well-formed but unsupported transfer coding) and that the backend never
// saw any of them.
func TestInvalidRequestCorpus(t *testing.T) {
	t.Parallel()
	backend, s := startBackend(t)
	url, _ := startFront(t, backend, testConfig(nil))
	addr := strings.TrimPrefix(url, "http://")
	files, _ := filepath.Glob("testdata/badrequests/*.http")
	if len(files) < 40 {
		t.Fatalf("corpus has %d requests, want the full set", len(files))
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(file), ".http")
		t.Run(name, func(t *testing.T) {
			statuses := rawExchange(t, addr, raw, name == "chunk_truncated")
			if len(statuses) == 0 {
				t.Fatalf("no response at all")
			}
			final := statuses[len(statuses)-1]
			if final < 400 || final >= 500 {
				t.Errorf("final status %d (all: %v), want 4xx", final, statuses)
			}
		})
	}
	for _, p := range s.paths() {
		if p != "GET /api/hello" { // the valid first half of pipelined_smuggle
			t.Errorf("backend saw %q from the invalid corpus", p)
		}
	}
}

// rawExchange writes raw, half-closes, and returns the status of every
// response read back.
func rawExchange(t *testing.T, addr string, raw []byte, halfClose bool) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		// net/http takes a half-close for a client that left, except
		// while a handler reads the body, which is what this exercises.
		_ = c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	var out []int
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		out = append(out, res.StatusCode)
	}
}

func TestSizeLimits(t *testing.T) {
	t.Parallel()
	backend, s := startBackend(t)
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.MaxHeaderBytes = 4 << 10
		c.MaxURIBytes = 1 << 10
		c.MaxBodyBytes = 64 << 10
		c.BodyBufferBytes = 8 << 10
	}))
	addr := strings.TrimPrefix(url, "http://")
	long := strings.Repeat("a", 2000)
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"uri too long", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nA: " + long + "\r\nB: " + long + "\r\nC: " + long + "\r\n\r\n", 431},
		{"declared body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 413},
		{"chunked body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("4000\r\n"+strings.Repeat("b", 0x4000)+"\r\n", 5) + "0\r\n\r\n", 413},
	}
	for _, tt := range tests {
		got := rawExchange(t, addr, []byte(tt.raw), false)
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: statuses %v, want [%d]", tt.name, got, tt.want)
		}
	}
	if p := s.paths(); len(p) != 0 {
		t.Errorf("backend saw %v", p)
	}
}

func TestBodySpooledAndForwarded(t *testing.T) {
	t.Parallel()
	backend, s := startBackend(t)
	url, _ := startFront(t, backend, testConfig(func(c *Config) {
		c.BodyBufferBytes = 4 << 10 // force a spill to the temp file
	}))
	addr := strings.TrimPrefix(url, "http://")
	payload := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	var chunked strings.Builder
	for i := 0; i < len(payload); i += 1000 {
		part := payload[i:min(i+1000, len(payload))]
		fmt.Fprintf(&chunked, "%x;ext=1\r\n%s\r\n", len(part), part)
	}
	raw := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String() + "0\r\nX-Trailer: t\r\n\r\n"
	raw = strings.Replace(raw, "Host: x\r\n", "Host: x\r\nConnection: close\r\n", 1)
	got := rawExchange(t, addr, []byte(raw), false)
	if len(got) != 1 || got[0] != 200 {
		t.Fatalf("statuses %v, want [200]", got)
	}
	req, body := s.last()
	if string(body) != payload {
		t.Errorf("backend got %d bytes, want the %d sent", len(body), len(payload))
	}
	if req.ContentLength != int64(len(payload)) || len(req.TransferEncoding) != 0 {
		t.Errorf("backend saw Content-Length %d TE %v, want a buffered body with its length", req.ContentLength, req.TransferEncoding)
	}
}

func TestPipelinedAndKeepAlive(t *testing.T) {
	t.Parallel()
	backend, s := startBackend(t)
	url, _ := startFront(t, backend, testConfig(nil))
	addr := strings.TrimPrefix(url, "http://")
	raw := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"\r\n" + // a stray CRLF between requests, as old clients send
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	got := rawExchange(t, addr, []byte(raw), false)
	if fmt.Sprint(got) != "[200 200 200]" {
		t.Fatalf("statuses %v, want three 200s", got)
	}
	if p := strings.Join(s.paths(), ","); p != "POST /echo,POST /echo,GET /last" {
		t.Errorf("backend saw %s", p)
	}
}

func TestServerSentEventsFlushAtOnce(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	url, _ := startFront(t, backend, testConfig(nil))
	res, err := http.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	start := time.Now()
	line, err := br.ReadString('\n')
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	// The backend sends the next event 300 ms later; a buffering proxy
	// would deliver the first only with the rest, after 600+ ms.
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("first event arrived after %v, want it at once", d)
	}
}

func TestBackendDownAnd504(t *testing.T) {
	t.Parallel()
	// A listener that is closed at once: connections are refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	dl := &httptest.Server{URL: "http://" + dead}
	url, _ := startFront(t, dl, testConfig(nil))
	res, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 502 || !strings.Contains(string(body), "request id: ") {
		t.Errorf("dead backend: %d %q, want 502 with the request id", res.StatusCode, body)
	}
	if strings.Contains(string(body), "refused") {
		t.Errorf("error body leaks internal detail: %q", body)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	// A backend that speaks a tiny upgraded protocol: it echoes lines.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", 400)
			return
		}
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
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	// Bytes after the upgrade are not HTTP; the guard must pass them.
	for _, msg := range []string{"\x81\x85binary-ish frame\n", "GET / HTTP/1.1 is just text now\n"} {
		fmt.Fprint(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo: "+msg {
			t.Fatalf("tunnel: got %q, %v; want %q", got, err, "echo: "+msg)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	c := testConfig(func(c *Config) {
		c.Listen = Addrs{"nonsense"}
		c.Hosts = []string{"bad host!"}
		c.TrustedProxies = []string{"10.0.0.0/33"}
	})
	err := c.Validate()
	got := conf.Flatten(err)
	if len(got) != 3 {
		t.Fatalf("got %d problems, want 3: %v", len(got), err)
	}
	for i, want := range []string{"listen", "hosts[0]", "trusted_proxies[0]"} {
		if got[i].Path != want {
			t.Errorf("problem %d path %q, want %q", i, got[i].Path, want)
		}
	}
}

func TestUnixSocketListenerAndAccessLog(t *testing.T) {
	t.Parallel()
	backend, _ := startBackend(t)
	sock := filepath.Join(t.TempDir(), "gh.sock")
	var logs syncBuf
	cfg := testConfig(func(c *Config) {
		c.Listen = Addrs{"unix:" + sock}
		c.TrustedProxies = []string{"unix"}
	})
	serveOptions(t, withBackend(t, backend, Options{
		Config:    cfg,
		AccessLog: slog.New(slog.NewJSONHandler(&logs, nil)),
	}))

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest("GET", "http://gatehouse/hello?q=1", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	req.Header.Set("User-Agent", "test-agent/1")
	got, _ := getJSONWith(t, client, req)
	if got["real_ip"] != "198.51.100.9" {
		t.Errorf("behind a trusted Unix socket, X-Real-IP = %q, want the forwarded client", got["real_ip"])
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("access log line is not one JSON object: %q", logs.String())
	}
	for k, want := range map[string]any{
		"msg": "request", "method": "GET", "path": "/hello", "status": float64(200), "host": "gatehouse",
		"client_ip": "198.51.100.9", "user_agent": "test-agent/1", "route": "app", "request_id": got["id"],
	} {
		if line[k] != want {
			t.Errorf("access log %s = %v, want %v", k, line[k], want)
		}
	}
	for _, k := range []string{"time", "bytes", "duration"} {
		if _, ok := line[k]; !ok {
			t.Errorf("access log lacks %s: %v", k, line)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getJSONWith(t *testing.T, c *http.Client, req *http.Request) (map[string]string, *http.Response) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]string
	if res.StatusCode == 200 {
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
	}
	return m, res
}

// hostOf's fast paths must agree with canonicalHost.
func TestHostOfMatchesCanonicalHost(t *testing.T) {
	for _, h := range []string{
		"example.com", "example.com:8080", "Example.COM", "example.com.", "example.com.:443",
		"127.0.0.1:18080", "[::1]:80", "[::1]", "a:", ":80", "example.com:80:90", "example.com:8o",
		"", "EXAMPLE.com:1",
	} {
		if got, want := hostOf(h), canonicalHost(h); got != want {
			t.Errorf("hostOf(%q) = %q, canonicalHost says %q", h, got, want)
		}
	}
}

func TestCheckTargetDotSegments(t *testing.T) {
	for target, want := range map[string]string{
		"/a/b":           "",
		"/a/../b":        "dot_segment",
		"/a/./b":         "dot_segment",
		"/a/%2e%2E/b":    "dot_segment",
		"/a/.%2e":        "dot_segment",
		"/%2e":           "dot_segment",
		"/a/...":         "",
		"/a/.b":          "",
		"/a/%2ex":        "",
		"/a/%2":          "bad_percent_encoding",
		"/a/x%00":        "nul_in_path",
		"/a/b?x=/../":    "",
		"/.well-known/x": "",
	} {
		if got := checkTarget("GET", target); got != want {
			t.Errorf("checkTarget(%q) = %q, want %q", target, got, want)
		}
	}
}
