// Command proxy measures gatehouse's forwarding overhead against nginx's
// proxy_pass, in one run on one machine:
//
//   - the same small response fetched directly from a backend, through
//     gatehouse (app.upstreams), and through nginx (upstream keepalive),
//     once as a minimal proxy_pass and once sending the headers gatehouse
//     sends by default (the same job); wrk, 5 interleaved rounds per
//     target, medians reported, with ratios and CPU per request;
//   - gatehouse's resident memory idle and holding 10,000 idle keep-alive
//     client connections (nginx's too, for scale).
//
// Run from the repository root (needs Debian's nginx-light and wrk):
//
//	go run ./bench/proxy                 # prints a Markdown report
//	go run ./bench/proxy -duration 10s -out bench/results/proxy.md
//
// Everything listens on 127.0.0.1 and is stopped at the end.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/bench/internal/harness"
)

var (
	duration = flag.Duration("duration", 5*time.Second, "length of one wrk run")
	rounds   = flag.Int("rounds", 5, "interleaved rounds per target (the median is reported)")
	conns    = flag.Int("connections", 64, "wrk connections")
	idle     = flag.Int("idle", 10000, "idle keep-alive connections for the memory test")
	out      = flag.String("out", "", "also write the report to this file")
	sweep    = flag.String("sweep", "8,16,32,64,128,256", "connection counts for the latency-under-load plot (empty: none)")
	plot     = flag.String("plot", "bench/results/proxy-latency.png", "where the latency plot goes (needs gnuplot)")
	backend  = flag.String("backend", "", "internal: run as the backend on this address")
)

