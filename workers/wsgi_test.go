package workers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// python returns the interpreter for WSGI tests: Debian's /usr/bin/python3
// (which has python3-django) when present, else python3 from PATH.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("python3 is required")
	}
	t.Skip("python3 not installed")
	return ""
}

func wsgiCfg(t *testing.T, app string, workers int) Config {
	dir, _ := filepath.Abs("testdata/wsgiapp")
	return Config{
		WSGI:            "apps:" + app,
		Python:          python(t),
		Chdir:           dir,
		Env:             map[string]string{"TEST_MARKS": t.TempDir()},
		Workers:         workers,
		GracefulTimeout: dur("5s"),
		BootTimeout:     dur("20s"),
	}
}

func startWSGI(t *testing.T, cfg Config) (*Pool, *logBuf, string) {
	t.Helper()
	p, lb := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "ready workers", func() bool { return len(readyPIDs(p)) == cfg.Workers })
	return p, lb, f.URL
}

func TestWSGIEnviron(t *testing.T) {
	_, _, url := startWSGI(t, wsgiCfg(t, "echo", 1))
	req, _ := http.NewRequest("GET", url+"/caf%C3%A9/a%2Fb?x=1&y=%20", nil)
	req.Host = "example.com:8443"
	req.Header.Set("Cookie", "a=1")
	req.Header.Add("Cookie", "b=2")
	req.Header.Set("X-Test-Client", "203.0.113.9")
	req.Header.Set("X-Test-TLS", "1")
	req.Header["X_Spoof"] = []string{"evil"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(resp.Status, err)
	}
	want := map[string]any{
		"REQUEST_METHOD":  "GET",
		"SCRIPT_NAME":     "",
		"path_utf8":       "/café/a/b",
		"QUERY_STRING":    "x=1&y=%20",
		"SERVER_NAME":     "example.com",
		"SERVER_PORT":     "8443",
		"SERVER_PROTOCOL": "HTTP/1.1",
		"REMOTE_ADDR":     "203.0.113.9",
		"HTTP_HOST":       "example.com:8443",
		"HTTP_COOKIE":     "a=1; b=2",
		"wsgi.url_scheme": "https",
		"HTTP_X_SPOOF":    nil,
		"CONTENT_LENGTH":  nil,
		"body_len":        0.0,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %#v, want %#v", k, env[k], v)
		}
	}
	if s, _ := env["HTTP_X_REQUEST_START"].(string); !strings.HasPrefix(s, "t=") {
		t.Errorf("X-Request-Start = %q", s)
	}
}

func TestWSGIBodies(t *testing.T) {
	_, _, url := startWSGI(t, wsgiCfg(t, "echo", 1))
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	sum := 0
	for _, c := range big {
		sum += int(c)
	}
	check := func(name string, resp *http.Response, err error, wantLen int, wantSum int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %s %v", name, resp.Status, err)
		}
		if env["body_len"] != float64(wantLen) || wantSum >= 0 && env["body_sum"] != float64(wantSum%1000003) {
			t.Errorf("%s: body_len %v sum %v, want %d", name, env["body_len"], env["body_sum"], wantLen)
		}
	}
	resp, err := http.Post(url+"/cl", "application/octet-stream", bytes.NewReader(big))
	check("content-length body", resp, err, len(big), sum)
	// An unknown length makes net/http send it chunked; the front buffers it.
	resp, err = http.Post(url+"/chunked", "application/octet-stream", io.MultiReader(bytes.NewReader(big[:1000]), bytes.NewReader(big[1000:])))
	check("chunked body", resp, err, len(big), sum)
	resp, err = http.Post(url+"/lines?lines", "text/plain", strings.NewReader("a\nbb\nccc"))
	check("readlines", resp, err, 8, -1)
	// HEAD: the head only, with the app's Content-Length.
	resp, err = http.Head(url + "/head")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %v %v length %d", resp.Status, err, resp.ContentLength)
	}
}

func TestWSGIResponses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "blob")
	blob := make([]byte, 1<<20+5)
	rand.Read(blob)
	os.WriteFile(file, blob, 0o644)
	for _, tt := range []struct {
		app        string
		wantStatus int
		wantBody   string
	}{
		{"writer", 200, "written and returned"},
		{"excinfo", 500, "handled"},
		{"filewrap", 200, string(blob)},
	} {
		t.Run(tt.app, func(t *testing.T) {
			cfg := wsgiCfg(t, tt.app, 1)
			cfg.Env["TEST_FILE"] = file
			_, _, url := startWSGI(t, cfg)
			code, body, err := get(http.DefaultClient, url)
			if err != nil || code != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d (%d bytes) %v", code, len(body), err)
			}
		})
	}
}

