package h2srv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestRequestFields(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s q=%s tls=%v host=%s ua=%s cl=%d remote=%v",
			r.Method, r.Proto, r.URL.Path, r.RequestURI, r.URL.Query().Get("q"), r.TLS != nil && r.TLS.HandshakeComplete,
			r.Host, r.Header.Get("User-Agent"), r.ContentLength, r.RemoteAddr != "")
	}), nil)
	req, _ := http.NewRequest("GET", "https://"+addr+"/a/b?q=1", nil)
	req.Header.Set("User-Agent", "test-agent")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "GET HTTP/2.0 /a/b /a/b?q=1 q=1 tls=true host=" + addr + " ua=test-agent cl=0 remote=true"
	if string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("proto = %s", resp.Proto)
	}
	if got := resp.Header.Get("Content-Length"); got != fmt.Sprint(len(want)) {
		t.Errorf("Content-Length = %q", got)
	}
	if resp.Header.Get("Date") == "" {
		t.Error("no Date")
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("sniffed Content-Type = %q", got)
	}
}

// TestLargeBodies sends and receives bodies far beyond the initial flow-
// control windows, on several streams at once.
func TestLargeBodies(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Sum", fmt.Sprintf("%x %d", h.Sum(nil), n))
		// Answer with 3 MiB in odd-sized writes.
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 777)
		for sent := 0; sent < 3<<20; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}), nil)
	c := client(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			payload := bytes.Repeat([]byte{byte('a' + i)}, 3<<20+i)
			resp, err := c.Post("https://"+addr+"/", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				t.Error(err)
			}
			sum := sha256.Sum256(payload)
			if want := fmt.Sprintf("%x %d", sum, len(payload)); resp.Header.Get("X-Sum") != want {
				t.Errorf("X-Sum = %q, want %q", resp.Header.Get("X-Sum"), want)
			}
			if want := int64((3<<20+16*777-1)/(16*777)) * 16 * 777; n != want {
				t.Errorf("got %d response bytes, want %d", n, want)
			}
		})
	}
	wg.Wait()
}

func TestTrailers(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Declared")
		w.Header().Set("X-Got", r.Trailer.Get("X-Req-Trailer"))
		w.WriteHeader(200)
		_, _ = w.Write([]byte("body"))
		w.Header().Set("X-Declared", "d")
		w.Header().Set(http.TrailerPrefix+"X-Late", "l")
	}), nil)
	req, _ := http.NewRequest("POST", "https://"+addr+"/", io.NopCloser(strings.NewReader("some body")))
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.ContentLength = -1
	go func() {}()
	req.Trailer.Set("X-Req-Trailer", "rt")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Got"); got != "rt" {
		t.Errorf("request trailer seen by handler = %q", got)
	}
	if got := resp.Trailer.Get("X-Declared"); got != "d" {
		t.Errorf("declared trailer = %q", got)
	}
	if got := resp.Trailer.Get("X-Late"); got != "l" {
		t.Errorf("TrailerPrefix trailer = %q", got)
	}
}

// TestFlush: each event of a server-sent stream arrives while the handler
// is still running.
func TestFlush(t *testing.T) {
	next := make(chan struct{})
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}), nil)
	resp, err := client(t).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	for i := range 3 {
		want := fmt.Sprintf("data: %d\n\n", i)
		if _, err := io.ReadFull(resp.Body, buf[:len(want)]); err != nil || string(buf[:len(want)]) != want {
			t.Fatalf("event %d: %q, %v", i, buf[:len(want)], err)
		}
		next <- struct{}{}
	}
}

func TestContextCanceledOnReset(t *testing.T) {
	h, started, canceled := waitForCancel()
	_, addr := startTLS(t, h, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
	go func() { <-started; cancel() }()
	_, _ = client(t).Do(req)
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context: %v", err)
	}
}

func TestNoBodyResponses(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(304)
			if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
				t.Errorf("Write after 304: %v", err)
			}
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = w.Write([]byte("hello"))
		}
	}), nil)
	c := client(t)
	for _, tc := range []struct{ method, path, cl string }{{"GET", "/204", ""}, {"GET", "/304", "100"}, {"HEAD", "/", "5"}} {
		req, _ := http.NewRequest(tc.method, "https://"+addr+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != 0 || resp.Header.Get("Content-Length") != tc.cl {
			t.Errorf("%s %s: body %q, Content-Length %q", tc.method, tc.path, b, resp.Header.Get("Content-Length"))
		}
	}
}

