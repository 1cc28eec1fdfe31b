//go:build linux

package static

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/compress"
	"github.com/gatehouse/gatehouse/internal/conf"
)

// openFDs lists this process's descriptors that point under dir, as the
// kernel names them (a file unlinked since it was opened ends in
// " (deleted)").
func openFDs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") {
			out = append(out, target)
		}
	}
	return out
}

// waitFDs waits until the descriptors under dir satisfy ok (responses
// release theirs just after the client has the last byte).
func waitFDs(t *testing.T, dir string, ok func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		fds := openFDs(t, dir)
		if ok(fds) || time.Now().After(deadline) {
			return fds
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func deleted(fds []string) (n int) {
	for _, f := range fds {
		if strings.HasSuffix(f, " (deleted)") {
			n++
		}
	}
	return n
}

// patterned is n bytes that differ by seed, so a mix of versions shows.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/7) ^ seed
	}
	return b
}

// replaceFile writes data to a temporary name and renames it over name,
// as deploys do: the old inode lives on while it is open.
func replaceFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+filepath.Base(name))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// slowGet starts a GET on a connection with a small receive buffer, so
// the server is still sending (blocked in sendfile) while the test holds
// the body unread.
func slowGet(t *testing.T, addr, path string) (*http.Response, net.Conn) {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, c
}

// fileServer serves one mount of dir over a real socket (net/http, whose
// ReadFrom uses sendfile as the front's server does).
func fileServer(t *testing.T, dir string, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	srv, err := New([]Config{{URL: "/s/", Root: dir}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h, _ := srv.Match("/s/")
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return srv, ts
}

func get(t *testing.T, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hdr != nil {
		req.Header = hdr
	}
	return roundTrip(t, req)
}

// TestFileReuse: a large file is opened once (when it is first looked up)
// and its descriptor serves every later response, whole or in ranges.
func TestFileReuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := patterned(200<<10, 1)
	writeFile(t, dir, "a.bin", data)
	srv, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 64 << 10}})
	for i := range 5 {
		resp, body := get(t, ts.URL+"/s/a.bin", nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("request %d: status %d, %d bytes", i, resp.StatusCode, len(body))
		}
		resp, body = get(t, ts.URL+"/s/a.bin", hdr("Range", "bytes=1000-1999"))
		if resp.StatusCode != 206 || !bytes.Equal(body, data[1000:2000]) {
			t.Fatalf("range %d: status %d, %d bytes", i, resp.StatusCode, len(body))
		}
	}
	if n := srv.files.opened.Load(); n != 0 {
		t.Errorf("%d opens after the first lookup; want 0 (the lookup's descriptor is kept)", n)
	}
	if fds := openFDs(t, dir); len(fds) != 1 {
		t.Errorf("open descriptors: %q, want the one kept", fds)
	}
}

// TestFileReplacedMidResponse: a file replaced (renamed over) while a
// response is sending it: that response finishes with the old bytes, the
// next ones get the new file, and the old descriptor is closed once the
// response is done, not before.
func TestFileReplacedMidResponse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, next := patterned(4<<20, 1), patterned(3<<20, 2)
	writeFile(t, dir, "v.bin", old)
	_, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 64 << 10, Recheck: conf.Duration(time.Millisecond)}})

	resp, _ := slowGet(t, ts.Listener.Addr().String(), "/s/v.bin")
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "v.bin", next)
	time.Sleep(5 * time.Millisecond) // past Recheck

	// A new request notices the change, drops the entry and retires its
	// descriptors; the one in use stays open.
	resp2, body2 := get(t, ts.URL+"/s/v.bin", nil)
	if !bytes.Equal(body2, next) || resp2.Header.Get("Content-Length") != itoa(len(next)) {
		t.Fatalf("after the change: %d bytes, Content-Length %s", len(body2), resp2.Header.Get("Content-Length"))
	}
	if n := deleted(openFDs(t, dir)); n != 1 {
		t.Fatalf("%d descriptors of the replaced file open mid-response, want 1", n)
	}

	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, old) {
		t.Fatalf("in-flight response: %d bytes, not the old file (%d)", len(got), len(old))
	}
	if fds := waitFDs(t, dir, func(f []string) bool { return deleted(f) == 0 }); deleted(fds) != 0 {
		t.Fatalf("replaced file still open after its response: %q", fds)
	}
}