func TestWSGIStreaming(t *testing.T) {
	_, _, url := startWSGI(t, wsgiCfg(t, "stream", 1))
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 9)
	io.ReadFull(resp.Body, buf)
	if string(buf) != "data: 0\n\n" || time.Since(start) > 300*time.Millisecond {
		t.Errorf("first event %q after %s", buf, time.Since(start))
	}
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "data: 1\n\ndata: 2\n\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestWSGICloseAlwaysCalled(t *testing.T) {
	cfg := wsgiCfg(t, "closing", 1)
	marks := cfg.Env["TEST_MARKS"]
	_, _, url := startWSGI(t, cfg)
	// Read to the end.
	if code, body, _ := get(http.DefaultClient, url+"?full"); code != 200 || len(body) != 200000 {
		t.Errorf("full: %d %d", code, len(body))
	}
	// Client gone mid-stream.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"?cut", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 3000))
	cancel()
	resp.Body.Close()
	for _, name := range []string{"full", "cut"} {
		waitFor(t, "close() on "+name, func() bool {
			b, _ := os.ReadFile(filepath.Join(marks, name))
			return string(b) == "closed"
		})
	}
}

func TestWSGIErrorsAndFailures(t *testing.T) {
	cfg := wsgiCfg(t, "errors", 1)
	_, lb, url := startWSGI(t, cfg)
	if code, _, _ := get(http.DefaultClient, url); code != 200 {
		t.Errorf("errors app: %d", code)
	}
	waitFor(t, "wsgi.errors in the log", func() bool { return strings.Contains(lb.String(), "message on wsgi.errors") })

	_, lb, url = startWSGI(t, wsgiCfg(t, "failing_mid", 1))
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("a response the app failed in the middle of was not cut")
	}
	waitFor(t, "traceback in the log", func() bool { return strings.Contains(lb.String(), "RuntimeError: failed after the head") })
	// The connection and worker are fine afterwards.
	resp, err = http.Get(url)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("after failure: %v %v", resp, err)
	}
}

func TestWSGIThreads(t *testing.T) {
	cfg := wsgiCfg(t, "sleep", 1)
	cfg.Threads = 4
	_, _, url := startWSGI(t, cfg)
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if code, _, err := get(http.DefaultClient, url+"?0.5"); code != 200 {
				t.Errorf("%d %v", code, err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Errorf("4 requests of 0.5s on 4 threads took %s", d)
	}
}

func TestWSGITimeoutDumpsStackAndReplaces(t *testing.T) {
	cfg := wsgiCfg(t, "hang_forever_view", 2)
	cfg.Timeout = dur("500ms")
	p, lb, url := startWSGI(t, cfg)
	start := time.Now()
	code, _, _ := get(http.DefaultClient, url)
	if d := time.Since(start); code != 504 || d > 900*time.Millisecond {
		t.Errorf("hanging view: %d after %s, want 504 after ~500ms", code, d)
	}
	waitFor(t, "the stack in the log", func() bool { return strings.Contains(lb.String(), "hang_forever_view") })
	waitFor(t, "back to full strength", func() bool {
		return len(readyPIDs(p)) == 2 && p.Status().(Status).Restarts["timeout"] == 1
	})
}

func TestWSGICrashCostsOneRequest(t *testing.T) {
	cfg := wsgiCfg(t, "crash", 2)
	p, _, url := startWSGI(t, cfg)
	if code, _, _ := get(http.DefaultClient, url); code != 502 {
		t.Errorf("crashing request: %d, want 502", code)
	}
	waitFor(t, "replaced", func() bool {
		return len(readyPIDs(p)) == 2 && p.Status().(Status).Restarts["crash"] == 1
	})
}

func TestWSGIImportError(t *testing.T) {
	cfg := wsgiCfg(t, "app", 1)
	cfg.WSGI = "broken:app"
	p, lb := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "the boot failure", func() bool { return p.Status().(Status).LastError != "" })
	start := time.Now()
	if code, _, _ := get(http.DefaultClient, f.URL); code != 503 || time.Since(start) > 500*time.Millisecond {
		t.Errorf("with a broken app: %d after %s", code, time.Since(start))
	}
	time.Sleep(1500 * time.Millisecond)
	log := lb.String()
	if n := strings.Count(log, "No module named 'this_module_does_not_exist'"); n != 1 {
		t.Errorf("the import error is logged %d times, want once", n)
	}
	if n := p.Status().(Status).Restarts["boot_failure"]; n > 6 {
		t.Errorf("%d boot attempts in ~2s: a tight loop", n)
	}
	if !strings.Contains(p.Status().(Status).LastError, "ModuleNotFoundError") {
		t.Errorf("status last_error = %q", p.Status().(Status).LastError)
	}
}