func TestEarlyHints(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = w.Write([]byte("ok"))
	}), nil)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://"+addr+"/", nil)
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" || resp.StatusCode != 200 || resp.Header.Get("Link") != "" {
		t.Fatalf("hints %q, final %d %q", hints, resp.StatusCode, resp.Header.Get("Link"))
	}
}

func TestPanicResetsStream(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write([]byte("fine"))
	}), nil)
	c := client(t)
	if _, err := c.Get("https://" + addr + "/panic"); err == nil {
		t.Fatal("no error for a panicking handler")
	}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestShutdown: a request in flight is answered, then the connection
// closes and Serve returns.
func TestShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	s, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	}), nil)
	got := make(chan string, 1)
	go func() {
		resp, err := client(t).Get("https://" + addr + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if b := <-got; b != "done" {
		t.Fatalf("in-flight request got %q", b)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// rawConn is a client speaking frames directly, for what a well-behaved
// client never sends.
type rawConn struct {
	t   *testing.T
	tc  *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialRaw(t *testing.T, addr string) *rawConn {
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawConn{t: t, tc: tc, fr: http2.NewFramer(tc, tc)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.enc = hpack.NewEncoder(&rc.buf)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawConn) headers(id uint32, end bool, fields ...string) {
	if err := rc.tryHeaders(id, end, fields...); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) tryHeaders(id uint32, end bool, fields ...string) error {
	rc.buf.Reset()
	for i := 0; i < len(fields); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.buf.Bytes(), EndStream: end, EndHeaders: true})
}

var getFields = []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", "localhost"}

// until reads frames until match returns true, failing on EOF.
func (rc *rawConn) until(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func (rc *rawConn) wantRST(id uint32, code http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("RST_STREAM", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		_, ga := f.(*http2.GoAwayFrame)
		return ok || ga
	})
	if r, ok := f.(*http2.RSTStreamFrame); !ok || r.StreamID != id || r.ErrCode != code {
		rc.t.Fatalf("got %v, want RST_STREAM %d %v", f, id, code)
	}
}

func (rc *rawConn) wantGoAway(code http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if g := f.(*http2.GoAwayFrame); g.ErrCode != code {
		rc.t.Fatalf("GOAWAY %v, want %v", g.ErrCode, code)
	}
}

func TestMalformedRequests(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	}), nil)
	for _, tc := range []struct {
		name   string
		fields []string
	}{
		{"connection", append(getFields[:8:8], "connection", "keep-alive")},
		{"te gzip", append(getFields[:8:8], "te", "gzip")},
		{"uppercase", append(getFields[:8:8], "X-Foo", "1")},
		{"no path", []string{":method", "GET", ":scheme", "https", ":authority", "x"}},
		{"pseudo after regular", []string{":method", "GET", "x", "1", ":scheme", "https", ":path", "/"}},
		{"bad value", append(getFields[:8:8], "x", "a\nb")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.headers(1, true, tc.fields...)
			rc.wantRST(1, http2.ErrCodeProtocol)
		})
	}
	t.Run("te trailers", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.headers(1, true, append(getFields[:8:8], "te", "trailers")...)
		rc.until("response", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	})
	t.Run("content-length short", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x", "content-length", "10")
		_ = rc.fr.WriteData(1, true, []byte("short"))
		rc.wantRST(1, http2.ErrCodeProtocol)
	})
	t.Run("content-length long", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x", "content-length", "2")
		_ = rc.fr.WriteData(1, true, []byte("too long"))
		rc.wantRST(1, http2.ErrCodeProtocol)
	})
}

func TestHeaderListTooLarge(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) { s.MaxHeaderBytes = 1000 })
	rc := dialRaw(t, addr)
	rc.headers(1, true, append(getFields[:8:8], "x-big", strings.Repeat("a", 990))...)
	f := rc.until("response", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	if st := f.(*http2.MetaHeadersFrame).PseudoValue("status"); st != "431" {
		t.Fatalf("status %s, want 431", st)
	}
}

func TestRefusedStream(t *testing.T) {
	release := make(chan struct{})
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }),
		func(s *Server) { s.MaxConcurrentStreams = 2 })
	t.Cleanup(func() { close(release) })
	rc := dialRaw(t, addr)
	rc.headers(1, true, getFields...)
	rc.headers(3, true, getFields...)
	rc.headers(5, true, getFields...)
	rc.wantRST(5, http2.ErrCodeRefusedStream)
}