func main() {
	flag.Parse()
	if *backend != "" {
		runBackend(*backend)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

// runBackend serves a small fixed response, like a tiny JSON API.
func runBackend(addr string) {
	body := []byte(`{"status":"ok","message":"hello from the backend","items":[1,2,3,4,5]}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	if err := harness.Need("wrk", "nginx"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	self, _ := os.Executable()
	gh, err := harness.BuildGatehouse(dir)
	if err != nil {
		return err
	}

	backAddr, ghAddr, ngAddr, ngSameAddr := harness.FreeAddr(), harness.FreeAddr(), harness.FreeAddr(), harness.FreeAddr()
	be, err := harness.Start("backend", []string{self, "-backend", backAddr}, "GOMAXPROCS=1")
	if err != nil {
		return err
	}
	defer be.Stop()

	ghConf := filepath.Join(dir, "gatehouse.yaml")
	_ = os.WriteFile(ghConf, []byte(fmt.Sprintf(`server:
  listen: %q
app:
  upstreams: [%q]
  queue: 4096
log: {level: warn, access: false}
`, ghAddr, backAddr)), 0o600)
	g, err := harness.Start("gatehouse", []string{gh, "run", "-c", ghConf})
	if err != nil {
		return err
	}
	defer g.Stop()

	ngConf := filepath.Join(dir, "nginx.conf")
	_ = os.MkdirAll(filepath.Join(dir, "nginx"), 0o755)
	// What both nginx servers do: a keep-alive proxy_pass with the usual
	// forwarding headers.
	_ = os.WriteFile(filepath.Join(dir, "proxy_common.conf"), []byte(`proxy_pass http://app;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_set_header X-Real-IP $remote_addr;
`), 0o600)
	_ = os.WriteFile(ngConf, []byte(fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx;
  proxy_temp_path %[1]s/nginx;
  # No per-connection request cap on either side (nginx's default is
  # 1000), as gatehouse has none.
  keepalive_requests 10000000;
  upstream app { server %[2]s; keepalive 64; keepalive_requests 10000000; }
  server {
    listen %[3]s;
    location / { include %[1]s/proxy_common.conf; }
  }
  # The same job as gatehouse's defaults: X-Forwarded-Host, a request id
  # to the app and back, X-Request-Start, and the three security headers
  # on responses, as a Django site's nginx is commonly configured.
  server {
    listen %[4]s;
    location / {
      include %[1]s/proxy_common.conf;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Request-Start "t=${msec}";
      add_header X-Request-Id $request_id;
      add_header X-Content-Type-Options nosniff;
      add_header Referrer-Policy strict-origin-when-cross-origin;
      add_header X-Frame-Options SAMEORIGIN;
    }
  }
}
`, dir, backAddr, ngAddr, ngSameAddr)), 0o600)
	ng, err := harness.Start("nginx", []string{"nginx", "-c", ngConf, "-p", dir, "-g", "daemon off;"})
	if err != nil {
		return err
	}
	defer ng.Stop()

	targets := []struct {
		name, url string
		pid       int // the proxy whose CPU is counted; 0 for none
	}{
		{"direct", "http://" + backAddr + "/", 0},
		{"nginx", "http://" + ngAddr + "/", ng.Cmd.Process.Pid},
		{"nginx-same", "http://" + ngSameAddr + "/", ng.Cmd.Process.Pid},
		{"gatehouse", "http://" + ghAddr + "/", g.Cmd.Process.Pid},
	}
	for _, t := range targets {
		if err := harness.WaitHTTP(t.url); err != nil {
			return err
		}
	}

	results := map[string][]wrkResult{}
	for _, t := range targets { // warm-up
		if _, err := runWrk(t.url, time.Second); err != nil {
			return err
		}
	}
	for r := range *rounds {
		for _, t := range targets {
			beCPU, pxCPU := harness.TreeCPU(be.Cmd.Process.Pid), time.Duration(0)
			if t.pid != 0 {
				pxCPU = harness.TreeCPU(t.pid)
			}
			res, err := runWrk(t.url, *duration)
			if err != nil {
				return err
			}
			if res.requests > 0 {
				res.backendCPU = (harness.TreeCPU(be.Cmd.Process.Pid) - beCPU) / time.Duration(res.requests)
				if t.pid != 0 {
					res.proxyCPU = (harness.TreeCPU(t.pid) - pxCPU) / time.Duration(res.requests)
				}
			}
			fmt.Fprintf(os.Stderr, "round %d %-9s %8.0f req/s  p50 %v  p99 %v  CPU/req proxy %v backend %v\n", r+1, t.name, res.rps, res.p50, res.p99, res.proxyCPU, res.backendCPU)
			results[t.name] = append(results[t.name], res)
		}
	}

	ghIdle, _ := harness.RSSKiB(g.Cmd.Process.Pid)
	ngIdle, _ := harness.TreeRSSKiB(ng.Cmd.Process.Pid)
	ghHeld, err := holdIdle(ghAddr, *idle, func() (int, error) { return harness.RSSKiB(g.Cmd.Process.Pid) })
	if err != nil {
		return err
	}
	ngHeld, err := holdIdle(ngAddr, *idle, func() (int, error) { return harness.TreeRSSKiB(ng.Cmd.Process.Pid) })
	if err != nil {
		return err
	}

	report := formatReport(results, ghIdle, ghHeld, ngIdle, ngHeld)
	if *sweep != "" {
		table, err := latencySweep(map[string]string{"nginx": "http://" + ngAddr + "/", "gatehouse": "http://" + ghAddr + "/"}, dir)
		if err != nil {
			return err
		}
		report += table
	}
	fmt.Print(report)
	if *out != "" {
		return os.WriteFile(*out, []byte(report), 0o644)
	}
	return nil
}