func TestWSGIMaxRSSRecyclesUnderLoad(t *testing.T) {
	old := minRecycleAge
	minRecycleAge = 0
	t.Cleanup(func() { minRecycleAge = old })
	cfg := wsgiCfg(t, "leak", 2)
	cfg.MaxRSS = 40 << 20
	cfg.MemoryInterval = dur("100ms")
	p, _, url := startWSGI(t, cfg)
	stop := make(chan struct{})
	wait := load(t, url, 4, stop)
	waitFor(t, "2 memory recycles", func() bool { return p.Status().(Status).Restarts["memory_soft"] >= 2 })
	close(stop)
	okN, failN := wait()
	t.Logf("%d ok, %d failed", okN, failN)
	if failN != 0 {
		t.Errorf("%d requests failed during memory recycling", failN)
	}
}

func TestWSGIReloadUnderLoad(t *testing.T) {
	cfg := wsgiCfg(t, "sleep", 2)
	p, _, url := startWSGI(t, cfg)
	old := readyPIDs(p)
	stop := make(chan struct{})
	wait := load(t, url, 4, stop)
	time.Sleep(200 * time.Millisecond)
	if err := p.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mid := readyPIDs(p)
	bad := cfg
	bad.WSGI = "broken:app"
	if err := p.Reload(context.Background(), bad); err == nil {
		t.Error("reload to a broken app succeeded")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	okN, failN := wait()
	t.Logf("%d ok, %d failed", okN, failN)
	if failN != 0 {
		t.Errorf("%d requests failed during reload", failN)
	}
	for _, a := range mid {
		for _, b := range old {
			if a == b {
				t.Errorf("pid %d survived the reload", a)
			}
		}
	}
	if now := readyPIDs(p); len(now) != 2 {
		t.Errorf("after the failed reload: %v", now)
	}
}

func TestWSGIKill9UnderLoad(t *testing.T) {
	cfg := wsgiCfg(t, "sleep", 3)
	p, _, url := startWSGI(t, cfg)
	stop := make(chan struct{})
	var killed atomic.Int64
	wait := load(t, url+"?0.01", 6, stop)
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		if pids := readyPIDs(p); len(pids) > 0 {
			syscall.Kill(pids[0], syscall.SIGKILL)
			killed.Add(1)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	okN, failN := wait()
	t.Logf("%d ok, %d failed, %d workers killed", okN, failN, killed.Load())
	// Only a request in flight on a killed worker may fail (threads=1).
	if failN > killed.Load() {
		t.Errorf("%d failures for %d kills", failN, killed.Load())
	}
	waitFor(t, "back to 3 workers", func() bool { return len(readyPIDs(p)) == 3 })
}

func TestWSGISlowClientDoesNotHoldWorker(t *testing.T) {
	file := filepath.Join(t.TempDir(), "blob")
	const size = 4 << 20 // more than socket buffers hold
	os.WriteFile(file, bytes.Repeat([]byte("x"), size), 0o644)
	for _, tt := range []struct {
		name string
		buf  int64
	}{
		{"in memory", 8 << 20},
		{"spooled to a file", 0},
		{"passed through (fails)", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.buf < 0 && os.Getenv("SHOW_SLOW_CLIENT_FAILURE") == "" {
				t.Skip("set SHOW_SLOW_CLIENT_FAILURE=1 to see the test fail without buffering")
			}
			cfg := wsgiCfg(t, "filewrap", 1)
			cfg.Env["TEST_FILE"] = file
			cfg.ResponseBuffer = conf.Size(tt.buf)
			p, _, url := startWSGI(t, cfg)
			if tt.buf < 0 {
				lim := *p.lim.Load()
				lim.spoolMax = 0
				p.lim.Store(&lim)
			}
			// A client that asks for 4 MiB and reads nothing: raw TCP, so
			// no client library reads ahead for it.
			// A small receive buffer, set before connecting so that the
			// window is negotiated for it.
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
				})
			}}
			slow, err := d.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			// With one worker and one thread, another request is served at once.
			start := time.Now()
			code, body, err := get(&http.Client{Timeout: 5 * time.Second}, url)
			if err != nil || code != 200 || len(body) != size || time.Since(start) > time.Second {
				t.Errorf("second request: %d %d bytes %v after %s", code, len(body), err, time.Since(start))
			}
			// The slow client still gets every byte.
			slow.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if n != size || err != nil {
				t.Errorf("slow client got %d bytes, %v", n, err)
			}
		})
	}
}

