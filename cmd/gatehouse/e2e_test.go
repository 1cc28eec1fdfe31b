package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run the real gatehouse binary, built once in TestMain, in
// front of real Python processes (examples/hello/app.py), and talk to it
// over loopback sockets.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gatehouse for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nothing listens on, and never the same
// one twice in this process: the kernel may hand a port just closed to the
// next listen on port 0, and two programs of one test (Pebble and its
// challenge server) were once given the same management port.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatal("no fresh loopback port in 100 tries")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s after 20s", addr)
}

// startPythonApp runs examples/hello/app.py on a free port.
func startPythonApp(t *testing.T) (addr string, cmd *exec.Cmd) {
	t.Helper()
	port := freePort(t)
	cmd = exec.Command("python3", "../../examples/hello/app.py")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr)
	return addr, cmd
}

// gatehouseProc is a running gatehouse binary.
type gatehouseProc struct {
	cmd   *exec.Cmd
	url   string
	admin string
	cfg   string
	log   *syncBuffer
	done  chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGatehouse writes config (with LISTEN and ADMIN replaced by free
// ports) and runs gatehouse on it.
func startGatehouse(t *testing.T, config string) *gatehouseProc {
	t.Helper()
	return startGatehouseAt(t, config, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
}

// startGatehouseAt is startGatehouse with the plain listener's address
// chosen by the caller.
func startGatehouseAt(t *testing.T, config, listen string) *gatehouseProc {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	g := &gatehouseProc{url: "http://" + listen, admin: "http://" + admin, cfg: path, log: &syncBuffer{}, done: make(chan error, 1)}
	g.write(t, config)
	g.cmd = exec.Command(binary, "run", "-c", path)
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGKILL)
		<-g.done
		if t.Failed() {
			t.Logf("gatehouse log:\n%s", g.log.String())
		}
	})
	waitListening(t, listen)
	return g
}

func (g *gatehouseProc) write(t *testing.T, config string) {
	t.Helper()
	config = strings.ReplaceAll(config, "LISTEN", strings.TrimPrefix(g.url, "http://"))
	config = strings.ReplaceAll(config, "ADMIN", strings.TrimPrefix(g.admin, "http://"))
	if err := os.WriteFile(g.cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// load sends requests from n goroutines until stop is closed and counts
// the outcomes; every status other than 200 is a failure.
type loadResult struct {
	ok, failed atomic.Int64
	wait       func()
	mu         sync.Mutex
	failures   []string
}

func runLoad(url string, n int, stop <-chan struct{}) *loadResult {
	res := &loadResult{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := client.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
				if err != nil || r.StatusCode != 200 {
					res.failed.Add(1)
					res.mu.Lock()
					if err != nil {
						res.failures = append(res.failures, err.Error())
					} else {
						res.failures = append(res.failures, r.Status)
					}
					res.mu.Unlock()
					continue
				}
				res.ok.Add(1)
			}
		})
	}
	go func() { <-stop; wg.Wait(); client.CloseIdleConnections() }()
	res.wait = wg.Wait
	return res
}

func (r *loadResult) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.failures
	if len(f) > 5 {
		f = f[:5]
	}
	return fmt.Sprintf("%d ok, %d failed %v", r.ok.Load(), r.failed.Load(), f)
}

