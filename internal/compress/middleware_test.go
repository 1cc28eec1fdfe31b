package compress

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var page = []byte(strings.Repeat("<p>Hello, gatehouse. This paragraph repeats.</p>\n", 100))

// serve starts a real server with the middleware in front of h.
func serve(t *testing.T, cfg Config, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Middleware(cfg)(h))
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request without Go's transparent gzip, so the test sees the
// raw response.
func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	type app struct {
		ct, cc, ce, etag string
		status           int
		body             []byte
	}
	htmlApp := app{ct: "text/html; charset=utf-8", etag: `"v1"`, body: page}
	tests := []struct {
		name     string
		app      app
		method   string
		accept   string
		wantCE   string
		wantVary bool
		wantETag string
	}{
		{"br", htmlApp, "GET", "gzip, br", "br", true, `"v1-br"`},
		{"gzip", htmlApp, "GET", "gzip", "gzip", true, `"v1-gzip"`},
		{"zstd", htmlApp, "GET", "zstd, gzip;q=0.5", "zstd", true, `"v1-zstd"`},
		{"identity", htmlApp, "GET", "", "", true, `"v1"`},
		{"POST compressed", htmlApp, "POST", "br", "br", true, `"v1-br"`},
		{"HEAD untouched", htmlApp, "HEAD", "br", "", false, `"v1"`},
		{"weak etag kept", app{ct: "application/json", etag: `W/"w"`, body: page}, "GET", "br", "br", true, `W/"w"`},
		{"small body", app{ct: "text/plain", body: []byte("tiny")}, "GET", "br", "", true, ""},
		{"image", app{ct: "image/png", body: page}, "GET", "br", "", false, ""},
		{"no-transform", app{ct: "text/html", cc: "public, no-transform", body: page}, "GET", "br", "", false, ""},
		{"already encoded", app{ct: "text/html", ce: "gzip", body: page}, "GET", "br", "gzip", false, ""},
		{"204", app{ct: "text/html", status: 204}, "GET", "br", "", false, ""},
		{"sniffed html", app{body: page}, "GET", "br", "br", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				for k, v := range map[string]string{"Content-Type": tt.app.ct, "Cache-Control": tt.app.cc, "Content-Encoding": tt.app.ce, "Etag": tt.app.etag} {
					if v != "" {
						h.Set(k, v)
					}
				}
				h.Set("Accept-Ranges", "bytes")
				if tt.app.status != 0 {
					w.WriteHeader(tt.app.status)
				}
				w.Write(tt.app.body)
			})
			hdr := map[string]string{}
			if tt.accept != "" {
				hdr["Accept-Encoding"] = tt.accept
			}
			resp, body := get(t, tt.method, srv.URL, hdr)
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantCE {
				t.Errorf("Content-Encoding = %q, want %q", got, tt.wantCE)
			}
			if got := strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding"); got != tt.wantVary {
				t.Errorf("Vary = %q, want Accept-Encoding: %v", resp.Header.Get("Vary"), tt.wantVary)
			}
			if got := resp.Header.Get("Etag"); got != tt.wantETag {
				t.Errorf("ETag = %q, want %q", got, tt.wantETag)
			}
			if tt.method == "HEAD" || tt.app.status == 204 {
				return
			}
			if e, _ := ParseEncoding(tt.wantCE); e != Identity && tt.app.ce == "" {
				if resp.Header.Get("Accept-Ranges") != "" {
					t.Errorf("Accept-Ranges on an encoded body")
				}
				// net/http may still add an exact Content-Length when
				// the whole encoded body fit in its buffer.
				if resp.ContentLength != -1 && resp.ContentLength != int64(len(body)) {
					t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
				}
				dec, err := Decode(e, body)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				body = dec
			}
			if !bytes.Equal(body, tt.app.body) {
				t.Errorf("body differs: got %d bytes, want %d", len(body), len(tt.app.body))
			}
		})
	}
}

