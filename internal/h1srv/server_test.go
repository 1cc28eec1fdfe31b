package h1srv

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start serves h on a loopback listener and returns its address.
func start(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// exchange writes raw and reads responses until the server closes or n
// responses arrived.
func readResponses(t *testing.T, br *bufio.Reader, method string, n int) []*http.Response {
	t.Helper()
	var out []*http.Response
	for range n {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", len(out)+1, err)
		}
		res.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, res)
	}
	return out
}

func bodyOf(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "body error: %v", err)
			return
		}
		fmt.Fprintf(w, "%s %s %s host=%s len=%d body=%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.ContentLength, b)
	})
}

func TestNetHTTPClient(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: echo()})
	for i := range 3 {
		res, err := http.Post("http://"+addr+"/p/a?x=1", "text/plain", strings.NewReader(fmt.Sprint("hello", i)))
		if err != nil {
			t.Fatal(err)
		}
		got := bodyOf(res)
		res.Body.Close()
		want := fmt.Sprintf("POST /p/a x=1 host=%s len=6 body=hello%d", addr, i)
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("sniffed Content-Type %q", ct)
		}
		if res.Header.Get("Date") == "" || res.ContentLength != int64(len(want)) {
			t.Errorf("Date %q, Content-Length %d", res.Header.Get("Date"), res.ContentLength)
		}
	}
}

func TestPipelining(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: echo()})
	c := dial(t, addr)
	var reqs strings.Builder
	for i := range 20 {
		fmt.Fprintf(&reqs, "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i)
		if i == 10 {
			reqs.WriteString("POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
			reqs.WriteString("POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1;ext=1\r\nz\r\n0\r\n\r\n")
		}
	}
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	res := readResponses(t, bufio.NewReader(c), "GET", 22)
	j := 0
	for i := range 20 {
		if got, want := bodyOf(res[j]), fmt.Sprintf("GET /%d  host=h len=0 body=", i); got != want {
			t.Errorf("response %d: %q, want %q", j, got, want)
		}
		j++
		if i == 10 {
			if got := bodyOf(res[j]); got != "POST /post  host=h len=3 body=abc" {
				t.Errorf("post: %q", got)
			}
			if got := bodyOf(res[j+1]); got != "POST /chunked  host=h len=-1 body=xyz" {
				t.Errorf("chunked: %q", got)
			}
			j += 2
		}
	}
}

func TestChunkedResponseAndTrailers(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 10000)
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, big)
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})})
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != big || len(res.TransferEncoding) != 1 {
		t.Errorf("body %d bytes, TransferEncoding %v", len(b), res.TransferEncoding)
	}
	if res.Trailer.Get("X-Sum") != "42" || res.Trailer.Get("X-Late") != "yes" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

func TestRequestTrailers(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Trailer
	})})
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: v\r\n\r\n")
	readResponses(t, bufio.NewReader(c), "POST", 1)
	if tr := <-got; tr.Get("X-T") != "v" {
		t.Errorf("trailer %v", tr)
	}
}

func TestFlushStreams(t *testing.T) {
	t.Parallel()
	step := make(chan struct{})
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-step
		io.WriteString(w, "second\n")
	})})
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if line != "first\n" || err != nil {
		t.Fatalf("first line %q %v", line, err)
	}
	close(step)
	line, _ = br.ReadString('\n')
	if line != "second\n" {
		t.Errorf("second line %q", line)
	}
}

func TestHEADAndNoBodyStatuses(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			io.WriteString(w, "hello")
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /304 HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	head := readResponses(t, br, "HEAD", 1)[0]
	if head.ContentLength != 5 || bodyOf(head) != "" {
		t.Errorf("HEAD: length %d", head.ContentLength)
	}
	rest := readResponses(t, br, "GET", 3)
	if rest[0].StatusCode != 204 || rest[1].StatusCode != 304 || bodyOf(rest[2]) != "hello" {
		t.Errorf("statuses %d %d, body %q", rest[0].StatusCode, rest[1].StatusCode, bodyOf(rest[2]))
	}
}