func TestUpstreamKilledMidRun(t *testing.T) {
	a, _ := startPythonApp(t)
	b, _ := startPythonApp(t)
	c, victim := startPythonApp(t)
	g := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN"}
app:
  upstreams: [%q, %q, %q]
  health_check: {path: /api/hello, interval: 200ms, timeout: 1s}
admin: {listen: "ADMIN"}
log: {access: false}
`, a, b, c))
	stop := make(chan struct{})
	load := runLoad(g.url+"/api/hello", 8, stop)
	time.Sleep(700 * time.Millisecond)
	before := load.ok.Load()
	_ = syscall.Kill(-victim.Process.Pid, syscall.SIGKILL)
	killedAt := load.ok.Load() + load.failed.Load()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	load.wait()
	after := load.ok.Load() - before
	t.Logf("load: %s; %d requests before the kill, %d succeeded after", load, killedAt, after)
	// Only a request in flight on the killed upstream at that instant may
	// fail; everything after goes to the others.
	if f := load.failed.Load(); f > 8 {
		t.Errorf("%d requests failed after one upstream was killed, want at most the 8 in flight: %s", f, load)
	}
	if after < 50 {
		t.Errorf("only %d requests succeeded after the kill", after)
	}
	var st struct {
		App struct {
			Backends []struct{ Name, State string }
		}
	}
	res, err := http.Get(g.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, be := range st.App.Backends {
		if be.Name == c && be.State == "ready" {
			t.Errorf("/status still shows the killed upstream %s as ready", c)
		}
	}
	res, err = http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`gatehouse_http_requests_total{code="200",route="app"}`,
		`gatehouse_http_request_duration_seconds_bucket{route="app",le="0.005"}`,
		`gatehouse_http_requests_in_flight`,
		fmt.Sprintf(`gatehouse_upstream_healthy{upstream=%q} 0`, c),
		fmt.Sprintf(`gatehouse_upstream_healthy{upstream=%q} 1`, a),
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(g.admin + path)
		if err != nil || res.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, res, err)
		}
		if res != nil {
			res.Body.Close()
		}
	}
}

func TestReloadUnderLoadDropsNothing(t *testing.T) {
	a, _ := startPythonApp(t)
	b, _ := startPythonApp(t)
	base := fmt.Sprintf(`
server:
  listen: "LISTEN"
  headers: {X-Generation: "%%d"}
app:
  upstreams: [%q, %q]
log: {access: false}
`, a, b)
	g := startGatehouse(t, fmt.Sprintf(base, 0))
	stop := make(chan struct{})
	load := runLoad(g.url+"/api/hello", 8, stop)
	for gen := 1; gen <= 5; gen++ {
		time.Sleep(300 * time.Millisecond)
		g.write(t, fmt.Sprintf(base, gen))
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// A broken file on SIGHUP must leave the running config in place.
	time.Sleep(300 * time.Millisecond)
	g.write(t, "server:\n  listen: \"LISTEN\"\n  idle_timeout: soon\n")
	_ = g.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	load.wait()
	t.Logf("load during 5 reloads and one bad file: %s", load)
	if load.failed.Load() != 0 || load.ok.Load() < 100 {
		t.Errorf("reloads under load: %s, want no failures", load)
	}
	res, err := http.Get(g.url + "/api/hello")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-Generation"); got != "5" {
		t.Errorf("X-Generation = %q after reloads, want 5 (the last good file)", got)
	}
	if log := g.log.String(); !strings.Contains(log, `server.idle_timeout: \"soon\" is not a duration`) &&
		!strings.Contains(log, `server.idle_timeout: "soon" is not a duration`) {
		t.Errorf("the bad file's problem is not in the log:\n%s", log)
	}
}

func TestSIGTERMDrainsSlowRequest(t *testing.T) {
	a, _ := startPythonApp(t)
	g := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN", shutdown_timeout: 10s}
app: {upstreams: [%q]}
`, a))
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get(g.url + "/slow?ms=3000")
		if err != nil {
			got <- result{err: err}
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got <- result{status: res.StatusCode, body: string(body)}
	}()
	time.Sleep(400 * time.Millisecond)
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once draining starts.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(g.log.String(), "draining in-flight requests"); {
		if time.Now().After(deadline) {
			t.Fatal("gatehouse did not start draining within 5s of SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(g.url, "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("gatehouse still accepts connections while draining")
	}
	r := <-got
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "slept 3000 ms") {
		t.Fatalf("in-flight request: %+v, want it completed", r)
	}
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		if err != nil {
			t.Errorf("gatehouse exited with %v, want 0", err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("gatehouse exited %v after SIGTERM, before the request finished", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gatehouse did not exit after draining")
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("server:\n  listne: \":8080\"\n  max_body_bytes: lots\napp:\n  workers: 2\n"), 0o600)
	out, err := exec.Command(binary, "validate", "-c", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("validate of a bad file: %v, want exit code 2\n%s", err, out)
	}
	for _, want := range []string{
		bad + `: server.listne: unknown key (did you mean "listen"?) (line 2)`,
		bad + `: server.max_body_bytes: "lots" is not a size`,
		bad + `: app: set exactly one of wsgi, command and upstreams (found 0) (line 4)`,
		"3 problem(s)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	val := exec.Command(binary, "validate", "-c", "config.example.yaml")
	val.Dir = "../.."
	out, err = val.CombinedOutput()
	if err != nil {
		t.Errorf("validate config.example.yaml: %v\n%s", err, out)
	}
	out, _ = exec.Command(binary, "-h").CombinedOutput()
	if !strings.Contains(string(out), "gatehouse run      -c FILE") {
		t.Errorf("-h does not explain the commands:\n%s", out)
	}
}

func TestCompressCommand(t *testing.T) {
	dir := t.TempDir()
	css := strings.Repeat("body { margin: 0; padding: 0; color: #222; }\n", 50)
	_ = os.WriteFile(filepath.Join(dir, "site.css"), []byte(css), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "photo.jpg"), []byte(css), 0o644) // never compressed by type
	out, err := exec.Command(binary, "compress", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("compress: %v\n%s", err, out)
	}
	for _, ext := range []string{".br", ".zst", ".gz"} {
		if _, err := os.Stat(filepath.Join(dir, "site.css"+ext)); err != nil {
			t.Errorf("site.css%s not written: %v", ext, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "photo.jpg"+ext)); err == nil {
			t.Errorf("photo.jpg%s written for an image", ext)
		}
	}
	out, err = exec.Command(binary, "compress").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "Usage") {
		t.Errorf("compress without DIR: %v %s, want usage and exit 2", err, out)
	}
}

// TestAccelRedirect: the app answers with X-Accel-Redirect and gatehouse
// sends the file from an internal mount, keeping the app's
// Content-Disposition; the internal mount is not reachable directly.
func TestAccelRedirect(t *testing.T) {
	a, _ := startPythonApp(t)
	media, _ := filepath.Abs("../../examples/hello/media")
	g := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN"}
static:
  - {url: /protected/, root: %q, internal: true}
compression: {}
app: {upstreams: [%q]}
`, media, a))
	want, _ := os.ReadFile(filepath.Join(media, "notes.txt"))
	req, _ := http.NewRequest("GET", g.url+"/download", nil)
	req.Header.Set("Accept-Encoding", "identity")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != string(want) {
		t.Errorf("download: %d %q, want the file", res.StatusCode, body)
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.Contains(cd, "notes.txt") {
		t.Errorf("Content-Disposition %q, want the app's", cd)
	}
	if res.Header.Get("X-Accel-Redirect") != "" {
		t.Errorf("X-Accel-Redirect leaked to the client")
	}
	res, err = http.Get(g.url + "/protected/notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 200 {
		t.Errorf("the internal mount answered a direct request")
	}
}

