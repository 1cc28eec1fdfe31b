// Command pooldriver serves an app through a workers.Pool behind
// httputil.ReverseProxy: the worker half of gatehouse on its own, for the
// benchmark in bench/workers when `gatehouse run` is not wanted (it skips
// the front's middleware: rate limits, compression, access log).
//
//	pooldriver -listen 127.0.0.1:8090 -wsgi mysite.wsgi:application -chdir examples/django -workers 4
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/backend"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
	"github.com/gatehouse/gatehouse/workers"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve on")
	wsgi := flag.String("wsgi", "mysite.wsgi:application", "app.wsgi")
	chdir := flag.String("chdir", "examples/django", "app.chdir")
	python := flag.String("python", "/usr/bin/python3", "app.python")
	nworkers := flag.Int("workers", 4, "app.workers")
	threads := flag.Int("threads", 1, "app.threads")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	cfg := workers.Config{WSGI: *wsgi, Chdir: *chdir, Python: *python, Workers: *nworkers, Threads: *threads}
	pool, err := workers.New(cfg, workers.Options{Logger: log})
	if err != nil {
		log.Error("pool", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	pool.Start(ctx)

	var ids atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host },
		Transport:  pool,
		BufferPool: bufPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			switch {
			case errorsIs(err, backend.ErrQueueFull, backend.ErrQueueTimeout, backend.ErrClosed):
				code = http.StatusServiceUnavailable
			case errorsIs(err, backend.ErrTimeout):
				code = http.StatusGatewayTimeout
			}
			if !errors.Is(err, context.Canceled) { // a client gone (wrk stopping) is no news
				log.Warn("proxy error", "error", err)
			}
			w.WriteHeader(code)
		},
	}
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := &reqinfo.Info{ID: strconv.FormatUint(ids.Add(1), 36), Start: time.Now(), Host: strings.ToLower(r.Host)}
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
				info.Peer, info.ClientIP = ap, ap.Addr()
			}
			rp.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		}),
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "error", err)
		os.Exit(1)
	}
	go srv.Serve(ln)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	pool.Close(sctx)
}

func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// bufPool reuses ReverseProxy's copy buffers (it allocates 32 KiB per
// response without one).
type bufPool struct{}

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufPool) Get() []byte  { return *bufs.Get().(*[]byte) }
func (bufPool) Put(b []byte) { bufs.Put(&b) }
