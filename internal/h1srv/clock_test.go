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
	if d := time.Since(begin); d < 250*time.Millisecond || d > 3*time.Second {
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