// TestRapidReset: a client that opens and resets streams faster than
// their handlers return is cut off with ENHANCE_YOUR_CALM, and no more
// than MaxConcurrentStreams handlers run at once.
func TestRapidReset(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
	}), func(s *Server) { s.MaxConcurrentStreams = 10 })
	t.Cleanup(func() { close(release) })
	rc := dialRaw(t, addr)
	go func() {
		for id := uint32(1); id < 2000; id += 2 {
			if rc.tryHeaders(id, true, getFields...) != nil || rc.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	rc.wantGoAway(http2.ErrCodeEnhanceYourCalm)
	if p := peak.Load(); p > 10 {
		t.Fatalf("%d handlers ran at once, limit 10", p)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, addr)
	rc.headers(1, true, getFields...)
	start := time.Now()
	rc.wantGoAway(http2.ErrCodeNo)
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("GOAWAY after %v", d)
	}
}

// TestFramesAfterOurReset: trailers the client had in flight when we reset
// its stream are dropped, not taken for a connection error.
func TestFramesAfterOurReset(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x", "content-length", "2")
	_ = rc.fr.WriteData(1, false, []byte("too long"))
	rc.wantRST(1, http2.ErrCodeProtocol)
	_ = rc.fr.WriteData(1, false, []byte("more"))
	rc.headers(1, true, "x-trailer", "1")
	rc.headers(3, true, getFields...)
	f := rc.until("response", func(f http2.Frame) bool {
		_, ga := f.(*http2.GoAwayFrame)
		h, ok := f.(*http2.MetaHeadersFrame)
		return ga || ok && h.StreamID == 3
	})
	if h, ok := f.(*http2.MetaHeadersFrame); !ok || h.PseudoValue("status") != "200" {
		t.Fatalf("got %v", f)
	}
}

// TestReadDeadline: a handler's read past its deadline fails instead of
// waiting for a client that sends nothing.
func TestReadDeadline(t *testing.T) {
	got := make(chan error, 1)
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := r.Body.Read(make([]byte, 10))
		got <- err
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x")
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return")
	}
}

// TestWriteDeadline: a write that waits for flow-control credit past the
// deadline fails, and the stream is reset.
func TestWriteDeadline(t *testing.T) {
	got := make(chan error, 1)
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		var err error
		for err == nil {
			_, err = w.Write(make([]byte, 16<<10))
		}
		got <- err
	}), nil)
	rc := dialRaw(t, addr) // never sends WINDOW_UPDATE: 64 KiB and the writes stall
	rc.headers(1, true, getFields...)
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write did not return")
	}
	rc.wantRST(1, http2.ErrCodeInternal)
}

// TestExpectContinue: "100 Continue" goes out when the handler first reads
// the body, not before.
func TestExpectContinue(t *testing.T) {
	read := make(chan struct{})
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-read
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x", "expect", "100-continue")
	_ = rc.tc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			break
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			t.Fatalf("early %v before the handler read", h.PseudoValue("status"))
		}
	}
	_ = rc.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	close(read)
	f := rc.until("100", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	if st := f.(*http2.MetaHeadersFrame).PseudoValue("status"); st != "100" {
		t.Fatalf("first response %s, want 100", st)
	}
	_ = rc.fr.WriteData(1, true, []byte("body"))
	f = rc.until("200", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	if st := f.(*http2.MetaHeadersFrame).PseudoValue("status"); st != "200" {
		t.Fatalf("final response %s", st)
	}
}

// TestConnect: a CONNECT stream is a tunnel both ways while the handler runs.
func TestConnect(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "CONNECT" || r.Host != "backend:443" || r.URL.Host != "backend:443" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 100)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write([]byte(strings.ToUpper(string(buf[:n]))))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "CONNECT", ":authority", "backend:443")
	f := rc.until("200", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	if st := f.(*http2.MetaHeadersFrame).PseudoValue("status"); st != "200" {
		t.Fatalf("status %s", st)
	}
	_ = rc.fr.WriteData(1, false, []byte("ping"))
	f = rc.until("echo", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok })
	if d := f.(*http2.DataFrame).Data(); string(d) != "PING" {
		t.Fatalf("tunnel echoed %q", d)
	}
	_ = rc.fr.WriteData(1, true, nil)
}

