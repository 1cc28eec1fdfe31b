package h2srv

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzSeeds are client frame sequences (after the preface and SETTINGS)
// that exercise every frame type the server reads.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	build := func(f func(fr *http2.Framer, hb func(...string) []byte)) {
		var buf, hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		fr := http2.NewFramer(&buf, nil)
		f(fr, func(kv ...string) []byte {
			hbuf.Reset()
			for i := 0; i < len(kv); i += 2 {
				enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), hbuf.Bytes()...)
		})
		seeds = append(seeds, buf.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "https", ":path", "/a?b=c", ":authority", "x", "cookie", "a=1", "cookie", "b=2"}
	build(func(fr *http2.Framer, hb func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb(get...), EndStream: true, EndHeaders: true})
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1000)
	})
	build(func(fr *http2.Framer, hb func(...string) []byte) {
		b := hb(":method", "POST", ":scheme", "https", ":path", "/", ":authority", "x", "content-length", "5", "trailer", "x-t")
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndHeaders: false, PadLength: 2})
		_ = fr.WriteContinuation(1, true, b[3:])
		_ = fr.WriteDataPadded(1, false, []byte("he"), []byte{0, 0})
		_ = fr.WriteData(1, false, []byte("llo"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb("x-t", "v"), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, hb func(...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 15})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb(get...), EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 1, Weight: 20}})
		_ = fr.WritePriority(5, http2.PriorityParam{StreamDep: 3})
		_ = fr.WriteWindowUpdate(3, 100)
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, hb func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb(":method", "CONNECT", ":authority", "h:443"), EndHeaders: true})
		_ = fr.WriteData(1, true, []byte("tunnel"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: hb(get[:8]...), EndStream: true, EndHeaders: true})
	})
	return seeds
}

// FuzzConn feeds arbitrary frames to a connection: the server must not
// panic, hang or leak its handlers.
func FuzzConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Len")
		_, _ = w.Write(b)
		w.Header().Set("X-Len", "1")
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{Handler: h, MaxConcurrentStreams: 8, ErrorLog: discardLog}
		cc, sc := net.Pipe()
		s.ServeConn(context.Background(), sc)
		go func() { _, _ = io.Copy(io.Discard, cc) }()
		var pre bytes.Buffer
		pre.WriteString(http2.ClientPreface)
		_ = http2.NewFramer(&pre, nil).WriteSettings()
		_ = cc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = cc.Write(append(pre.Bytes(), in...))
		cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("connection did not end: %v", err)
		}
	})
}
