package h2srv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkGET measures the server's cost per request: GETs for a
// 100-byte response, 10 streams in flight on one cleartext loopback
// connection, from a client that only copies pre-encoded frames (so the
// allocations reported are the server's).
func BenchmarkGET(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(static100), ErrorLog: discardLog}
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { s.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	var pre bytes.Buffer
	pre.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&pre, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	_ = fr.WriteWindowUpdate(0, 1<<30)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":path", Value: "/index.html"}, {Name: ":authority", Value: "example.com"},
		{Name: "user-agent", Value: "bench/1.0"}, {Name: "accept-encoding", Value: "gzip, br"}}
	block := func() []byte {
		hb.Reset()
		for _, f := range fields {
			enc.WriteField(f)
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	first, again := block(), block() // the second refers to the dynamic table
	frame := func(block []byte) []byte {
		var f []byte
		f = appendFrameHeader(f, len(block), frameHeaders, flagEndStream|flagEndHeaders, 0)
		return append(f, block...)
	}
	req1, req := frame(first), frame(again)
	if _, err := nc.Write(pre.Bytes()); err != nil {
		b.Fatal(err)
	}

	br := bufio.NewReaderSize(nc, 64<<10)
	var hdr [9]byte
	var received int64
	readOne := func() {
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				b.Fatal(err)
			}
			fh := parseFrameHeader(hdr[:])
			if _, err := br.Discard(int(fh.length)); err != nil {
				b.Fatal(err)
			}
			if fh.typ == frameData {
				received += int64(fh.length)
			}
			if (fh.typ == frameData || fh.typ == frameHeaders) && fh.flags&flagEndStream != 0 {
				return
			}
		}
	}
	const depth = 10
	out := make([]byte, 0, depth*len(req))
	id := uint32(1)
	inflight, pending := 0, 0
	flush := func() {
		if received > 1<<29 {
			out = appendWindowUpdate(out, 0, uint32(received))
			received = 0
		}
		if _, err := nc.Write(out); err != nil {
			b.Fatal(err)
		}
		out = out[:0]
		inflight += pending
		pending = 0
	}
	b.ReportAllocs()
	for b.Loop() {
		f := req
		if id == 1 {
			f = req1
		}
		start := len(out)
		out = append(out, f...)
		binary.BigEndian.PutUint32(out[start+5:], id)
		id += 2
		if pending++; pending == depth/2 {
			flush()
		}
		if inflight >= depth {
			for range depth / 2 {
				readOne()
			}
			inflight -= depth / 2
		}
	}
	flush()
	for ; inflight > 0; inflight-- {
		readOne()
	}
}