// TestReadFrom: a file copied with io.Copy arrives whole, with the
// Content-Length the handler set, through the writer's ReadFrom.
func TestReadFrom(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("no ReadFrom")
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if _, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(data)}); err != nil { // no WriteTo: ReadFrom is used
			t.Error(err)
		}
	}), nil)
	resp, err := client(t).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(data))
	}
}

// TestIdleWithUnfinishedRequest: a client that never ends a request whose
// response is complete does not keep the connection from timing out.
func TestIdleWithUnfinishedRequest(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("early answer"))
	}), func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x")
	rc.wantGoAway(http2.ErrCodeNo)
}

// TestContentLengthSetLate: a Content-Length set after WriteHeader goes out
// once; a response shorter than its Content-Length is reset.
func TestContentLengthSetLate(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		switch r.URL.Path {
		case "/late":
			w.Header().Set("Content-Length", "5")
			_, _ = w.Write([]byte("hello"))
		case "/short":
			w.Header().Set("Content-Length", "10")
			_, _ = w.Write([]byte("hello"))
		}
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, true, ":method", "GET", ":scheme", "https", ":path", "/late", ":authority", "x")
	f := rc.until("response", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	var cls []string
	for _, hf := range f.(*http2.MetaHeadersFrame).Fields {
		if hf.Name == "content-length" {
			cls = append(cls, hf.Value)
		}
	}
	if len(cls) != 1 || cls[0] != "5" {
		t.Errorf("content-length fields %q, want one 5", cls)
	}
	rc.headers(3, true, ":method", "GET", ":scheme", "https", ":path", "/short", ":authority", "x")
	rc.wantRST(3, http2.ErrCodeInternal)
}

// TestContextCanceledOnConnClose: the client's connection going away
// cancels the contexts of its requests in progress.
func TestContextCanceledOnConnClose(t *testing.T) {
	h, started, canceled := waitForCancel()
	_, addr := startTLS(t, h, nil)
	rc := dialRaw(t, addr)
	rc.headers(1, true, getFields...)
	<-started
	rc.tc.Close()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context: %v", err)
	}
}

// TestPingFlood: a client that sends PINGs and never reads the answers is
// disconnected once the queued answers pass a bound (CVE-2019-9512), not
// buffered without end.
func TestPingFlood(t *testing.T) {
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil)
	rc := dialRaw(t, addr)
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	for range 4096 {
		_ = fr.WritePing(false, [8]byte{1, 2, 3})
	}
	// Once cut off, the server still reads and discards for a second (so
	// that its GOAWAY is not lost to a reset); then writes fail.
	for start := time.Now(); time.Since(start) < 8*time.Second; {
		if _, err := rc.tc.Write(frames.Bytes()); err != nil {
			return // cut off
		}
	}
	t.Fatal("the server took PINGs for 8s without cutting the client off")
}

// TestBodyReadAfterHandler: a goroutine the handler left reading its body
// gets an error when the handler returns, and never the body of a later
// request that reuses the stream's state.
func TestBodyReadAfterHandler(t *testing.T) {
	leaked := make(chan string, 1)
	got := make(chan string, 1)
	_, addr := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/leak" {
			body := r.Body
			started := make(chan struct{})
			go func() {
				close(started)
				b, err := io.ReadAll(body)
				leaked <- fmt.Sprintf("%q %v", b, err)
			}()
			<-started
			time.Sleep(20 * time.Millisecond) // the goroutine waits in Read
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}), nil)
	rc := dialRaw(t, addr)
	rc.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/leak", ":authority", "x")
	if s := <-leaked; !strings.Contains(s, errBodyClosed.Error()) {
		t.Fatalf("leaked reader got %s", s)
	}
	for id := uint32(3); id < 43; id += 2 {
		rc.headers(id, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x")
		_ = rc.fr.WriteData(id, true, []byte("secret"))
		if s := <-got; s != "secret" {
			t.Fatalf("request %d read %q", id, s)
		}
	}
}

// waitForCancel returns a handler that reports its start, then how its
// request's context ended (or that it did not, within 5s).
func waitForCancel() (http.Handler, chan struct{}, chan error) {
	started, canceled := make(chan struct{}), make(chan error, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			canceled <- r.Context().Err()
		case <-time.After(5 * time.Second):
			canceled <- errors.New("not canceled")
		}
	}), started, canceled
}
