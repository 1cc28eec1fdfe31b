// Command server serves a folder with static.Server directly on net/http,
// for the comparison with nginx and Caddy in bench/static/run.sh. It stands
// in for `gatehouse run` until the proxy wires static mounts in: the
// numbers measure the static handler plus net/http, without the front's
// middleware (request id, access log, rate limit).
//
//	server -addr 127.0.0.1:8081 -root DIR           # serves DIR at /static/
//	server -compress DIR                            # writes .br/.zst/.gz siblings
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/static"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	root := flag.String("root", "", "folder served at /static/")
	tree := flag.String("compress", "", "write precompressed siblings under this folder and exit")
	maxMem := flag.Int64("max-in-memory", 0, "static.CacheConfig.MaxFile in bytes (0: default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until SIGTERM")
	flag.Parse()
	if *tree != "" {
		st, err := static.CompressTree(context.Background(), *tree, static.TreeOptions{})
		fmt.Println(st)
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	srv, err := static.New([]static.Config{{URL: "/static/", Root: *root}}, static.Options{Cache: static.CacheConfig{MaxFile: conf.Size(*maxMem)}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	hs := &http.Server{
		Addr: *addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h, ok := srv.Match(r.URL.Path); ok {
				h.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second,
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		hs.Close()
	}()
	if err := hs.ListenAndServe(); err != http.ErrServerClosed {
		log.Print(err)
	}
}
