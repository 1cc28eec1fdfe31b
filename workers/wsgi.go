package workers

import (
	_ "embed"
	"net/http"
)

//go:embed gatehouse_wsgi.py
var shimSource []byte

func newWSGITransport(path string, threads int) *http.Transport {
	return newTransport("unix", path, threads)
}
