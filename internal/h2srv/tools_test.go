package h2srv

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var body100 = bytes.Repeat([]byte("x"), 100)

func static100(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(body100)
}

// TestH2load drives the server with nghttp2's h2load (bounded: 20,000
// requests over 32 connections, 10 streams each) and requires every
// request to succeed.
func TestH2load(t *testing.T) {
	bin := need(t, "/usr/bin/h2load")
	_, addr := startTLS(t, http.HandlerFunc(static100), nil)
	out, err := exec.Command(bin, "-n", "20000", "-c", "32", "-m", "10", "-t", "1", "https://"+addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "20000 succeeded, 0 failed, 0 errored") || !strings.Contains(string(out), "status codes: 20000 2xx") {
		t.Fatalf("h2load saw failures:\n%s", out)
	}
	t.Logf("h2load: %s", regexp.MustCompile(`finished in .*`).Find(out))
}

// TestCurl fetches with curl --http2 over TLS and checks the answer.
func TestCurl(t *testing.T) {
	bin := need(t, "/usr/bin/curl")
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		_, _ = w.Write([]byte("hello " + r.Host + "\n"))
	}), nil)
	out, err := exec.Command(bin, "-sk", "--http2", "-i", "-d", "a=b", "https://"+addr+"/x?y=1").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"HTTP/2 200", "x-proto: HTTP/2.0", "content-length: ", "date: ", "hello " + addr} {
		if !strings.Contains(s, want) {
			t.Errorf("curl output lacks %q:\n%s", want, s)
		}
	}
}

// TestH2loadUploads: 500 uploads of 300 kB each over 8 connections, 20
// streams each, every body read whole by the handler (flow control under
// load, WINDOW_UPDATEs as the handlers read).
func TestH2loadUploads(t *testing.T) {
	bin := need(t, "/usr/bin/h2load")
	body := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(body, bytes.Repeat([]byte("0123456789"), 30_000), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, err := io.Copy(io.Discard, r.Body); err != nil || n != 300_000 {
			w.WriteHeader(500)
		}
	}), nil)
	out, err := exec.Command(bin, "-n", "500", "-c", "8", "-m", "20", "-t", "1", "-d", body, "https://"+addr+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "500 succeeded, 0 failed") || !strings.Contains(string(out), "status codes: 500 2xx") {
		t.Fatalf("h2load (%v):\n%s", err, out)
	}
}
