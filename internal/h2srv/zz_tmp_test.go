package h2srv

import (
	"net/http"
	"os/exec"
	"regexp"
	"testing"
)

func TestTmpProfile(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(static100), func(s *Server) { s.ErrorLog = discardLog })
	out, _ := exec.Command("h2load", "-n", "300000", "-c", "32", "-m", "10", "-t", "1", "https://"+addr+"/").CombinedOutput()
	t.Logf("%s", regexp.MustCompile(`finished in .*`).Find(out))
}