type wrkResult struct {
	rps           float64
	p50, p90, p99 time.Duration
	requests      int64
	// CPU time per request of the proxy (gatehouse, or nginx's master and
	// workers) and of the backend, from /proc.
	proxyCPU, backendCPU time.Duration
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reqRe = regexp.MustCompile(`(\d+) requests in`)
	latRe = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)`)
)

func runWrk(url string, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(*conns), "-d"+d.String(), "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	var r wrkResult
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := reqRe.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		return r, fmt.Errorf("wrk saw errors against %s:\n%s", url, out)
	}
	for _, l := range latRe.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(l[3])]
		d := time.Duration(v * float64(unit))
		switch string(l[1]) {
		case "50":
			r.p50 = d
		case "90":
			r.p90 = d
		case "99":
			r.p99 = d
		}
	}
	return r, nil
}

func median(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return wrkResult{
		rps:        pick(func(r wrkResult) float64 { return r.rps }),
		p50:        time.Duration(pick(func(r wrkResult) float64 { return float64(r.p50) })),
		p90:        time.Duration(pick(func(r wrkResult) float64 { return float64(r.p90) })),
		p99:        time.Duration(pick(func(r wrkResult) float64 { return float64(r.p99) })),
		proxyCPU:   time.Duration(pick(func(r wrkResult) float64 { return float64(r.proxyCPU) })),
		backendCPU: time.Duration(pick(func(r wrkResult) float64 { return float64(r.backendCPU) })),
	}
}

// holdIdle opens n connections, sends one keep-alive request on each,
// reads the answer, and measures memory while they sit idle.
func holdIdle(addr string, n int, measure func() (int, error)) (int, error) {
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("opening idle connection %d to %s: %w", i, addr, err)
		}
		cs = append(cs, c)
		if _, err := c.Write(req); err != nil {
			return 0, err
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, fmt.Errorf("idle connection %d: %w", i, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	runtime.GC()
	time.Sleep(2 * time.Second)
	return measure()
}

func formatReport(res map[string][]wrkResult, ghIdle, ghHeld, ngIdle, ngHeld int) string {
	d, n, ns, g := median(res["direct"]), median(res["nginx"]), median(res["nginx-same"]), median(res["gatehouse"])
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Forwarding overhead: gatehouse vs nginx proxy_pass\n\n")
	fmt.Fprintf(&b, "%s, %s, %d CPUs, Go %s; wrk -t2 -c%d, %d rounds of %v, medians; nginx %s with upstream keepalive 64.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.Version(), *conns, *rounds, *duration, harness.NginxVersion())
	fmt.Fprintf(&b, "| target | req/s | p50 | p90 | p99 | added p99 |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		r    wrkResult
	}{{"backend direct", d}, {"nginx", n}, {"nginx, gatehouse's headers", ns}, {"gatehouse", g}} {
		added := "-"
		if row.name != "backend direct" {
			added = ms(row.r.p99 - d.p99)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s |\n", row.name, row.r.rps, ms(row.r.p50), ms(row.r.p90), ms(row.r.p99), added)
	}
	fmt.Fprintf(&b, "\n- throughput gatehouse / nginx: **%.2fx** (target >= 0.9x)\n", g.rps/n.rps)
	fmt.Fprintf(&b, "- in each round (the targets run one after another within a round, so a round's ratio is the least disturbed by other load): %s\n", roundRatios(res["gatehouse"], res["nginx"]))
	fmt.Fprintf(&b, "- added p99 gatehouse / nginx: %s vs %s (target: no worse)\n", ms(g.p99-d.p99), ms(n.p99-d.p99))
	fmt.Fprintf(&b, "- the same against nginx sending what gatehouse sends by default (X-Forwarded-Host, X-Request-Id both ways, X-Request-Start, three security headers): **%.2fx**, added p99 %s vs %s\n", g.rps/ns.rps, ms(g.p99-d.p99), ms(ns.p99-d.p99))
	fmt.Fprintf(&b, "\n| CPU per request (medians) | proxy | backend |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| backend direct | - | %s |\n", us(d.backendCPU))
	fmt.Fprintf(&b, "| nginx | %s | %s |\n", us(n.proxyCPU), us(n.backendCPU))
	fmt.Fprintf(&b, "| nginx, gatehouse's headers | %s | %s |\n", us(ns.proxyCPU), us(ns.backendCPU))
	fmt.Fprintf(&b, "| gatehouse | %s | %s |\n", us(g.proxyCPU), us(g.backendCPU))
	if n.proxyCPU > 0 {
		fmt.Fprintf(&b, "\n- proxy CPU per request gatehouse / nginx: **%.2fx** (lower is better; steadier than req/s when other jobs share the machine)\n", float64(g.proxyCPU)/float64(n.proxyCPU))
	}
	fmt.Fprintf(&b, "\n| memory (RSS) | idle | %d idle keep-alive connections |\n|---|---:|---:|\n", *idle)
	fmt.Fprintf(&b, "| gatehouse | %.1f MiB | %.1f MiB |\n", float64(ghIdle)/1024, float64(ghHeld)/1024)
	fmt.Fprintf(&b, "| nginx (master + workers) | %.1f MiB | %.1f MiB |\n", float64(ngIdle)/1024, float64(ngHeld)/1024)
	fmt.Fprintf(&b, "\nTargets: gatehouse under 30 MiB idle, under 150 MiB with 10,000 connections.\n")
	return b.String()
}

// roundRatios lists a/b's throughput round by round.
func roundRatios(a, b []wrkResult) string {
	var parts []string
	for i := range min(len(a), len(b)) {
		parts = append(parts, fmt.Sprintf("%.2fx", a[i].rps/b[i].rps))
	}
	return strings.Join(parts, " ")
}

// us prints a CPU time in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.1fus", float64(d)/float64(time.Microsecond)) }

// ms prints a latency in milliseconds with two decimals (wrk's own
// precision), without float noise such as 4.059999ms.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// latencySweep runs wrk at rising connection counts against each target
// and plots p50 and p99 latency with gnuplot (when installed).
func latencySweep(targets map[string]string, dir string) (string, error) {
	var counts []int
	for _, f := range strings.Split(*sweep, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return "", fmt.Errorf("-sweep: %q is not a number", f)
		}
		counts = append(counts, n)
	}
	names := []string{"nginx", "gatehouse"}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Latency under rising load (wrk, 3s per point)\n\n| connections | nginx req/s | nginx p50 | nginx p99 | gatehouse req/s | gatehouse p50 | gatehouse p99 |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	var dat strings.Builder
	dat.WriteString("# conns nginx_p50_ms nginx_p99_ms gatehouse_p50_ms gatehouse_p99_ms\n")
	for _, c := range counts {
		row := map[string]wrkResult{}
		for _, n := range names {
			old := *conns
			*conns = c
			r, err := runWrk(targets[n], 3*time.Second)
			*conns = old
			if err != nil {
				return "", err
			}
			row[n] = r
		}
		ng, gh := row["nginx"], row["gatehouse"]
		fmt.Fprintf(&b, "| %d | %.0f | %s | %s | %.0f | %s | %s |\n", c, ng.rps, ms(ng.p50), ms(ng.p99), gh.rps, ms(gh.p50), ms(gh.p99))
		msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		fmt.Fprintf(&dat, "%d %.3f %.3f %.3f %.3f\n", c, msf(ng.p50), msf(ng.p99), msf(gh.p50), msf(gh.p99))
	}
	if _, err := exec.LookPath("gnuplot"); err != nil || *plot == "" {
		b.WriteString("\n(gnuplot not installed: no plot)\n")
		return b.String(), nil
	}
	datFile := filepath.Join(dir, "sweep.dat")
	_ = os.WriteFile(datFile, []byte(dat.String()), 0o644)
	script := fmt.Sprintf(`set terminal pngcairo size 900,500 noenhanced
set output %q
set title "Forwarding a small response: latency under rising load"
set xlabel "concurrent connections (wrk)"
set ylabel "latency (ms)"
set logscale x 2
set key top left
set grid
plot %q using 1:2 with linespoints title "nginx p50", \
     %q using 1:3 with linespoints title "nginx p99", \
     %q using 1:4 with linespoints title "gatehouse p50", \
     %q using 1:5 with linespoints title "gatehouse p99"
`, *plot, datFile, datFile, datFile, datFile)
	cmd := exec.Command("gnuplot")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gnuplot: %w\n%s", err, out)
	}
	fmt.Fprintf(&b, "\n![latency under rising load](%s)\n", filepath.Base(*plot))
	return b.String(), nil
}
