package h2srv

import (
	"go/build"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestH2spec runs the h2spec conformance suite (github.com/summerwind/h2spec,
// go install'ed) against a server with a small handler; every test must pass.
func TestH2spec(t *testing.T) {
	bin, err := exec.LookPath("h2spec")
	if err != nil {
		// Where scripts/test's go install puts it.
		bin = need(t, filepath.Join(build.Default.GOPATH, "bin", "h2spec"))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("hello h2spec\n", 20)))
	})
	_, addr := startTLS(t, h, nil)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "-k", "-o", "2").CombinedOutput()
	summary := regexp.MustCompile(`\d+ tests, \d+ passed, \d+ skipped, \d+ failed`).Find(out)
	t.Logf("h2spec: %s", summary)
	if err != nil || summary == nil || !strings.Contains(string(summary), " 0 failed") {
		t.Fatalf("h2spec failed (%v):\n%s", err, out)
	}
}
