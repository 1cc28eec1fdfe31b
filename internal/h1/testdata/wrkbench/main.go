// Command wrkbench serves one side of the h1 comparison in
// internal/h1/testdata/wrkbench/run.sh: a tiny backend, or
// httputil.ReverseProxy in front of it with h1.Transport or
// net/http.Transport. It lives in testdata so that go build ./... skips it.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/h1"
)

func main() {
	mode := flag.String("mode", "backend", "backend, h1 or std")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	backend := flag.String("backend", "", "backend address (proxy modes)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the first 5s to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		time.AfterFunc(6*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
	}

	var h http.Handler
	switch *mode {
	case "backend":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello from the backend\n")
		})
	case "h1", "std":
		target := &url.URL{Scheme: "http", Host: *backend}
		var rt http.RoundTripper
		if *mode == "h1" {
			d := &net.Dialer{Timeout: 5 * time.Second}
			rt = &h1.Transport{
				Dial:    func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", *backend) },
				MaxIdle: 128,
			}
		} else {
			rt = &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
		}
		h = &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
			Transport: rt,
			// As proxy/ does; without it each response allocates 32 KiB.
			BufferPool: &bufferPool{},
		}
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening %s", ln.Addr())
	log.Fatal(http.Serve(ln, h))
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