// TestRateLimitThroughFront: limits apply to the app route, static mounts
// are exempt unless ratelimit.static is set.
func TestRateLimitThroughFront(t *testing.T) {
	a, _ := startPythonApp(t)
	root, _ := filepath.Abs("../../examples/hello/static")
	for _, limitStatic := range []bool{false, true} {
		t.Run(fmt.Sprintf("static=%v", limitStatic), func(t *testing.T) {
			g := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN"}
static: [{url: /static/, root: %q}]
ratelimit:
  ip: {rate: 1/m, burst: 2}
  static: %v
app: {upstreams: [%q]}
`, root, limitStatic, a))
			codes := func(path string, n int) []int {
				var out []int
				for range n {
					res, err := http.Get(g.url + path)
					if err != nil {
						t.Fatal(err)
					}
					res.Body.Close()
					out = append(out, res.StatusCode)
				}
				return out
			}
			if got := fmt.Sprint(codes("/static/hello.css", 4)); limitStatic && got != "[200 200 429 429]" || !limitStatic && got != "[200 200 200 200]" {
				t.Errorf("static requests: %s", got)
			}
			want := "[200 200 429]"
			if limitStatic {
				want = "[429 429 429]" // the static requests used the burst
			}
			if got := fmt.Sprint(codes("/api/hello", 3)); got != want {
				t.Errorf("app requests: %s, want %s", got, want)
			}
		})
	}
}

// TestWorkersThroughFront runs the example app as gatehouse's own workers
// (app.command, one worker, one request at a time) and checks what the
// front owes them: a client trickling its body never holds the worker,
// SIGHUP with an unchanged file still rolls the workers, and an app that
// cannot start answers 503 while static files keep working.
func TestWorkersThroughFront(t *testing.T) {
	app, _ := filepath.Abs("../../examples/hello/app.py")
	root, _ := filepath.Abs("../../examples/hello/static")
	g := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN"}
static: [{url: /static/, root: %q}]
app: {command: ["python3", %q], workers: 1, threads: 1, graceful_timeout: 5s}
admin: {listen: "ADMIN"}
`, root, app))
	waitOK := func(path string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := http.Get(g.url + path)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered 200", path)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitOK("/api/hello")

	t.Run("slow body does not hold the worker", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := strings.Repeat("x", 100)
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range body { // 1 byte per 10 ms: a second in all
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		time.Sleep(100 * time.Millisecond)
		for range 5 {
			start := time.Now()
			res, err := http.Get(g.url + "/api/hello")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || time.Since(start) > 500*time.Millisecond {
				t.Errorf("while a client trickles its body, a request to the only worker took %v (%d)", time.Since(start), res.StatusCode)
			}
		}
		<-done
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		if string(got) != body {
			t.Errorf("trickled body came back as %q", got)
		}
	})

	t.Run("SIGHUP rolls the workers", func(t *testing.T) {
		pid := func() string {
			res, err := http.Get(g.url + "/api/hello")
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			_ = json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			return fmt.Sprint(m["pid"])
		}
		before := pid()
		_ = g.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(20 * time.Second)
		for pid() == before {
			if time.Now().After(deadline) {
				t.Fatalf("worker pid still %s 20s after SIGHUP", before)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("an app that cannot start gets 503, files still work", func(t *testing.T) {
		g2 := startGatehouse(t, fmt.Sprintf(`
server: {listen: "LISTEN"}
static: [{url: /static/, root: %q}]
app: {command: ["python3", "-c", "raise SystemExit('cannot import settings')"], workers: 1}
`, root))
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := http.Get(g2.url + "/api/hello")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode == 503 {
				if res.Header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("app that cannot start: %d, want 503", res.StatusCode)
			}
			time.Sleep(200 * time.Millisecond)
		}
		res, err := http.Get(g2.url + "/static/hello.css")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("static file while the app is down: %d", res.StatusCode)
		}
	})
}
