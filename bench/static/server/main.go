// Command server serves a folder with static.Server directly on net/http.
// bench/static/run.sh uses its -baseline mode as the "go-floor" (the same
// bytes from a map on net/http: what a net/http server can do here at
// best); gatehouse itself is measured as the real `gatehouse run`. The
// static.Server mode is for profiling the static handler alone.
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
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/static"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	root := flag.String("root", "", "folder served at /static/")
	tree := flag.String("compress", "", "write precompressed siblings under this folder and exit")
	baseline := flag.Bool("baseline", false, "serve every file from a map in memory with a minimal handler: the net/http ceiling")
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
	if *baseline {
		serveBaseline(*addr, *root)
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

// serveBaseline answers GET /static/NAME from bytes read at start, with the
// same headers static.Server sends but nothing else: no negotiation, no
// conditionals, no cache lookups. The gap between it and nginx is net/http's;
// the gap between it and static.Server is ours.
func serveBaseline(addr, root string) {
	type file struct {
		body                       []byte
		ct, cl, etag, lm, cc, vary []string
		nosniff, ranges, encoding  []string
	}
	files := map[string]*file{}
	for _, name := range []string{"small.css", "jquery.js.br", "big.bin"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			log.Fatal(err)
		}
		f := &file{body: b, cl: []string{strconv.Itoa(len(b))}, etag: []string{`"x"`},
			lm: []string{"Sun, 22 Nov 2026 00:00:00 GMT"}, cc: []string{"public, max-age=3600"},
			vary: []string{"Accept-Encoding"}, nosniff: []string{"nosniff"}, ranges: []string{"bytes"},
			ct: []string{"text/css; charset=utf-8"}}
		if name == "jquery.js.br" {
			f.ct, f.encoding = []string{"text/javascript; charset=utf-8"}, []string{"br"}
			name = "jquery.js"
		}
		files["/static/"+name] = f
	}
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := files[r.URL.Path]
		if f == nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"], h["Content-Length"], h["Etag"], h["Last-Modified"] = f.ct, f.cl, f.etag, f.lm
		h["Cache-Control"], h["Vary"], h["X-Content-Type-Options"], h["Accept-Ranges"] = f.cc, f.vary, f.nosniff, f.ranges
		if f.encoding != nil {
			h["Content-Encoding"] = f.encoding
		}
		w.Write(f.body)
	})))
}
