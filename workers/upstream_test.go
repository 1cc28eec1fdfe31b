package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/backend"
)

func statusFor(err error) int {
	switch {
	case errors.Is(err, backend.ErrQueueFull), errors.Is(err, backend.ErrQueueTimeout), errors.Is(err, backend.ErrClosed),
		errors.Is(err, backend.ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, backend.ErrTimeout):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// countingServer is a real backend on 127.0.0.1 that counts requests and
// new connections.
type countingServer struct {
	*httptest.Server
	reqs, conns atomic.Int64
}

func newCounting(t *testing.T, h http.Handler) *countingServer {
	cs := &countingServer{}
	cs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.reqs.Add(1)
		h.ServeHTTP(w, r)
	}))
	cs.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// startFake runs the test binary as a backend process on a free port and
// waits until it accepts connections.
func startFake(t *testing.T, mode string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, "GATEHOUSE_FAKE="+mode, "PORT="+port)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	a := "127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", a)
		if err == nil {
			c.Close()
			return a, cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake backend never listened: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func ok(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %d", r.Method, r.Host, len(b))
}

func TestUpstreamKeepAliveAndBalance(t *testing.T) {
	a := newCounting(t, http.HandlerFunc(ok))
	b := newCounting(t, http.HandlerFunc(ok))
	p := newPool(t, Config{Upstreams: []string{addr(a.Server), addr(b.Server)}})
	f := front(t, p)
	for range 100 {
		code, body, err := get(f.Client(), f.URL+"/x")
		if err != nil || code != 200 || !strings.HasPrefix(body, "GET 127.0.0.1:") {
			t.Fatalf("got %d %q %v", code, body, err)
		}
	}
	if a.reqs.Load() < 30 || b.reqs.Load() < 30 {
		t.Errorf("requests not spread: %d and %d", a.reqs.Load(), b.reqs.Load())
	}
	if a.conns.Load() != 1 || b.conns.Load() != 1 {
		t.Errorf("keep-alive not reused: %d and %d connections", a.conns.Load(), b.conns.Load())
	}
}

func TestUpstreamLeastOutstanding(t *testing.T) {
	slow := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	fast := newCounting(t, http.HandlerFunc(ok))
	p := newPool(t, Config{Upstreams: []string{addr(slow.Server), addr(fast.Server)}})
	f := front(t, p)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				get(f.Client(), f.URL)
			}
		})
	}
	wg.Wait()
	// With least-outstanding, the slow backend holds at most one request
	// per client at a time while the fast one absorbs the rest.
	if s, q := slow.reqs.Load(), fast.reqs.Load(); s*4 > q {
		t.Errorf("slow backend got %d requests, fast %d", s, q)
	}
}

