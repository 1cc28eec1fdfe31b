package workers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// logBuf keeps every log line for assertions and echoes it to t.Log.
type logBuf struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func dur(s string) conf.Duration {
	d, err := conf.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func fakeCmd(mode string, workers int) Config {
	return Config{
		Command:         []string{os.Args[0]},
		Env:             map[string]string{"GATEHOUSE_FAKE": mode},
		Workers:         workers,
		GracefulTimeout: dur("2s"),
		BootTimeout:     dur("10s"),
	}
}

func startPool(t *testing.T, cfg Config) (*Pool, *logBuf) {
	t.Helper()
	lb := &logBuf{t: t}
	p, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p, lb
}

// waitFor polls cond (a snapshot check) until it holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readyPIDs(p *Pool) []int {
	var pids []int
	for _, m := range p.Status().(Status).Members {
		if m.State == "ready" || m.State == "busy" {
			pids = append(pids, m.PID)
		}
	}
	return pids
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has run its course; it only waits for its parent to reap it.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestCommandServesAndRestartsAfterCrash(t *testing.T) {
	p, _ := startPool(t, fakeCmd("http", 2))
	f := front(t, p)
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	seen := map[string]bool{}
	for range 20 {
		resp, err := f.Client().Get(f.URL + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		seen[resp.Header.Get("X-Pid")] = true
	}
	if len(seen) != 2 {
		t.Errorf("requests reached %d workers, want 2", len(seen))
	}
	before := readyPIDs(p)
	// A crash costs only the request in flight.
	if code, _, _ := get(f.Client(), f.URL+"/crash"); code != 502 {
		t.Errorf("crashing request: %d, want 502", code)
	}
	for range 20 {
		if code, _, err := get(f.Client(), f.URL+"/after"); code != 200 {
			t.Fatalf("after crash: %d %v", code, err)
		}
	}
	waitFor(t, "the crashed worker replaced", func() bool {
		now := readyPIDs(p)
		return len(now) == 2 && (now[0] != before[0] || now[1] != before[1])
	})
	if n := p.Status().(Status).Restarts["crash"]; n != 1 {
		t.Errorf("crash restarts = %d, want 1", n)
	}
}

func TestCommandUnixSocket(t *testing.T) {
	// A program that only listens on GATEHOUSE_SOCKET is found there.
	cfg := fakeCmd("http", 1)
	cfg.Command = []string{"/bin/sh", "-c", `unset PORT; exec "$0"`, os.Args[0]}
	p, _ := startPool(t, cfg)
	f := front(t, p)
	if code, body, err := get(f.Client(), f.URL+"/u"); code != 200 || !strings.HasPrefix(body, "GET /u") {
		t.Fatalf("got %d %q %v", code, body, err)
	}
}

func TestCommandNeverReady(t *testing.T) {
	cfg := fakeCmd("never-ready", 1)
	cfg.BootTimeout = dur("300ms")
	cfg.QueueTimeout = dur("5s")
	p, lb := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "a boot failure", func() bool { return p.Status().(Status).LastError != "" })
	start := time.Now()
	code, _, _ := get(f.Client(), f.URL)
	if code != 503 || time.Since(start) > time.Second {
		t.Errorf("with no worker able to boot: %d after %s, want an immediate 503", code, time.Since(start))
	}
	if !strings.Contains(lb.String(), "not accepting connections on PORT or GATEHOUSE_SOCKET after boot_timeout") {
		t.Error("boot failure not logged")
	}
}

func TestCommandCrashOnBootBacksOff(t *testing.T) {
	p, lb := startPool(t, fakeCmd("crash", 1))
	time.Sleep(2 * time.Second)
	n := p.Status().(Status).Restarts["boot_failure"]
	// 100ms, 200ms, 400ms, 800ms...: a handful in 2s, not a tight loop.
	if n > 6 {
		t.Errorf("%d boot attempts in 2s", n)
	}
	// And it does try again (on a loaded machine Python may take more
	// than the 2s to start and crash twice).
	waitFor(t, "a second boot attempt", func() bool { return p.Status().(Status).Restarts["boot_failure"] >= 2 })
	log := lb.String()
	if c := strings.Count(log, "crashing on purpose"); c != 1 {
		t.Errorf("the boot failure's output is logged %d times, want once", c)
	}
	if !strings.Contains(p.Status().(Status).LastError, "crashing on purpose") {
		t.Errorf("status last_error = %q", p.Status().(Status).LastError)
	}
}

func TestCommandIgnoreTermIsKilled(t *testing.T) {
	cfg := fakeCmd("ignore-term", 1)
	cfg.GracefulTimeout = dur("300ms")
	p, _ := startPool(t, cfg)
	waitFor(t, "a ready worker", func() bool { return len(readyPIDs(p)) == 1 })
	pid := readyPIDs(p)[0]
	start := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("Close took %s, want about graceful_timeout", d)
	}
	if alive(pid) {
		t.Errorf("worker %d still alive", pid)
	}
}

func TestCommandGrandchildDiesWithGroup(t *testing.T) {
	p, lb := startPool(t, fakeCmd("grandchild", 1))
	waitFor(t, "a ready worker", func() bool { return len(readyPIDs(p)) == 1 })
	m := regexp.MustCompile(`grandchild (\d+)`).FindStringSubmatch(lb.String())
	if m == nil {
		t.Fatal("grandchild pid not in the log")
	}
	gc, _ := strconv.Atoi(m[1])
	if !alive(gc) {
		t.Fatal("grandchild not running")
	}
	p.Close(context.Background())
	waitFor(t, "the grandchild gone", func() bool { return !alive(gc) })
}