// TestMiddlewareETagRevalidation: the client revalidates with the suffixed
// tag; the app sees its own tag and answers 304; the client sees the
// suffixed tag again.
func TestMiddlewareETagRevalidation(t *testing.T) {
	t.Parallel()
	var seen string
	srv := serve(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("If-None-Match")
		w.Header().Set("Etag", `"v7"`)
		w.Header().Set("Content-Type", "text/html")
		if seen == `"v7"` || strings.Contains(seen, `"v7"`) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(page)
	})
	resp, _ := get(t, "GET", srv.URL, map[string]string{"Accept-Encoding": "br", "If-None-Match": `"old", "v7-br"`})
	if resp.StatusCode != 304 {
		t.Fatalf("status %d, want 304 (app saw If-None-Match %q)", resp.StatusCode, seen)
	}
	if seen != `"old", "v7"` {
		t.Errorf("app saw If-None-Match %q", seen)
	}
	if got := resp.Header.Get("Etag"); got != `"v7-br"` {
		t.Errorf("304 ETag = %q", got)
	}
	if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("304 without Vary")
	}
	// The identity tag sent by a client that now negotiates gzip is a
	// different representation: the app still sees "v7" and says 304 —
	// that is the app's call; but a gzip tag does not match for br.
	resp, _ = get(t, "GET", srv.URL, map[string]string{"Accept-Encoding": "br", "If-None-Match": `"v7-gzip"`})
	if resp.StatusCode != 200 {
		t.Errorf("gzip tag revalidated a br response: %d", resp.StatusCode)
	}
}

// TestMiddlewareFlush: each flushed chunk reaches the client decodable
// while the handler is still running.
func TestMiddlewareFlush(t *testing.T) {
	t.Parallel()
	step := make(chan struct{})
	srv := serve(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := range 3 {
			io.WriteString(w, strings.Repeat("x", 10)+string(rune('a'+i))+"\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			<-step
		}
	})
	for _, accept := range []string{"gzip", "br", "zstd", ""} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		tr := &http.Transport{DisableCompression: true}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := ParseEncoding(resp.Header.Get("Content-Encoding"))
		if e.String() != map[string]string{"": "identity"}[accept]+accept && !(accept == "" && e == Identity) {
			t.Fatalf("accept %q got %v", accept, e)
		}
		dec, err := NewReader(e, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(dec)
		for i := range 3 {
			line := make(chan string, 1)
			go func() { s, _ := br.ReadString('\n'); line <- s }()
			select {
			case s := <-line:
				if want := strings.Repeat("x", 10) + string(rune('a'+i)) + "\n"; s != want {
					t.Fatalf("%s: line %d = %q", accept, i, s)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: line %d not delivered by Flush", accept, i)
			}
			step <- struct{}{}
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
}

// TestMiddlewareHijack: a WebSocket-style upgrade reaches the raw
// connection through the wrapper.
func TestMiddlewareHijack(t *testing.T) {
	t.Parallel()
	srv := serve(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Errorf("wrapper hides http.Hijacker")
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
		rw.Flush()
	})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) || !bytes.HasSuffix(got, []byte("hello")) {
		t.Fatalf("got %q", got)
	}
	// Same through the wrapper when the request does not announce an
	// upgrade (the app hijacks anyway).
	c2, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n")
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ = io.ReadAll(c2)
	if !bytes.HasSuffix(got, []byte("hello")) {
		t.Fatalf("got %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	c := Config{Encodings: []string{"br", "deflate"}, Levels: Levels{Gzip: 12}, Types: []string{"nope"}}
	c.Defaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"encodings[1]", "levels.gzip", "types[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	ok := Config{}
	ok.Defaults()
	if err := ok.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	h := Middleware(Config{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(page)
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip, br")
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}

// TestMiddlewareReadFrom: bodies copied with io.Copy (files, upstream
// bodies) come out right whether compressed or passed through.
func TestMiddlewareReadFrom(t *testing.T) {
	t.Parallel()
	srv := serve(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("ct"))
		io.Copy(w, bytes.NewReader(page))
	})
	for _, c := range []struct{ ct, ce string }{{"text/html", "gzip"}, {"image/png", ""}} {
		resp, body := get(t, "GET", srv.URL+"/?ct="+c.ct, map[string]string{"Accept-Encoding": "gzip"})
		if got := resp.Header.Get("Content-Encoding"); got != c.ce {
			t.Errorf("%s: Content-Encoding %q", c.ct, got)
		}
		e, _ := ParseEncoding(c.ce)
		if c.ce == "" {
			e = Identity
		}
		if dec, err := Decode(e, body); err != nil || !bytes.Equal(dec, page) {
			t.Errorf("%s: body differs (%v)", c.ct, err)
		}
	}
}