func TestUpstreamKilledMidRun(t *testing.T) {
	var addrs []string
	var cmds []*exec.Cmd
	for range 3 {
		a, c := startFake(t, "http")
		addrs, cmds = append(addrs, a), append(cmds, c)
	}
	p := newPool(t, Config{Upstreams: addrs})
	f := front(t, p)
	var (
		killed   atomic.Bool
		killedAt atomic.Int64
		okN      atomic.Int64
		failsN   atomic.Int64
		lateFail atomic.Int64
	)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				code, _, err := get(f.Client(), f.URL+"/")
				if err == nil && code == 200 {
					okN.Add(1)
					continue
				}
				failsN.Add(1)
				// Only requests in flight on the victim when it died may fail.
				if killed.Load() && start.UnixNano() > killedAt.Load()+int64(50*time.Millisecond) {
					lateFail.Add(1)
					t.Errorf("request started after the kill failed: %d %v", code, err)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	cmds[1].Process.Kill()
	killedAt.Store(time.Now().UnixNano())
	killed.Store(true)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("ok %d, failed %d (in flight at the kill)", okN.Load(), failsN.Load())
	if failsN.Load() > 8 {
		t.Errorf("%d failures, at most the 8 in flight may fail", failsN.Load())
	}
	st := p.Status().(Status)
	for _, m := range st.Members {
		if m.Name == addrs[1] && m.State != "down" {
			t.Errorf("killed upstream is %s, want down", m.State)
		}
	}
}

func TestUpstreamRetryRefusedWithBody(t *testing.T) {
	dead := "127.0.0.1:" + freePort(t)
	live := newCounting(t, http.HandlerFunc(ok))
	p := newPool(t, Config{Upstreams: []string{dead, addr(live.Server)}})
	f := front(t, p)
	for range 10 {
		resp, err := f.Client().Post(f.URL, "text/plain", strings.NewReader("hello body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasSuffix(string(b), " 10") {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
}

func TestUpstreamAllDead502(t *testing.T) {
	p := newPool(t, Config{Upstreams: []string{"127.0.0.1:" + freePort(t)}})
	f := front(t, p)
	for range 3 {
		code, _, err := get(f.Client(), f.URL)
		if err != nil || code != 502 {
			t.Fatalf("got %d %v, want 502", code, err)
		}
	}
	_, err := p.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	if !errors.Is(err, backend.ErrNoBackend) {
		t.Errorf("err = %v, want ErrNoBackend", err)
	}
}

func TestUpstreamTimeout504(t *testing.T) {
	s := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	cfg := Config{Upstreams: []string{addr(s.Server)}}
	cfg.Timeout.UnmarshalText([]byte("200ms"))
	p := newPool(t, cfg)
	f := front(t, p)
	start := time.Now()
	code, _, _ := get(f.Client(), f.URL)
	if d := time.Since(start); code != 504 || d > time.Second {
		t.Fatalf("got %d after %s, want 504 after ~200ms", code, d)
	}
}

func TestUpstreamQueue(t *testing.T) {
	release := make(chan struct{})
	s := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	cfg := Config{Upstreams: []string{addr(s.Server)}, UpstreamConcurrency: 1, Queue: 1}
	cfg.QueueTimeout.UnmarshalText([]byte("300ms"))
	p := newPool(t, cfg)
	f := front(t, p)
	first := make(chan int)
	go func() {
		code, _, _ := get(f.Client(), f.URL)
		first <- code
	}()
	for s.reqs.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	queued := make(chan int)
	start := time.Now()
	go func() {
		code, _, _ := get(f.Client(), f.URL)
		queued <- code
	}()
	for p.Status().(Status).Queued == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The queue holds one: the next is refused at once.
	_, err := p.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	var ra backend.RetryAfter
	if !errors.Is(err, backend.ErrQueueFull) || !errors.As(err, &ra) {
		t.Errorf("err = %v, want ErrQueueFull with RetryAfter", err)
	}
	if code := <-queued; code != 503 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("queued request: %d after %s, want 503 after queue_timeout", code, time.Since(start))
	}
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("first request: %d", code)
	}
	// A queued request gets the slot when it frees.
	release2 := make(chan struct{})
	_ = release2
	var wg sync.WaitGroup
	var okN atomic.Int64
	for range 3 {
		wg.Go(func() {
			if code, _, _ := get(f.Client(), f.URL); code == 200 {
				okN.Add(1)
			}
		})
	}
	wg.Wait()
	if okN.Load() < 2 {
		t.Errorf("only %d of 3 succeeded with queue 1", okN.Load())
	}
}

func TestUpstreamActiveHealthCheck(t *testing.T) {
	sick := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(503)
			return
		}
		ok(w, r)
	}))
	well := newCounting(t, http.HandlerFunc(ok))
	cfg := Config{Upstreams: []string{addr(sick.Server), addr(well.Server)}, HealthCheck: HealthCheck{Path: "/health"}}
	cfg.HealthCheck.Interval.UnmarshalText([]byte("50ms"))
	p := newPool(t, cfg)
	f := front(t, p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := p.Status().(Status)
		if st.Members[0].State == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sick upstream still %s", st.Members[0].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := sick.reqs.Load()
	for range 20 {
		if code, _, _ := get(f.Client(), f.URL); code != 200 {
			t.Fatalf("got %d", code)
		}
	}
	// Only health checks (and at most a probe) reach the sick one.
	if n := sick.reqs.Load() - before; n > 5 {
		t.Errorf("sick upstream got %d requests", n)
	}
}