func TestKeepAliveAndClose(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "ok")
	})})
	for _, tc := range []struct {
		req       string
		wantClose bool
		wantConn  string
	}{
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", true, ""},
		{"GET / HTTP/1.0\r\n\r\n", true, ""},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, "keep-alive"},
		{"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, ""},
	} {
		c := dial(t, addr)
		io.WriteString(c, tc.req)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Errorf("%q: %v", tc.req, err)
			continue
		}
		if res.Close != tc.wantClose {
			t.Errorf("%q: response Close %v", tc.req, res.Close)
		}
		if got := res.Header.Get("Connection"); got != tc.wantConn {
			t.Errorf("%q: Connection %q, want %q", tc.req, got, tc.wantConn)
		}
		if bodyOf(res) != "ok" {
			t.Errorf("%q: body", tc.req)
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = br.ReadByte()
		closed := err == io.EOF
		if closed != tc.wantClose {
			t.Errorf("%q: closed %v (%v), want %v", tc.req, closed, err, tc.wantClose)
		}
	}
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, want 100 Continue", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "data")
	if res := readResponses(t, br, "PUT", 1)[0]; bodyOf(res) != "data" {
		t.Errorf("echo %q", bodyOf(res))
	}
	// Refused without reading: no 100, and the connection closes.
	io.WriteString(c, "PUT /refuse HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	res := readResponses(t, br, "PUT", 1)[0]
	if res.StatusCode != 413 {
		t.Errorf("status %d", res.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed: %v", err)
	}
}

func TestUnreadBodyDrained(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{MaxDrainBytes: 100, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	res := readResponses(t, br, "GET", 2)
	if bodyOf(res[0]) != "/a" || bodyOf(res[1]) != "/b" {
		t.Errorf("bodies %q %q", bodyOf(res[0]), bodyOf(res[1]))
	}
	// Longer than MaxDrainBytes: answered, then closed.
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
	res = readResponses(t, br, "GET", 1)
	if bodyOf(res[0]) != "/c" || !res[0].Close {
		t.Errorf("body %q, Close %v", bodyOf(res[0]), res[0].Close)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	addr := start(t, &Server{MaxHeaderBytes: 1024, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	})})
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET / HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"GET / FTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
		{"GET /" + strings.Repeat("a", 2000), 431},
	} {
		c := dial(t, addr)
		io.WriteString(c, tc.req)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("%.40q: %v", tc.req, err)
			continue
		}
		if res.StatusCode != tc.status {
			t.Errorf("%.40q: status %d, want %d", tc.req, res.StatusCode, tc.status)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("handler reached %d times", n)
	}
}

func TestBadChunkedBody(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errs <- err
		w.WriteHeader(400)
	})})
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n")
	readResponses(t, bufio.NewReader(c), "POST", 1)
	if err := <-errs; err != ErrBodyFraming {
		t.Errorf("body error %v, want ErrBodyFraming", err)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, Handler: echo()})
	// A head that never ends: 408 and close.
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n")
	begin := time.Now()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow head: %v %v", res, err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// An idle keep-alive connection is closed after IdleTimeout.
	c = dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	readResponses(t, br, "GET", 1)
	begin = time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle read: %v", err)
	}
	if d := time.Since(begin); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle close after %v, want about 300ms", d)
	}
}

func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{WriteTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(time.Second) // do not read: the server's writes block and time out
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Errorf("after %d bytes: %v (want the server to close)", n, err)
	}
}

func TestHijack(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	})})
	c := dial(t, addr)
	// The first tunnel line arrives with the request head.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("%v %v", res, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo early\n" {
		t.Errorf("got %q", line)
	}
	io.WriteString(c, "late\n")
	if line, _ := br.ReadString('\n'); line != "echo late\n" {
		t.Errorf("got %q", line)
	}
}

func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "done")
	})}
	addr := start(t, s)
	idle := dial(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	readResponses(t, idleBR, "GET", 1)

	busy := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(ctx) }()
	// The idle connection closes at once.
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle conn: %v", err)
	}
	res := readResponses(t, bufio.NewReader(busy), "GET", 1)[0]
	if bodyOf(res) != "done" || !res.Close {
		t.Errorf("in-flight: %q, Close %v", bodyOf(res), res.Close)
	}
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /abort HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	if res := readResponses(t, br, "GET", 1)[0]; bodyOf(res) != "ok" {
		t.Errorf("first response %q", bodyOf(res))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after abort: %v", err)
	}
	// The server lives on.
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}

func TestContextCanceledWhenClientLeaves(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{})
	addr := start(t, &Server{CloseCheckDelay: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(5 * time.Second):
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case <-canceled:
	case <-time.After(3 * time.Second):
		t.Fatal("context not canceled after the client left")
	}
}

// TestNoWatchForShortHandlers: a handler shorter than CloseCheckDelay
// never gets a close watch, wherever the sweeper's tick falls in it.
func TestNoWatchForShortHandlers(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Millisecond)
	})}
	addr := start(t, s)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	const n = 100
	for range n {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponses(t, br, "GET", 1)
	}
	// Without the extra tick about a third of them (3 ms of every 10 ms
	// tick) were watched.
	if got := s.watches.Load(); got != 0 {
		t.Errorf("%d of %d requests of 3 ms got a close watch (CloseCheckDelay 10ms)", got, n)
	}
}

