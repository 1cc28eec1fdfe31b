package h1srv

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A connection that was just busy reads its next head under the lazy
// bound (the sweeper's clock), not a socket deadline: a head that stalls
// there still gets 408 in about ReadHeaderTimeout.
func TestHeaderTimeoutOnBusyConnection(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 10 * time.Second, Handler: echo()})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponses(t, br, "GET", 1)
	io.WriteString(c, "GET /two HTTP/1.1\r\nHost: h\r\n") // at once, never finished
	begin := time.Now()
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled head: %v %v", res, err)
	}
	// The lazy bound may fire up to a slow tick (tickIdle) early.
	if d := time.Since(begin); d < 300*time.Millisecond-tickIdle-50*time.Millisecond || d > 3*time.Second {
		t.Errorf("408 after %v, want about 300ms", d)
	}
}

// A slow upload on a busy connection is not cut by the header timeout:
// the bound ends with the head.
func TestSlowBodyOutlivesHeaderTimeout(t *testing.T) {
	t.Parallel()
	addr := start(t, &Server{ReadHeaderTimeout: 100 * time.Millisecond, Handler: echo()})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponses(t, br, "GET", 1)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nab")
	time.Sleep(400 * time.Millisecond)
	io.WriteString(c, "cdef")
	res := readResponses(t, br, "POST", 1)[0]
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || !strings.Contains(string(b), "body=abcdef") {
		t.Fatalf("slow body: %d %s", res.StatusCode, b)
	}
}

// A kick that raced with the connection moving on (the sweeper saw an
// expired bound just replaced) is undone: the body read goes on.
func TestSpuriousKickIsRetried(t *testing.T) {
	t.Parallel()
	s := &Server{}
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := w.(*response).c
		c.kicked.Store(true)
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("body read after a spurious kick: %v", err)
		}
		w.Write(b)
	})
	addr := start(t, s)
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "hello")
	res := readResponses(t, bufio.NewReader(c), "POST", 1)[0]
	if b, _ := io.ReadAll(res.Body); string(b) != "hello" {
		t.Fatalf("body %q", b)
	}
}

// SendTimeout cuts a client that stops reading; writes that go through
// keep the connection.
func TestSendTimeout(t *testing.T) {
	t.Parallel()
	failed := make(chan time.Time, 1)
	addr := start(t, &Server{SendTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "ok")
			return
		}
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				failed <- time.Now()
				return
			}
		}
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for range 3 {
		io.WriteString(c, "GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponses(t, br, "GET", 1)
		time.Sleep(150 * time.Millisecond) // between writes, not during one
	}
	begin := time.Now()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
	select {
	case at := <-failed:
		if d := at.Sub(begin); d > 3*time.Second {
			t.Errorf("write failed after %v, want about 200ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's writes never failed")
	}
}

// With HandleRejects, a refused request reaches the handler as a stand-in
// that Rejection recognises, and the connection closes after its answer;
// ordinary requests are not taken for stand-ins.
func TestHandleRejects(t *testing.T) {
	t.Parallel()
	s := &Server{HandleRejects: true, MaxURIBytes: 64, MaxHeaderBytes: 1024}
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, reason, ok := Rejection(r); ok {
			w.WriteHeader(status)
			io.WriteString(w, "refused: "+reason)
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})
	addr := start(t, s)
	for _, tc := range []struct {
		raw, want string
		status    int
	}{
		{"GET /a HTTP/1.1\r\nHost: h\r\n bad: fold\r\n\r\n", "refused: obs_fold", 400},
		{"GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\nHost: h\r\n\r\n", "refused: uri_too_long", 414},
		{"GET /a HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("b", 2000) + "\r\n\r\n", "refused: header_too_large", 431},
		{"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "refused: content_length_with_transfer_encoding", 400},
		{"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n", "ok /ok", 200},
	} {
		c := dial(t, addr)
		io.WriteString(c, tc.raw)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.raw[:20], err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.status || string(b) != tc.want {
			t.Errorf("%q: %d %q, want %d %q", tc.raw[:20], res.StatusCode, b, tc.status, tc.want)
		}
		if tc.status != 200 && !res.Close {
			t.Errorf("%q: connection kept open after a refusal", tc.raw[:20])
		}
	}
}