func TestUpstreamReload(t *testing.T) {
	a := newCounting(t, http.HandlerFunc(ok))
	b := newCounting(t, http.HandlerFunc(ok))
	p := newPool(t, Config{Upstreams: []string{addr(a.Server)}})
	f := front(t, p)
	get(f.Client(), f.URL)
	if err := p.Reload(context.Background(), Config{Upstreams: []string{addr(b.Server)}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		get(f.Client(), f.URL)
	}
	if a.reqs.Load() != 1 || b.reqs.Load() != 5 {
		t.Errorf("after reload: a %d, b %d requests", a.reqs.Load(), b.reqs.Load())
	}
	if err := p.Reload(context.Background(), Config{Command: []string{"x"}}); err == nil {
		t.Error("changing the pool kind on reload should fail")
	}
}

func TestUpstreamUpgradeAndStreaming(t *testing.T) {
	s := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	p := newPool(t, Config{Upstreams: []string{addr(s.Server)}})
	f := front(t, p)

	// Streaming: the first event arrives before the handler finishes.
	start := time.Now()
	resp, err := f.Client().Get(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9)
	io.ReadFull(resp.Body, buf)
	if string(buf) != "data: 0\n\n" || time.Since(start) > 100*time.Millisecond {
		t.Errorf("first event %q after %s", buf, time.Since(start))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	// Upgrade: bytes pass both ways.
	c, err := net.Dial("tcp", addr(f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	c.SetDeadline(time.Now().Add(3 * time.Second))
	head := make([]byte, 0, 256)
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading 101: %v (%q)", err, head)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("got %q", head)
	}
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Errorf("echo %q %v", got, err)
	}
}

func TestUpstreamCloseWaitsForInFlight(t *testing.T) {
	s := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	}))
	p, err := New(Config{Upstreams: []string{addr(s.Server)}}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background())
	f := front(t, p)
	got := make(chan string)
	go func() {
		_, body, _ := get(f.Client(), f.URL)
		got <- body
	}()
	for s.reqs.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if body := <-got; body != "done" {
		t.Errorf("in-flight request got %q", body)
	}
	if _, err := p.RoundTrip(httptest.NewRequest("GET", "http://x/", nil)); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// A response spooled to a temp file (larger than response_buffer) whose
// reader goes away while the app is still sending: closing the body ends
// the exchange with the app at once, not when the app finishes.
func TestSpooledResponseClosedEarlyAbortsTheApp(t *testing.T) {
	gone := make(chan struct{})
	s := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(8<<20))
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		select { // then stall, as a slow app would
		case <-r.Context().Done():
			close(gone)
		case <-time.After(10 * time.Second):
		}
	}))
	p := newPool(t, Config{Upstreams: []string{addr(s.Server)}})
	p.lim.Store(&sendLimits{timeout: p.lim.Load().timeout, respBuf: 1 << 10, spoolMax: 64 << 20})
	req := httptest.NewRequest("GET", "http://app/", nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(*spool); !ok {
		t.Fatalf("body is %T, want a spool", resp.Body)
	}
	buf := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the app's exchange was not ended when the spooled body was closed")
	}
}

// TestDoneRecyclesResponses: responses handed back with Done are parsed
// into again by other requests running at the same time, and header
// values taken before Done (as the proxy shares them with the response it
// writes) keep their own request's text.
func TestDoneRecyclesResponses(t *testing.T) {
	a := newCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		io.WriteString(w, r.URL.Path)
	}))
	p := newPool(t, Config{Upstreams: []string{addr(a.Server)}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var kept [][]string
			for i := range 100 {
				path := fmt.Sprintf("/%d/%d", g, i)
				req, _ := http.NewRequest("GET", "http://app"+path, nil)
				resp, err := p.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != path {
					t.Errorf("%s: body %q, %v", path, body, err)
				}
				kept = append(kept, resp.Header["X-Path"])
				p.Done(resp)
			}
			for i, v := range kept {
				if want := fmt.Sprintf("/%d/%d", g, i); len(v) != 1 || v[0] != want {
					t.Errorf("X-Path kept from %s is now %q", want, v)
				}
			}
		})
	}
	wg.Wait()
}