func TestRequestFields(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	addr := start(t, &Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, ctxKey{}, "conn") },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(context.WithValue(r.Context(), ctxKey{}, r.Context().Value(ctxKey{})))
			got <- r2
		}),
	})
	c := dial(t, addr)
	io.WriteString(c, "GET /a%20b/c?q=%41 HTTP/1.1\r\nhost: example.com\r\nx-multi: 1\r\nX-Multi: 2\r\nuser-agent: t\r\n\r\n")
	readResponses(t, bufio.NewReader(c), "GET", 1)
	r := <-got
	if r.Host != "example.com" || r.URL.Path != "/a b/c" || r.URL.RawQuery != "q=%41" || r.RequestURI != "/a%20b/c?q=%41" {
		t.Errorf("host %q path %q query %q uri %q", r.Host, r.URL.Path, r.URL.RawQuery, r.RequestURI)
	}
	if v := r.Header.Values("X-Multi"); len(v) != 2 || r.UserAgent() != "t" || r.Header.Get("Host") != "" {
		t.Errorf("header %v", r.Header)
	}
	if r.RemoteAddr != c.LocalAddr().String() {
		t.Errorf("RemoteAddr %q", r.RemoteAddr)
	}
	if r.Context().Value(ctxKey{}) != "conn" {
		t.Error("ConnContext value missing")
	}
}

type ctxKey struct{}

func TestLargeWrites(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789", 10000)
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		io.WriteString(w, big[:10])
		io.WriteString(w, big[10:])
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET /length HTTP/1.1\r\nHost: h\r\n\r\nGET /chunked HTTP/1.1\r\nHost: h\r\n\r\n")
	res := readResponses(t, bufio.NewReader(c), "GET", 2)
	for i, r := range res {
		if got := bodyOf(r); got != big {
			t.Errorf("response %d: %d bytes, want %d", i, len(got), len(big))
		}
	}
	if res[0].ContentLength != int64(len(big)) || len(res[1].TransferEncoding) != 1 {
		t.Errorf("framing: %d, %v", res[0].ContentLength, res[1].TransferEncoding)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cert, err := tls.X509KeyPair(localhostCert, localhostKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{IdleTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			t.Error("Request.TLS not set")
		}
		io.WriteString(w, "secure")
	})}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 {
		if i == 1 {
			// Past the hand-over to a fresh goroutine, which on TLS
			// times out of a read rather than a readiness wait.
			time.Sleep(3 * handoffAfter)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if res := readResponses(t, br, "GET", 1)[0]; bodyOf(res) != "secure" {
			t.Errorf("request %d: %q", i, bodyOf(res))
		}
	}
}

// localhostCert is a self-signed certificate for 127.0.0.1 and
// localhost, made at test start.
var localhostCert, localhostKey = func() ([]byte, []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}()

// A request a client pipelines while the previous one's handler runs
// comes after the socket was read, so the wait that starts with the
// response (see flushWait) does not see it; the handoffAfter bound ends
// that wait and the request is served, late by that bound at most.
func TestPipelinedDuringHandler(t *testing.T) {
	t.Parallel()
	running := make(chan struct{}, 1)
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			running <- struct{}{}
			time.Sleep(50 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for round := range 5 {
		// A plain request first: the connection is busy, not fresh.
		io.WriteString(c, "GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponses(t, br, "GET", 1)
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
		<-running
		io.WriteString(c, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		start := time.Now()
		res := readResponses(t, br, "GET", 2)
		if bodyOf(res[0]) != "/slow" || bodyOf(res[1]) != "/next" {
			t.Fatalf("round %d: got %q, %q", round, bodyOf(res[0]), bodyOf(res[1]))
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("round %d: the pipelined request took %s", round, d)
		}
	}
}

// A body sent in pieces, some by Write and some by ReadFrom from files
// (sendfile after the head is out too), arrives whole; the next request on
// the connection is unaffected.
func TestReadFromAfterWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := strings.Repeat("a", 100000), strings.Repeat("b", 50000)
	for name, data := range map[string]string{"a": a, "b": b} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", fmt.Sprint(5+len(a)+len(b)))
		io.WriteString(w, "head:")
		for _, name := range []string{"a", "b"} {
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				panic(err)
			}
			if _, err := w.(io.ReaderFrom).ReadFrom(f); err != nil {
				t.Errorf("ReadFrom %s: %v", name, err)
			}
			f.Close()
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
	for i, res := range readResponses(t, bufio.NewReader(c), "GET", 2) {
		if got := bodyOf(res); got != "head:"+a+b {
			t.Errorf("response %d: %d bytes, want %d", i, len(got), 5+len(a)+len(b))
		}
	}
}

// The sweeper's kick (a past read deadline) can land just as a connection
// moves on to answer its request (clock.go's spurious). The response must
// still go out: the fused send's wait fails before it writes anything.
func TestKickRacingTheResponse(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
		if r.URL.Path == "/kicked" {
			// What expire does, as if its sweep had raced with this
			// request: kicked first, then the past deadline.
			c := w.(*response).c
			c.kicked.Store(true)
			_ = c.nc.SetReadDeadline(aLongTimeAgo)
		}
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for _, path := range []string{"/warm", "/kicked", "/after", "/kicked", "/kicked", "/after"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
		res := readResponses(t, br, "GET", 1)
		if got := bodyOf(res[0]); got != path {
			t.Fatalf("got %q, want %q", got, path)
		}
	}
}