func TestWSGIKeepAlive(t *testing.T) {
	// Sequential requests reuse one connection (one shim thread), both for
	// small buffered responses and streamed ones.
	cfg := wsgiCfg(t, "echo", 1)
	p, _, url := startWSGI(t, cfg)
	for range 20 {
		if code, _, err := get(http.DefaultClient, url); code != 200 {
			t.Fatalf("%d %v", code, err)
		}
	}
	p.mu.Lock()
	wt := p.members[0].rt.(*wsgiTransport)
	p.mu.Unlock()
	wt.mu.Lock()
	idle := len(wt.idle)
	wt.mu.Unlock()
	if idle != 1 {
		t.Errorf("%d idle connections after sequential requests, want 1 kept alive", idle)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", readyPIDs(p)[0]))
	if m := regexp.MustCompile(`Threads:\s+(\d+)`).FindSubmatch(b); m == nil || string(m[1]) != "2" {
		t.Errorf("shim threads: %s, want 2 (main + one connection)", m)
	}
}

func TestWSGIMaxRSSHardKills(t *testing.T) {
	cfg := wsgiCfg(t, "leak", 1)
	cfg.MaxRSSHard = 30 << 20
	cfg.MemoryInterval = dur("50ms")
	p, lb, url := startWSGI(t, cfg)
	first := readyPIDs(p)[0]
	// Each request leaks 2 MiB; soon the worker passes the hard limit and
	// is killed without waiting for samples in a row or a minimum age.
	deadline := time.Now().Add(15 * time.Second)
	for p.Status().(Status).Restarts["memory_hard"] == 0 && time.Now().Before(deadline) {
		get(http.DefaultClient, url)
		time.Sleep(10 * time.Millisecond)
	}
	if p.Status().(Status).Restarts["memory_hard"] == 0 {
		t.Fatal("worker never killed for max_rss_hard")
	}
	if !strings.Contains(lb.String(), "over max_rss_hard") {
		t.Error("the kill's reason is not in the log")
	}
	waitFor(t, "a replacement", func() bool { pids := readyPIDs(p); return len(pids) == 1 && pids[0] != first })
}

func TestParseSmapsRollup(t *testing.T) {
	in := []byte("00400000-7ffd [rollup]\nRss:              10240 kB\nPss:               4096 kB\nPrivate_Clean:      100 kB\nPrivate_Dirty:     2048 kB\nSwap:               512 kB\n")
	for kind, want := range map[string]int64{"unshared": (2048 + 512) << 10, "rss": 10240 << 10, "pss": 4096 << 10} {
		if got := parseSmapsRollup(in, kind); got != want {
			t.Errorf("%s: %d, want %d", kind, got, want)
		}
	}
}

func TestWSGINulInPath(t *testing.T) {
	// A %00 in the path makes gatehouse use the length-prefixed environ.
	_, _, url := startWSGI(t, wsgiCfg(t, "echo", 1))
	resp, err := http.Get(url + "/a%00b")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	json.NewDecoder(resp.Body).Decode(&env)
	if env["path_utf8"] != "/a\x00b" {
		t.Errorf("PATH_INFO = %q", env["path_utf8"])
	}
}

func TestParseHeadDuplicates(t *testing.T) {
	// Repeated headers keep every value, in order, without one header's
	// values spilling into another's (they share a backing array).
	resp, err := parseHead(head(":status", "200 OK", "Set-Cookie", "a=1", "Vary", "Cookie", "set-cookie", "b=2")[5:])
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Add("Vary", "Accept")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie = %q", got)
	}
	if got := resp.Header.Values("Vary"); len(got) != 2 || got[0] != "Cookie" || got[1] != "Accept" {
		t.Errorf("Vary = %q", got)
	}
	// Two different lengths could desynchronise whoever reads the body.
	if _, err := parseHead(head(":status", "200 OK", "Content-Length", "5", "Content-Length", "6")[5:]); err == nil {
		t.Error("conflicting Content-Lengths accepted")
	}
	if resp, err := parseHead(head(":status", "200 OK", "Content-Length", "5", "Content-Length", "5")[5:]); err != nil || resp.ContentLength != 5 {
		t.Errorf("repeated equal Content-Length: %v", err)
	}
}
