// Command server serves "ok" behind ratelimit.Limiter's Wrap, for
// bench/ratelimit/run.sh to compare with nginx's limit_req. It stands in
// for gatehouse until the front is wired: the client IP comes from
// r.RemoteAddr (no reqinfo), as Wrap does outside the front.
package main

import (
	"flag"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/ratelimit"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address")
	rate := flag.Float64("rate", 0, "requests per second per IP; 0 serves without the limiter")
	burst := flag.Int("burst", 1, "bucket size")
	headers := flag.String("headers", "always", "always | limited | never")
	flag.Parse()

	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	if *rate > 0 {
		cfg := ratelimit.Config{
			IP:      ratelimit.Limit{Rate: conf.Rate{N: *rate, Per: time.Second}, Burst: *burst},
			Headers: *headers,
		}
		cfg.Defaults()
		if err := cfg.Validate(); err != nil {
			log.Fatal(err)
		}
		lim, err := ratelimit.New(cfg, ratelimit.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			log.Fatal(err)
		}
		defer lim.Close()
		h = lim.Wrap(h)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