// TestFileTruncated: a file cut short in place (same inode) since it was
// cached: the response stops short (the client sees a short body, never
// bytes past the new end) and the next request serves the new length.
func TestFileTruncated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := patterned(300<<10, 3)
	writeFile(t, dir, "t.bin", data)
	_, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 64 << 10, Recheck: conf.Duration(time.Hour)}})
	if _, body := get(t, ts.URL+"/s/t.bin", nil); !bytes.Equal(body, data) {
		t.Fatal("first response differs")
	}
	if err := os.Truncate(filepath.Join(dir, "t.bin"), 100<<10); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/s/t.bin", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || !bytes.Equal(body, data[:len(body)]) || len(body) > 100<<10 {
		t.Fatalf("truncated file: %d bytes, err %v; want a short read of the old prefix", len(body), err)
	}
	// The short send dropped the entry: the next lookup sees the new size.
	if resp, body := get(t, ts.URL+"/s/t.bin", nil); resp.Header.Get("Content-Length") != itoa(100<<10) || !bytes.Equal(body, data[:100<<10]) {
		t.Fatalf("after truncation: Content-Length %s, %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}

// TestFilesBounded: idle descriptors stay within CacheConfig.Files (the
// coldest closed first), and within the cache's entries (an evicted entry
// closes its descriptors).
func TestFilesBounded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		files, entries int
		want           int
	}{
		{"files", 3, 100, 3},
		{"entries", 100, 2, 2},
		{"none", -1, 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for i := range 8 {
				writeFile(t, dir, fmt.Sprintf("%d.bin", i), patterned(100<<10, byte(i)))
			}
			srv, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 16 << 10, Files: c.files, Entries: c.entries}})
			for round := range 2 {
				for i := range 8 {
					resp, body := get(t, fmt.Sprintf("%s/s/%d.bin", ts.URL, i), nil)
					if resp.StatusCode != 200 || !bytes.Equal(body, patterned(100<<10, byte(i))) {
						t.Fatalf("round %d file %d: status %d", round, i, resp.StatusCode)
					}
					fds := waitFDs(t, dir, func(f []string) bool { return len(f) <= c.want })
					if len(fds) > c.want || srv.files.idleCount() > c.want {
						t.Fatalf("round %d file %d: %d open (%d idle), want at most %d", round, i, len(fds), srv.files.idleCount(), c.want)
					}
				}
			}
		})
	}
}

// TestCloseReleasesFiles: Close closes the idle descriptors at once; a
// response sending when Close is called finishes, and its descriptor is
// closed when it is done.
func TestCloseReleasesFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := patterned(4<<20, 5)
	writeFile(t, dir, "c.bin", data)
	writeFile(t, dir, "d.bin", data[:200<<10])
	srv, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 64 << 10}})
	get(t, ts.URL+"/s/d.bin", nil)

	resp, _ := slowGet(t, ts.Listener.Addr().String(), "/s/c.bin")
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	if fds := openFDs(t, dir); len(fds) != 2 {
		t.Fatalf("before Close: %q, want d.bin idle and c.bin in use", fds)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if fds := openFDs(t, dir); len(fds) != 1 || !strings.HasSuffix(fds[0], "/c.bin") {
		t.Fatalf("after Close: %q, want only c.bin (in use)", fds)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(head, rest...), data) {
		t.Fatal("response in flight at Close was cut or mixed")
	}
	if fds := waitFDs(t, dir, func(f []string) bool { return len(f) == 0 }); len(fds) != 0 {
		t.Fatalf("after the last response: %q still open", fds)
	}
}

// TestLargeSiblingChanged: a precompressed sibling too large for memory is
// sent from a kept descriptor; rewriting only the sibling is noticed at
// the next check (Content-Length and body follow the new one).
func TestLargeSiblingChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Text that brotli shrinks but not below MaxFile.
	var src bytes.Buffer
	for i := 0; src.Len() < 400<<10; i++ {
		fmt.Fprintf(&src, "line %d %x\n", i, i*2654435761)
	}
	writeFile(t, dir, "app.js", src.Bytes())
	br1 := compress.Encode(compress.Brotli, 1, src.Bytes())
	writeFile(t, dir, "app.js.br", br1)
	srv, ts := fileServer(t, dir, Options{Cache: CacheConfig{MaxFile: 16 << 10, Recheck: conf.Duration(time.Millisecond)}})
	if len(br1) <= 16<<10 {
		t.Fatalf("sibling of %d bytes fits in memory; the test needs it on disk", len(br1))
	}
	for range 3 {
		resp, body := get(t, ts.URL+"/s/app.js", hdr("Accept-Encoding", "br"))
		if resp.Header.Get("Content-Encoding") != "br" || !bytes.Equal(body, br1) {
			t.Fatalf("CE %q, %d bytes; want the sibling (%d)", resp.Header.Get("Content-Encoding"), len(body), len(br1))
		}
	}
	if n := srv.files.opened.Load(); n != 0 {
		t.Errorf("%d opens; want 0 (the sibling's first descriptor is kept)", n)
	}
	br2 := compress.Encode(compress.Brotli, 9, src.Bytes())
	if len(br2) == len(br1) {
		t.Fatal("levels 1 and 9 gave the same size")
	}
	future := time.Now().Add(time.Second)
	replaceFile(t, dir, "app.js.br", br2)
	os.Chtimes(filepath.Join(dir, "app.js.br"), future, future)
	time.Sleep(5 * time.Millisecond)
	resp, body := get(t, ts.URL+"/s/app.js", hdr("Accept-Encoding", "br"))
	if resp.Header.Get("Content-Length") != itoa(len(br2)) || !bytes.Equal(body, br2) {
		t.Fatalf("after the sibling changed: Content-Length %s, %d bytes; want %d", resp.Header.Get("Content-Length"), len(body), len(br2))
	}
	if dec, err := compress.Decode(compress.Brotli, body); err != nil || !bytes.Equal(dec, src.Bytes()) {
		t.Fatalf("decoded body differs: %v", err)
	}
}
