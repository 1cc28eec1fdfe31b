// Package harness holds what the Go benchmark programs under bench/ share:
// starting and stopping the servers they compare (each in its own process
// group, killed with the harness), free loopback ports, readiness checks,
// and resident memory readings.
package harness

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a started server.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
}

// Start runs args as name in its own process group, with output to stderr.
func Start(name string, args []string, env ...string) (*Proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = procAttr()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &Proc{Name: name, Cmd: cmd}, nil
}

// Stop sends SIGTERM to the group, then SIGKILL after 5s.
func (p *Proc) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitHTTP waits up to 15s for url to answer 200 (TLS not verified).
func WaitHTTP(url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 15s", url)
}

// BuildGatehouse builds the binary from the repository root into dir.
func BuildGatehouse(dir string) (string, error) {
	out := filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-o", out, "./cmd/gatehouse")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building gatehouse (run from the repository root): %w", err)
	}
	return out, nil
}

// RSSKiB is the resident memory of pid.
func RSSKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// TreeRSSKiB adds up the RSS of pid and its children (nginx's workers).
func TreeRSSKiB(pid int) (int, error) {
	total, err := RSSKiB(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range tree(pid)[1:] {
		if r, err := RSSKiB(c); err == nil {
			total += r
		}
	}
	return total, nil
}

// tree is pid followed by its children.
func tree(pid int) []int {
	pids := []int{pid}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			pids = append(pids, c)
		}
	}
	return pids
}

// NginxVersion is what `nginx -v` says.
func NginxVersion() string {
	out, _ := exec.Command("nginx", "-v").CombinedOutput()
	return strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
}

// Need fails with an install hint when a program is missing.
func Need(programs ...string) error {
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := os.Stat("/usr/sbin/" + p); err != nil {
				return fmt.Errorf("%s is not installed (see the header of this program for the Debian packages)", p)
			}
		}
	}
	return nil
}

// TreeCPU is the CPU time (user + system) that pid and its children (nginx's
// workers) have used so far. Taken before and after a load and divided by
// the requests served, it gives CPU per request: steadier than requests/s
// on a machine that other jobs share, because time the process waited for
// a CPU is not in it.
func TreeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and
		// may hold spaces: state is the first, utime the 12th, stime
		// the 13th.
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + k
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is the kernel's USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100