func TestCommandTimeoutReplacesWorker(t *testing.T) {
	cfg := fakeCmd("http", 2)
	cfg.Timeout = dur("300ms")
	p, _ := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	start := time.Now()
	code, _, _ := get(f.Client(), f.URL+"/sleep?d=10s")
	if d := time.Since(start); code != 504 || d > 800*time.Millisecond {
		t.Errorf("hanging request: %d after %s, want 504 after ~300ms", code, d)
	}
	waitFor(t, "pool back to 2 ready workers", func() bool {
		return len(readyPIDs(p)) == 2 && p.Status().(Status).Restarts["timeout"] == 1
	})
	if code, _, _ := get(f.Client(), f.URL); code != 200 {
		t.Errorf("after timeout: %d", code)
	}
}

// load runs GETs from n clients until stop is closed, counting failures.
func load(t *testing.T, url string, n int, stop chan struct{}) (wait func() (okN, failN int64)) {
	var okc, failc atomic.Int64
	var wg sync.WaitGroup
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode == 200 {
					okc.Add(1)
				} else {
					failc.Add(1)
					if err == nil {
						t.Logf("failed: %s: %s", resp.Status, resp.Header.Get("X-Error"))
					} else {
						t.Logf("failed: %v", err)
					}
				}
			}
		})
	}
	return func() (int64, int64) { wg.Wait(); return okc.Load(), failc.Load() }
}

func TestCommandMaxRequestsRecyclesWithoutFailures(t *testing.T) {
	cfg := fakeCmd("http", 2)
	cfg.MaxRequests, cfg.MaxRequestsJitter = 40, 10
	p, _ := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	stop := make(chan struct{})
	wait := load(t, f.URL+"/sleep?d=2ms", 4, stop)
	waitFor(t, "3 recycles", func() bool { return p.Status().(Status).Restarts["max_requests"] >= 3 })
	close(stop)
	okN, failN := wait()
	t.Logf("%d ok, %d failed", okN, failN)
	if failN != 0 {
		t.Errorf("%d requests failed during max_requests recycling", failN)
	}
}

func TestCommandReloadUnderLoad(t *testing.T) {
	cfg := fakeCmd("http", 2)
	p, _ := startPool(t, cfg)
	f := front(t, p)
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	old := readyPIDs(p)
	stop := make(chan struct{})
	wait := load(t, f.URL+"/sleep?d=5ms", 4, stop)
	time.Sleep(100 * time.Millisecond)
	if err := p.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// A reload to a broken app keeps the old workers.
	bad := cfg
	bad.Env = map[string]string{"GATEHOUSE_FAKE": "crash"}
	mid := readyPIDs(p)
	if err := p.Reload(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "old workers keep serving") {
		t.Errorf("reload to a crashing app: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	okN, failN := wait()
	t.Logf("%d ok, %d failed", okN, failN)
	if failN != 0 {
		t.Errorf("%d requests failed during reload", failN)
	}
	for _, pid := range mid {
		for _, o := range old {
			if pid == o {
				t.Errorf("pid %d survived the reload", pid)
			}
		}
	}
	if now := readyPIDs(p); len(now) != 2 || fmt.Sprint(now) != fmt.Sprint(mid) {
		t.Errorf("after the failed reload: %v, want the previous workers %v", now, mid)
	}
}

func TestCommandQueueWhileBooting(t *testing.T) {
	// Requests that arrive during the cold start wait instead of failing.
	p, _ := startPool(t, fakeCmd("http", 1))
	_, err := p.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	if err != nil {
		t.Fatalf("request during boot: %v", err)
	}
}

// TestPdeathsig runs a pool inside a child process, kills that process with
// SIGKILL, and checks that its workers die with it.
func TestPdeathsig(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPdeathsigParent$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_PDEATHSIG_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "PIDS "); ok {
			for _, f := range strings.Fields(s) {
				n, _ := strconv.Atoi(f)
				pids = append(pids, n)
			}
			break
		}
	}
	if len(pids) != 2 {
		t.Fatalf("worker pids from the parent: %v", pids)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitFor(t, "workers gone after their parent's SIGKILL", func() bool {
		return !alive(pids[0]) && !alive(pids[1])
	})
}

func TestPdeathsigParent(t *testing.T) {
	if os.Getenv("GATEHOUSE_PDEATHSIG_PARENT") == "" {
		t.Skip("helper for TestPdeathsig")
	}
	p, _ := startPool(t, fakeCmd("http", 2))
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	fmt.Printf("PIDS %d %d\n", readyPIDs(p)[0], readyPIDs(p)[1])
	time.Sleep(time.Minute)
}

func TestCommandReloadFixesBrokenDeploy(t *testing.T) {
	// A pool whose workers cannot boot is fixed by a reload to a good config.
	p, _ := startPool(t, fakeCmd("crash", 2))
	waitFor(t, "boot failures", func() bool { return p.Status().(Status).Restarts["boot_failure"] >= 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Reload(ctx, fakeCmd("http", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 ready workers", func() bool { return len(readyPIDs(p)) == 2 })
	if _, err := p.RoundTrip(httptest.NewRequest("GET", "http://x/", nil)); err != nil {
		t.Errorf("after the fixing reload: %v", err)
	}
}
