package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort asks the kernel for a loopback port nobody uses right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestImageConfigServes runs the image's default config the way the
// container does (working directory holding examples/, data/ writable) but
// on loopback ports, and checks what `docker run IMAGE` promises: the
// example page over HTTP and HTTP/2 with TLS, its static files, the Host
// allowlist, the admin /healthz the HEALTHCHECK asks, JSON access logs, and
// a clean exit on SIGTERM.
func TestImageConfigServes(t *testing.T) {
	need(t, "python3", "python3")
	bin := gatehouseBin(t)
	srv := t.TempDir()
	examples, err := filepath.Abs(filepath.Join(repoRoot, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(examples, filepath.Join(srv, "examples")); err != nil {
		t.Fatal(err)
	}
	config, err := filepath.Abs("gatehouse.docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, tlsPort, adminPort := freePort(t), freePort(t), freePort(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gatehouse.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "run")
	cmd.Dir = srv
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"GATEHOUSE_CONFIG=" + config, "GATEHOUSE_HOST=127.0.0.1",
		"PORT=" + httpPort, "TLS_PORT=" + tlsPort, "ADMIN_PORT=" + adminPort,
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process is gone; waitErr is its exit status.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }

	client := &http.Client{Timeout: 5 * time.Second}
	admin := "http://127.0.0.1:" + adminPort
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("gatehouse exited before it was ready: %v\n%s", waitErr, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60s (last: %v)\n%s", err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}

	get := func(c *http.Client, url, host string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v\n%s", url, host, err, logs())
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}

	if resp, _ := get(client, admin+"/healthz", "127.0.0.1"); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
	base := "http://127.0.0.1:" + httpPort
	resp, body := get(client, base+"/", "localhost")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Hello from behind gatehouse") {
		t.Errorf("GET /: %s\n%.300s", resp.Status, body)
	}
	resp, body = get(client, base+"/static/hello.css", "localhost", "Accept-Encoding", "gzip")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") == "" || body == "" {
		t.Errorf("GET /static/hello.css: %s, Cache-Control %q, %d bytes", resp.Status, resp.Header.Get("Cache-Control"), len(body))
	}
	if resp, _ := get(client, base+"/", "evil.example"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %s, want 421 (server.hosts defaults to localhost)", resp.Status)
	}

	// HTTPS with the self-signed certificate kept in data/certs, over HTTP/2.
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: "localhost", InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	resp, body = get(&http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://127.0.0.1:"+tlsPort+"/", "localhost")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !strings.Contains(body, "Hello from behind gatehouse") {
		t.Errorf("HTTPS GET /: %s over %s", resp.Status, resp.Proto)
	}
	if _, err := os.Stat(filepath.Join(srv, "data", "certs")); err != nil {
		t.Errorf("tls.storage (the image's /srv/data/certs volume) not written: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("exit after SIGTERM: %v, want 0\n%s", waitErr, logs())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("still running 40s after SIGTERM (the compose stop_grace_period)\n%s", logs())
	}

	// log.format: json, one request line per request.
	var requests int
	sc := bufio.NewScanner(bytes.NewReader([]byte(logs())))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			// Worker output (the example app's own prints) is not gatehouse's.
			continue
		}
		if line["msg"] == "request" {
			requests++
			for _, k := range []string{"request_id", "client_ip", "status", "route", "duration"} {
				if _, ok := line[k]; !ok {
					t.Errorf("access line lacks %s: %s", k, sc.Text())
				}
			}
		}
	}
	if requests < 4 {
		t.Errorf("%d JSON access lines, want at least 4\n%s", requests, logs())
	}
}
