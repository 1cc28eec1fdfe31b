package workers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// The test binary doubles as a fake worker: with GATEHOUSE_FAKE set it runs
// one of the modes below instead of the tests (the helper-process idiom).
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_SUBREAPER") != "" {
		subreaper()
		os.Exit(0)
	}
	if mode := os.Getenv("GATEHOUSE_FAKE"); mode != "" {
		fakeWorker(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeWorker serves HTTP on PORT or GATEHOUSE_SOCKET, misbehaving as mode says:
//
//	http         a well-behaved server
//	crash        exits with status 3 at once
//	never-ready  runs but never listens
//	ignore-term  serves, but ignores SIGTERM
//	grandchild   starts a grandchild (sleep) that would outlive it, then serves
//	crash-after  serves, and exits on GET /crash
func fakeWorker(mode string) {
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "fake worker: crashing on purpose")
		os.Exit(3)
	case "never-ready":
		time.Sleep(time.Hour)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "grandchild":
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("grandchild %d\n", cmd.Process.Pid)
	}
	var ln net.Listener
	var err error
	if port := os.Getenv("PORT"); port != "" {
		ln, err = net.Listen("tcp", "127.0.0.1:"+port)
	} else {
		ln, err = net.Listen("unix", os.Getenv("GATEHOUSE_SOCKET"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("fake worker listening on", ln.Addr())
	http.Serve(ln, fakeHandler())
}

func fakeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Pid", strconv.Itoa(os.Getpid()))
		fmt.Fprintf(w, "%s %s %s %d", r.Method, r.URL.Path, r.Host, len(b))
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		w.Header().Set("X-Pid", strconv.Itoa(os.Getpid()))
		io.WriteString(w, "slept")
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(4)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("FAKE_UNHEALTHY") != "" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	})
	return mux
}

// front is a stand-in for the gatehouse front: it buffers the body (setting
// GetBody as the real front does), stores a reqinfo.Info and forwards
// through the pool with httputil.ReverseProxy.
func front(t *testing.T, p *Pool) *httptest.Server {
	t.Helper()
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host },
		Transport: p,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Error", err.Error())
			w.WriteHeader(statusFor(err))
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
		info := &reqinfo.Info{ID: "t", Start: time.Now(), Host: r.Host}
		// Tests play the front's trusted-proxy resolution with these.
		if c := r.Header.Get("X-Test-Client"); c != "" {
			info.ClientIP = netip.MustParseAddr(c)
			r.Header.Del("X-Test-Client")
		}
		if r.Header.Get("X-Test-TLS") != "" {
			info.TLS = true
			r.Header.Del("X-Test-TLS")
		}
		rp.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		if info.Upstream != "" {
			w.Header().Set("X-Upstream", info.Upstream) // too late for the client; kept for symmetry
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
