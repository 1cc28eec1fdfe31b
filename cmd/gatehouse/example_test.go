package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run config.example.yaml as the README's ./scripts/example
// does: the Django project in examples/django through app.wsgi, its static
// files, self-signed HTTPS. They need Debian's python3-django (and
// chromium for the browser test), which scripts/test installs.

// needProgram skips (or, in CI, fails) a test whose program is missing.
func needProgram(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, debianPackage)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, debianPackage)
	}
}

// needDjango skips (or fails in CI) when Debian's Python cannot import
// Django: the example's app.python is /usr/bin/python3.
func needDjango(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import django").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/usr/bin/python3 cannot import django (apt-get install python3-django): %v", err)
		}
		t.Skipf("/usr/bin/python3 cannot import django (apt-get install python3-django): %v", err)
	}
}

// example is config.example.yaml running as its own process.
type example struct {
	http, https, admin string // 127.0.0.1:port
	logs               *syncBuffer
}

func startExample(t *testing.T) *example {
	t.Helper()
	needDjango(t)
	port, tlsPort, admin := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(binary, "run", "-c", "config.example.yaml")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), fmt.Sprintf("TLS_PORT=%d", tlsPort), fmt.Sprintf("ADMIN_PORT=%d", admin))
	ex := &example{
		http:  fmt.Sprintf("127.0.0.1:%d", port),
		https: fmt.Sprintf("127.0.0.1:%d", tlsPort),
		admin: fmt.Sprintf("127.0.0.1:%d", admin),
		logs:  &syncBuffer{},
	}
	cmd.Stdout, cmd.Stderr = ex.logs, ex.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gatehouse log:\n%s", ex.logs.String())
		}
	})
	waitListening(t, ex.http)
	// Ready means the Django workers have booted (readiness handshake).
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + ex.admin + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return ex
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example's workers were not ready within 60s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestExampleRuns fetches the Django page, a hashed static file and a media
// file from the running example, over HTTP and HTTPS.
func TestExampleRuns(t *testing.T) {
	ex := startExample(t)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // self-signed by design
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	get := func(url string) (*http.Response, string) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, string(body)
	}

	res, page := get("https://localhost:" + port(ex.https) + "/")
	if res.StatusCode != 200 || res.Proto != "HTTP/2.0" || !strings.Contains(page, "gatehouse + Django") {
		t.Fatalf("https page: %s %s\n%s", res.Proto, res.Status, page)
	}
	if !strings.Contains(page, "<code>True</code>") {
		t.Errorf("Django does not see the request as secure over HTTPS:\n%s", page)
	}
	css := regexp.MustCompile(`/static/demo/app\.[0-9a-f]{12}\.css`).FindString(page)
	if css == "" {
		t.Fatalf("page links no hashed stylesheet:\n%s", page)
	}
	res, _ = get("http://" + ex.http + css)
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("GET %s: %s, Cache-Control %q", css, res.Status, res.Header.Get("Cache-Control"))
	}
	res, body := get("http://" + ex.http + "/media/welcome.txt")
	if res.StatusCode != 200 || !strings.Contains(body, "A media file") || strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("media file: %s, Cache-Control %q", res.Status, res.Header.Get("Cache-Control"))
	}
	res, body = get("http://" + ex.http + "/api/notes")
	if res.StatusCode != 200 || !strings.Contains(body, `"notes"`) || res.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("JSON view: %s, RateLimit-Policy %q: %s", res.Status, res.Header.Get("RateLimit-Policy"), body)
	}
}

// TestExampleInBrowser loads the example's page over HTTPS in headless
// Chromium, as a newcomer would, and reads back what the page's own script
// found (examples/django/demo/static/demo/app.js writes it as data-
// attributes on <html>): the script ran, the stylesheet applied, and the
// page, its CSS and its JS each came compressed, over HTTP/2.
func TestExampleInBrowser(t *testing.T) {
	needProgram(t, "chromium", "chromium")
	ex := startExample(t)
	url := "https://localhost:" + port(ex.https) + "/"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The flags keep Chromium off the network it cannot reach here
	// (background services) and away from the user's profile.
	cmd := exec.CommandContext(ctx, "chromium",
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--ignore-certificate-errors", // the example's certificate is self-signed
		"--virtual-time-budget=10000", // let the load event and app.js run before the dump
		"--dump-dom", url)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := string(out)
	attr := func(name string) string {
		m := regexp.MustCompile(`<html[^>]*\s` + name + `="([^"]*)"`).FindStringSubmatch(dom)
		if m == nil {
			return ""
		}
		return m[1]
	}
	if attr("data-report") != "done" || attr("data-js") != "on" {
		t.Fatalf("the page's script did not run:\n%s\nchromium: %s", dom, stderr.String())
	}
	if got := attr("data-css"); got != "applied" {
		t.Errorf("stylesheet: %q, want applied", got)
	}
	for _, k := range []string{"html", "css", "js"} {
		wire, _ := strconv.Atoi(attr("data-" + k + "-wire"))
		size, _ := strconv.Atoi(attr("data-" + k + "-size"))
		proto := attr("data-" + k + "-protocol")
		t.Logf("%s: %d bytes, %d on the wire, %s", k, size, wire, proto)
		if size == 0 || wire == 0 || wire >= size {
			t.Errorf("%s came uncompressed: %d bytes on the wire for %d", k, wire, size)
		}
		if proto != "h2" {
			t.Errorf("%s came over %q, want h2", k, proto)
		}
	}
	if !strings.Contains(dom, "gatehouse + Django") {
		t.Errorf("page content missing:\n%s", dom)
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
